package cluster

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of fraiseql_publish_total{result}.
const (
	publishOK        = "ok"
	publishDuplicate = "duplicate"
	publishTooLarge  = "too_large"
	publishInvalid   = "invalid"
	publishError     = "error"
)

// Label values of fraiseql_nats_events_skipped_total{reason}.
const (
	skipBadSubject = "bad_subject"
	skipMetadata   = "bad_metadata"
)

// metrics are this Cluster's own collectors; they are never registered
// on the global registry (see Collectors).
type metrics struct {
	consumed     prometheus.Counter
	skipped      *prometheus.CounterVec
	reconnects   prometheus.Counter
	connected    prometheus.Gauge
	published    *prometheus.CounterVec
	stalls       prometheus.Counter
	stallSeconds prometheus.Counter
	bridged      prometheus.Counter

	interestSubjects     prometheus.Gauge
	interestGaps         prometheus.Counter
	interestRepaired     prometheus.Counter
	interestRepairErrors prometheus.Counter
	interestResyncs      prometheus.Counter
	interestHeldDrops    prometheus.Counter

	replays                    *prometheus.CounterVec
	replayActive, replayQueued prometheus.Gauge
	replayWaits                prometheus.Counter
	replayInfos                prometheus.Counter
	replayStale                prometheus.Counter
	replayShared               prometheus.Counter

	// Children resolved once, so the hot paths skip the label lookup.
	skippedSubject, skippedMetadata                        prometheus.Counter
	pubOK, pubDuplicate, pubTooLarge, pubInvalid, pubError prometheus.Counter
	replayOK, replayExpired, replayBusy, replayCanceled    prometheus.Counter
	replayError                                            prometheus.Counter
}

// Label values of fraiseql_replays_total{result}.
const (
	replayResultOK       = "ok"
	replayResultExpired  = "expired"
	replayResultBusy     = "busy"
	replayResultCanceled = "canceled"
	replayResultError    = "error"
)

func newMetrics() *metrics {
	m := &metrics{
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraiseql_nats_events_consumed_total",
			Help: "Events delivered to this node's consumer callback.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_nats_events_skipped_total",
			Help: "Stream messages the consumer skipped, by reason.",
		}, []string{"reason"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraiseql_nats_reconnects_total",
			Help: "Reconnections to NATS.",
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fraiseql_nats_connected",
			Help: "1 while connected to NATS, else 0.",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_publish_total",
			Help: "Publish calls, by result (ok, duplicate, too_large, invalid, error).",
		}, []string{"result"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_replays_total",
			Help: "Replay calls (resumes from a cursor), by result (ok, expired, busy, canceled, error); busy counts the refusals of nats.max_replay_queue.",
		}, []string{"result"}),
		replayActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fraiseql_replay_reads_active",
			Help: "Replay history reads in flight (at most nats.max_replays).",
		}),
		replayQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fraiseql_replay_reads_queued",
			Help: "Replays waiting for a read slot (at most nats.max_replay_queue).",
		}),
		replayWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraiseql_replay_read_waits_total",
			Help: "Replay reads that found every read slot busy and waited.",
		}),
		replayInfos: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraiseql_replay_stream_info_total",
			Help: "Stream info requests made for replays (concurrent replays share one).",
		}),
		replayShared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraiseql_replay_shared_total",
			Help: "Replays that joined another replay's pending first read of the same subject.",
		}),
		replayStale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraiseql_replay_stale_reads_total",
			Help: "Replay reads answered by a stream replica behind the leader, completed from the leader.",
		}),
	}
	m.stalls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_delivery_stalls_total",
		Help: "Times event delivery stalled: the stream held events this node had not received for 2 s; the consumer was re-created.",
	})
	m.stallSeconds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_delivery_stall_seconds_total",
		Help: "Seconds event delivery was stalled, counted when it resumed.",
	})
	m.bridged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_delivery_bridged_events_total",
		Help: "Events read from the stream with direct gets while this node's consumer was being re-created (also in fraiseql_nats_events_consumed_total).",
	})
	m.interestSubjects = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fraiseql_ingest_subjects",
		Help: "Subjects this node receives events of (nats.ingest: interest): those its subscriptions are on.",
	})
	m.interestGaps = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_ingest_gaps_total",
		Help: "Times a subject's republished events skipped some (nats.ingest: interest); each was repaired from the stream.",
	})
	m.interestRepaired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_ingest_repaired_events_total",
		Help: "Events read from the stream to fill gaps in the republished ones (nats.ingest: interest).",
	})
	m.interestRepairErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_ingest_repair_errors_total",
		Help: "Failed reads of missed events (nats.ingest: interest); each is retried.",
	})
	m.interestResyncs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_ingest_resyncs_total",
		Help: "Checks of every subject against the stream, after a reconnect or a slow-consumer drop (nats.ingest: interest).",
	})
	m.interestHeldDrops = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_ingest_held_overflows_total",
		Help: "Times a subject's events held during its start or a repair passed 1024 events or 4 MiB (nats.ingest: interest); the rest were read from the stream.",
	})
	// Every label value exists from the start: dashboards see zeros, not gaps.
	m.skippedSubject = m.skipped.WithLabelValues(skipBadSubject)
	m.skippedMetadata = m.skipped.WithLabelValues(skipMetadata)
	m.pubOK = m.published.WithLabelValues(publishOK)
	m.pubDuplicate = m.published.WithLabelValues(publishDuplicate)
	m.pubTooLarge = m.published.WithLabelValues(publishTooLarge)
	m.pubInvalid = m.published.WithLabelValues(publishInvalid)
	m.pubError = m.published.WithLabelValues(publishError)
	m.replayOK = m.replays.WithLabelValues(replayResultOK)
	m.replayExpired = m.replays.WithLabelValues(replayResultExpired)
	m.replayBusy = m.replays.WithLabelValues(replayResultBusy)
	m.replayCanceled = m.replays.WithLabelValues(replayResultCanceled)
	m.replayError = m.replays.WithLabelValues(replayResultError)
	return m
}

