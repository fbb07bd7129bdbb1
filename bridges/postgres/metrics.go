package postgres

import "github.com/fraiseql/subscriptions/bridges"

// Source names: the status names and the metrics' source label.
const (
	sourceOutbox    = "postgres-outbox"
	sourceNotify    = "postgres-notify"
	sourceChangeLog = "postgres-changelog"
)

// newMetrics returns the bridge's collectors: the fraiseql_bridge_*
// families both bridges share, with bridge="postgres", and the outbox's
// series (it is always ingested); New adds the other configured sources'.
func newMetrics() *bridges.Metrics {
	return bridges.NewMetrics("postgres", []string{sourceOutbox}, nil, []string{sourceOutbox})
}
