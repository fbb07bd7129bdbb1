package redis

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCollectorsRegister checks that the metric names are the families
// both bridges share (fraiseql_bridge_*), that they register cleanly, and
// that every source's series exists before its first event.
func TestCollectorsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newMetrics().Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"fraiseql_bridge_events_forwarded_total": true, "fraiseql_bridge_events_rejected_total": true,
		"fraiseql_bridge_events_deduplicated_total": true, "fraiseql_bridge_source_lag": true,
		"fraiseql_bridge_reconnects_total": true, "fraiseql_bridge_leader": true,
	}
	for _, mf := range mfs {
		delete(want, mf.GetName())
		if mf.GetName() == "fraiseql_bridge_leader" && len(mf.GetMetric()) != 2 {
			t.Errorf("fraiseql_bridge_leader has %d series before any lease, want one per source (2)", len(mf.GetMetric()))
		}
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