// replayDone counts one Replay by its result. An error of the caller's
// fn (byFn) counts as canceled: the caller stopped it.
func (m *metrics) replayDone(err error, byFn bool) {
	switch {
	case err == nil:
		m.replayOK.Inc()
	case errors.Is(err, ErrCursorExpired):
		m.replayExpired.Inc()
	case errors.Is(err, ErrReplayBusy):
		m.replayBusy.Inc()
	case errors.Is(err, ErrBadTenant), errors.Is(err, ErrBadTopic), errors.Is(err, ErrClosed):
		m.replayError.Inc()
	case byFn, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		m.replayCanceled.Inc()
	default:
		m.replayError.Inc()
	}
}

// Collectors returns this Cluster's metrics for the caller to register
// (the node registers them on its own registry; nothing here touches the
// global one):
//
//	fraiseql_nats_events_consumed_total
//	fraiseql_nats_events_skipped_total{reason}
//	fraiseql_nats_reconnects_total
//	fraiseql_nats_connected
//	fraiseql_publish_total{result}
//	fraiseql_delivery_stalls_total
//	fraiseql_delivery_stall_seconds_total
//	fraiseql_delivery_bridged_events_total
//	fraiseql_replays_total{result}
//	fraiseql_replay_reads_active, fraiseql_replay_reads_queued
//	fraiseql_replay_read_waits_total
//	fraiseql_replay_stream_info_total
//	fraiseql_replay_stale_reads_total
//	fraiseql_replay_shared_total
//	fraiseql_ingest_subjects, fraiseql_ingest_gaps_total
//	fraiseql_ingest_repaired_events_total, fraiseql_ingest_repair_errors_total
//	fraiseql_ingest_resyncs_total, fraiseql_ingest_held_overflows_total
//	fraiseql_nats_stream_last_seq, fraiseql_nats_consumer_delivered_seq,
//	fraiseql_nats_consumer_lag (see lagCollector)
func (c *Cluster) Collectors() []prometheus.Collector {
	m := c.metrics
	return []prometheus.Collector{m.consumed, m.skipped, m.reconnects, m.connected, m.published, m.stalls, m.stallSeconds, m.bridged,
		m.replays, m.replayActive, m.replayQueued, m.replayWaits, m.replayInfos, m.replayStale, m.replayShared,
		m.interestSubjects, m.interestGaps, m.interestRepaired, m.interestRepairErrors, m.interestResyncs,
		m.interestHeldDrops, newLagCollector(c)}
}
