package cluster_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/cluster"
)

// gauges gathers c's collectors and returns the unlabelled gauges by name.
func gauges(t *testing.T, c *cluster.Cluster) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if ms := mf.GetMetric(); len(ms) == 1 && ms[0].Gauge != nil && len(ms[0].GetLabel()) == 0 {
			out[mf.GetName()] = ms[0].GetGauge().GetValue()
		}
	}
	return out
}

// heldConsumer starts c's consumer, each event waiting for a value on
// hold before its sequence goes to got; it stops at cleanup.
func heldConsumer(t *testing.T, c *cluster.Cluster) (hold chan<- struct{}, got <-chan uint64) {
	t.Helper()
	h, g := make(chan struct{}), make(chan uint64, 16)
	k, err := c.Consume(testCtx(t), func(ev *cluster.Event) {
		<-h
		g <- ev.Seq
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(h); k.Stop() })
	return h, g
}

// TestConsumerLagMetrics: the stream's last sequence is reported with or
// without a consumer; the consumer's lag grows while it is held up and
// returns to 0 once it has delivered everything.
func TestConsumerLagMetrics(t *testing.T) {
	c := open(t, cluster.Config{})
	ctx := testCtx(t)
	publish := func(k int) {
		for range k {
			if _, err := c.Publish(ctx, "acme", "chat.r1", []byte(`{"id":"1"}`), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(2)
	g := gauges(t, c)
	if g["fraiseql_nats_stream_last_seq"] != 2 {
		t.Fatalf("stream last seq %v, want 2", g["fraiseql_nats_stream_last_seq"])
	}
	if _, ok := g["fraiseql_nats_consumer_lag"]; ok {
		t.Fatal("fraiseql_nats_consumer_lag reported without a consumer")
	}

	hold, got := heldConsumer(t, c)
	publish(3) // the first blocks the consumer: 2 of them wait at least
	waitLag := func(cond func(float64) bool) map[string]float64 {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if g := gauges(t, c); cond(g["fraiseql_nats_consumer_lag"]) {
				return g
			}
		}
		t.Fatal("lag never reached the expected value")
		return nil
	}
	g = waitLag(func(v float64) bool { return v >= 2 })
	if g["fraiseql_nats_stream_last_seq"] != 5 || g["fraiseql_nats_consumer_delivered_seq"] > 3 {
		t.Fatalf("while held: %v", g)
	}
	for range 3 {
		hold <- struct{}{}
		recv(t, got, 5*time.Second)
	}
	g = waitLag(func(v float64) bool { return v == 0 })
	if g["fraiseql_nats_consumer_delivered_seq"] != 5 {
		t.Fatalf("after delivery: %v", g)
	}
}

// TestConsumerLagInterestMode: with nats.ingest: interest the lag is the
// republished events the ingest loop has not taken yet: absent without a
// consumer, growing while delivery is held up, 0 once all are delivered.
func TestConsumerLagInterestMode(t *testing.T) {
	c := open(t, cluster.Config{Ingest: cluster.IngestInterest})
	ctx := testCtx(t)
	if _, ok := gauges(t, c)["fraiseql_nats_consumer_lag"]; ok {
		t.Fatal("fraiseql_nats_consumer_lag reported without a consumer")
	}
	hold, got := heldConsumer(t, c)
	subj, _ := c.Subject("acme", "chat.r1")
	if err := c.Interest(ctx, subj); err != nil {
		t.Fatal(err)
	}
	defer c.Uninterest(subj)
	lag := func() float64 {
		v, ok := gauges(t, c)["fraiseql_nats_consumer_lag"]
		if !ok {
			t.Fatal("fraiseql_nats_consumer_lag absent while the interest consumer runs")
		}
		return v
	}
	if v := lag(); v != 0 {
		t.Fatalf("idle lag %v, want 0", v)
	}
	// One event through first: the loop has started the subject's feed,
	// so what follows waits in the buffer, not held for the start.
	if _, err := c.Publish(ctx, "acme", "chat.r1", []byte(`{"id":"0"}`), ""); err != nil {
		t.Fatal(err)
	}
	hold <- struct{}{}
	recv(t, got, 5*time.Second)
	for range 5 {
		if _, err := c.Publish(ctx, "acme", "chat.r1", []byte(`{"id":"1"}`), ""); err != nil {
			t.Fatal(err)
		}
	}
	waitGauge := func(what string, cond func(float64) bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if cond(lag()) {
				return
			}
		}
		t.Fatalf("lag never %s (now %v)", what, lag())
	}
	// The first event holds the loop in delivery; the other 4 wait.
	waitGauge("4 while held", func(v float64) bool { return v == 4 })
	for range 5 {
		hold <- struct{}{}
		recv(t, got, 5*time.Second)
	}
	waitGauge("0 once delivered", func(v float64) bool { return v == 0 })
}
