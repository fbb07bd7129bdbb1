package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// collector returns c's collector named name.
func collector(t *testing.T, c *cluster.Cluster, name string) prometheus.Collector {
	t.Helper()
	for _, col := range c.Collectors() {
		ch := make(chan *prometheus.Desc, 1)
		col.Describe(ch)
		if strings.Contains((<-ch).String(), `"`+name+`"`) {
			return col
		}
	}
	t.Fatalf("no collector %s", name)
	return nil
}

// TestStallIsDetectedAndRepaired pauses this node's consumer on the
// server: it stays, heartbeats and all, but delivers nothing, like a
// consumer left on a server that lost its stream. The watchdog sees
// events waiting in the stream while none arrives, logs and counts the
// stall, re-creates the consumer after the last delivered sequence, and
// every event arrives, in order.
func TestStallIsDetectedAndRepaired(t *testing.T) {
	url := clustertest.RunServer(t)
	c := open(t, cluster.Config{URL: url, Name: "node-7"})
	events, k, _ := consumeLive(t, c)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.JetStream().Stream(ctx, c.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	var paused int
	for _, name := range consumerNames(t, c) {
		// The consumer is named after the node, and the server drops it
		// 15 s after nobody pulls from it (a killed node's, a replaced one).
		if !strings.HasPrefix(name, "node-7_") {
			t.Errorf("consumer %q does not carry the node id node-7", name)
		}
		info, err := st.Consumer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.CachedInfo().Config.InactiveThreshold; got != 15*time.Second {
			t.Errorf("consumer %s: inactive threshold %v, want 15s", name, got)
		}
		// Paused, the server keeps the consumer and its heartbeats but
		// delivers nothing: a consumer that looks alive and is stuck.
		if _, err := c.JetStream().PauseConsumer(ctx, c.StreamName(), name, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		paused++
	}
	if paused != 1 {
		t.Fatalf("paused %d consumers, want this node's one", paused)
	}

	var want []uint64
	for range 3 {
		want = append(want, mustPublish(t, c, "acme", "chat", `{"n":1}`, "").Seq)
	}
	start := time.Now()
	for _, w := range want {
		if e := recv(t, events, 15*time.Second); e.Seq != w {
			t.Fatalf("after the stall: seq %d, want %d", e.Seq, w)
		}
	}
	t.Logf("delivery resumed %v after the consumer was lost", time.Since(start).Round(time.Millisecond))
	if got := k.StallResetsForTest(); got < 1 {
		t.Fatalf("the watchdog re-created nothing (%d); the library recovered alone", got)
	}
	if got := testutil.ToFloat64(collector(t, c, "fraiseql_delivery_stalls_total")); got != 1 {
		t.Fatalf("fraiseql_delivery_stalls_total = %v, want 1", got)
	}
	checkFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if got := testutil.ToFloat64(collector(t, c, "fraiseql_delivery_stall_seconds_total")); got < 2 {
			return fmt.Errorf("stall seconds %v, want >= 2 (the stall lasted at least stallAfter)", got)
		}
		return nil
	})
	noRecv(t, events, 100*time.Millisecond)
}

// TestNoStallOnAHealthyConsumer: a quiet spell longer than the stall
// threshold, then a steady flow, is not a stall.
func TestNoStallOnAHealthyConsumer(t *testing.T) {
	c := open(t, cluster.Config{})
	events := make(chan *cluster.Event, 1000)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	time.Sleep(3 * time.Second) // quiet: no progress, nothing waiting
	for range 100 {
		mustPublish(t, c, "acme", "chat", `{"n":1}`, "")
		recv(t, events, 10*time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(collector(t, c, "fraiseql_delivery_stalls_total")); got != 0 || k.StallResetsForTest() != 0 {
		t.Fatalf("healthy consumer: %v stalls, %d resets", got, k.StallResetsForTest())
	}
}
