package bridges

import "github.com/prometheus/client_golang/prometheus"

// Metrics are one bridge's collectors. Both bridges use these same
// families, so one query covers every source:
//
//	fraiseql_bridge_events_forwarded_total{bridge,source}
//	fraiseql_bridge_events_rejected_total{bridge,source,reason}
//	fraiseql_bridge_events_deduplicated_total{bridge,source}
//	fraiseql_bridge_source_lag{bridge,source}
//	fraiseql_bridge_reconnects_total{bridge,source}
//	fraiseql_bridge_leader{bridge,source}
//
// bridge ("redis", "postgres") is a constant label: it keeps the two
// bridges' collectors apart on one registry. source names the input
// (redis-pubsub, redis-streams, postgres-outbox, postgres-notify,
// postgres-changelog).
type Metrics struct {
	Forwarded    *prometheus.CounterVec // {source}
	Rejected     *prometheus.CounterVec // {source, reason}
	Deduplicated *prometheus.CounterVec // {source}
	Reconnects   *prometheus.CounterVec // {source}
	Lag          *prometheus.GaugeVec   // {source}
	Leader       *prometheus.GaugeVec   // {source}
}

// NewMetrics returns the collectors of the bridge named bridge, with the
// series of every source in sources and every reason in reasons created
// at zero (dashboards and alerts see zeros, not gaps). Lag is created for
// the sources in lagSources only: the others cannot measure it.
func NewMetrics(bridge string, sources, reasons, lagSources []string) *Metrics {
	cl := prometheus.Labels{"bridge": bridge}
	m := &Metrics{
		Forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "fraiseql_bridge_events_forwarded_total",
			Help:        "Events a bridge stored in the stream (duplicates excluded), by source.",
			ConstLabels: cl,
		}, []string{"source"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "fraiseql_bridge_events_rejected_total",
			Help:        "Events a bridge can never publish (dead-lettered, set aside or dropped), by source and reason.",
			ConstLabels: cl,
		}, []string{"source", "reason"}),
		Deduplicated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "fraiseql_bridge_events_deduplicated_total",
			Help:        "Events the stream already held under the same dedup id, by source.",
			ConstLabels: cl,
		}, []string{"source"}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "fraiseql_bridge_reconnects_total",
			Help:        "Connections a bridge made to its source after an error, by source.",
			ConstLabels: cl,
		}, []string{"source"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name:        "fraiseql_bridge_source_lag",
			Help:        "Events waiting in the source, not yet forwarded (PostgreSQL outbox rows; Redis stream entries not acknowledged); measured by the leader, 0 elsewhere.",
			ConstLabels: cl,
		}, []string{"source"}),
		Leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name:        "fraiseql_bridge_leader",
			Help:        "1 while this node holds the source's lease and ingests it, else 0.",
			ConstLabels: cl,
		}, []string{"source"}),
	}
	for _, s := range sources {
		m.AddSource(s, reasons)
	}
	for _, s := range lagSources {
		m.Lag.WithLabelValues(s)
	}
	return m
}

// AddSource creates the series of a source known only later (a configured
// one) at zero, with reasons its rejection reasons.
func (m *Metrics) AddSource(source string, reasons []string) {
	m.Forwarded.WithLabelValues(source)
	m.Deduplicated.WithLabelValues(source)
	m.Reconnects.WithLabelValues(source)
	m.Leader.WithLabelValues(source)
	for _, r := range reasons {
		m.Rejected.WithLabelValues(source, r)
	}
}

// Collectors returns the collectors to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Forwarded, m.Rejected, m.Deduplicated, m.Reconnects, m.Lag, m.Leader}
}
