package bridges

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsBothBridgesOneRegistry: the two bridges' collectors share
// family names and register together on one registry (a node runs both),
// and every listed series exists before its first event.
func TestMetricsBothBridgesOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewMetrics("redis", []string{"redis-pubsub", "redis-streams"}, []string{"bad_channel"}, []string{"redis-streams"}).Collectors()...)
	reg.MustRegister(NewMetrics("postgres", []string{"postgres-outbox"}, nil, []string{"postgres-outbox"}).Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
	}
	want := map[string]int{
		"fraiseql_bridge_events_forwarded_total":    3,
		"fraiseql_bridge_events_deduplicated_total": 3,
		"fraiseql_bridge_reconnects_total":          3,
		"fraiseql_bridge_leader":                    3,
		"fraiseql_bridge_source_lag":                2,
		"fraiseql_bridge_events_rejected_total":     2, // redis' two sources × one reason
	}
	for name, n := range want {
		if series[name] != n {
			t.Errorf("%s: %d series, want %d", name, series[name], n)
		}
	}
	if len(series) != len(want) {
		t.Errorf("families %v, want exactly %v", series, want)
	}
}
