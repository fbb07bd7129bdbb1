package redis

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func counter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }

// TestCollectorsRegister checks that the metric names are
// the bridge's own (fraiseql_redis_bridge_*) and register cleanly.
func TestCollectorsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetrics().collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"fraiseql_redis_bridge_events_forwarded_total": true, "fraiseql_redis_bridge_rejected_total": true,
		"fraiseql_redis_bridge_deduplicated_total": true, "fraiseql_redis_bridge_source_lag": true,
		"fraiseql_redis_bridge_reconnects_total": true, "fraiseql_redis_bridge_leader": true,
	}
	for _, mf := range mfs {
		delete(want, mf.GetName())
	}
	if len(want) > 0 {
		t.Fatalf("missing metrics: %v", want)
	}
}
