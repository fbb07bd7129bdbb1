package redis

import "github.com/prometheus/client_golang/prometheus"

// Label values of {source}.
const (
	sourcePubSub  = "redis-pubsub"
	sourceStreams = "redis-streams"
)

// metrics are one Bridge's collectors. Their names start with
// fraiseql_redis_bridge_ so that they never clash with the PostgreSQL
// bridge's fraiseql_bridge_* on the node's registry.
type metrics struct {
	forwarded  *prometheus.CounterVec // {source}
	rejected   *prometheus.CounterVec // {source, reason}
	dedup      *prometheus.CounterVec // {source}
	lag        *prometheus.GaugeVec   // {source}
	reconnects *prometheus.CounterVec // {source}
	leader     *prometheus.GaugeVec   // {source}
}

func newMetrics() *metrics {
	m := &metrics{
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_redis_bridge_events_forwarded_total",
			Help: "Events the Redis bridge stored in JetStream (duplicates excluded), by source.",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_redis_bridge_rejected_total",
			Help: "Redis messages or entries that can never be published (streams: dead-lettered), by source and reason.",
		}, []string{"source", "reason"}),
		dedup: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_redis_bridge_deduplicated_total",
			Help: "Events JetStream already held (same dedup id), by source.",
		}, []string{"source"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraiseql_redis_bridge_source_lag",
			Help: "Stream entries not yet acknowledged by the consumer group (pending plus undelivered), by source; leader only.",
		}, []string{"source"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_redis_bridge_reconnects_total",
			Help: "Reconnections to Redis after an error, by source.",
		}, []string{"source"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraiseql_redis_bridge_leader",
			Help: "1 while this node holds the source's lease and ingests it, else 0.",
		}, []string{"source"}),
	}
	for _, s := range []string{sourcePubSub, sourceStreams} {
		m.forwarded.WithLabelValues(s)
		m.dedup.WithLabelValues(s)
		m.reconnects.WithLabelValues(s)
		m.leader.WithLabelValues(s)
		for _, r := range rejectReasons {
			m.rejected.WithLabelValues(s, r)
		}
	}
	m.lag.WithLabelValues(sourceStreams)
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.forwarded, m.rejected, m.dedup, m.lag, m.reconnects, m.leader}
}
