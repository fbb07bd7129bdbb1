package redis

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

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

// TestWarnEnvelopeRateLimited: the migration warning is logged at most
// once per envelopeWarnEvery.
func TestWarnEnvelopeRateLimited(t *testing.T) {
	b := &Bridge{log: slog.New(slog.DiscardHandler)}
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at   time.Duration
		want bool
	}{{0, true}, {time.Second, false}, {envelopeWarnEvery - 1, false}, {envelopeWarnEvery, true}, {envelopeWarnEvery + 1, false}, {2 * envelopeWarnEvery, true}}
	for _, s := range steps {
		if got := b.warnEnvelope(t0.Add(s.at), sourcePubSub, "channel", "c"); got != s.want {
			t.Errorf("at +%v: logged %v, want %v", s.at, got, s.want)
		}
	}
}
