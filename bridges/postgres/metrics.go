package postgres

import "github.com/prometheus/client_golang/prometheus"

// Source names: the status names and the metrics' source label.
const (
	sourceOutbox    = "postgres-outbox"
	sourceNotify    = "postgres-notify"
	sourceChangeLog = "postgres-changelog"
)

type metrics struct {
	forwarded  *prometheus.CounterVec // source
	rejected   *prometheus.CounterVec // source, reason
	duplicates *prometheus.CounterVec // source
	lag        *prometheus.GaugeVec   // source
	reconnects *prometheus.CounterVec // source
	leader     *prometheus.GaugeVec   // source
}

func newMetrics() *metrics {
	return &metrics{
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_bridge_events_forwarded_total",
			Help: "Events a bridge stored in the stream (duplicates excluded).",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_bridge_events_rejected_total",
			Help: "Events a bridge could never publish (set aside or dropped), by reason.",
		}, []string{"source", "reason"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_bridge_events_deduplicated_total",
			Help: "Events the stream had already stored under the same dedup id.",
		}, []string{"source"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraiseql_bridge_source_lag",
			Help: "Events waiting in the source (outbox rows not yet forwarded).",
		}, []string{"source"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_bridge_reconnects_total",
			Help: "Connections a bridge made to its source after the first.",
		}, []string{"source"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fraiseql_bridge_leader",
			Help: "1 while this node holds the source's lease and ingests it.",
		}, []string{"source"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.forwarded, m.rejected, m.duplicates, m.lag, m.reconnects, m.leader}
}
