package cluster

import "github.com/prometheus/client_golang/prometheus"

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

	// Children resolved once, so the hot paths skip the label lookup.
	skippedSubject, skippedMetadata                        prometheus.Counter
	pubOK, pubDuplicate, pubTooLarge, pubInvalid, pubError prometheus.Counter
}

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
	}
	m.stalls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_delivery_stalls_total",
		Help: "Times event delivery stalled: the stream held events this node had not received for 2 s; the consumer was re-created.",
	})
	m.stallSeconds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fraiseql_delivery_stall_seconds_total",
		Help: "Seconds event delivery was stalled, counted when it resumed.",
	})
	// Every label value exists from the start: dashboards see zeros, not gaps.
	m.skippedSubject = m.skipped.WithLabelValues(skipBadSubject)
	m.skippedMetadata = m.skipped.WithLabelValues(skipMetadata)
	m.pubOK = m.published.WithLabelValues(publishOK)
	m.pubDuplicate = m.published.WithLabelValues(publishDuplicate)
	m.pubTooLarge = m.published.WithLabelValues(publishTooLarge)
	m.pubInvalid = m.published.WithLabelValues(publishInvalid)
	m.pubError = m.published.WithLabelValues(publishError)
	return m
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
func (c *Cluster) Collectors() []prometheus.Collector {
	m := c.metrics
	return []prometheus.Collector{m.consumed, m.skipped, m.reconnects, m.connected, m.published, m.stalls, m.stallSeconds}
}
