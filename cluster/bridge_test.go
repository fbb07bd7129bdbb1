package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// consumerNames lists the stream's consumers.
func consumerNames(t *testing.T, c *cluster.Cluster) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.JetStream().Stream(ctx, c.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	l := st.ConsumerNames(ctx)
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// deleteConsumers deletes every consumer of the stream.
func deleteConsumers(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range consumerNames(t, c) {
		if err := c.JetStream().DeleteConsumer(ctx, c.StreamName(), name); err != nil {
			t.Fatal(err)
		}
	}
}

// consumeLive starts consuming on c, publishes one event and waits for
// it: the consumer is live. Events arrive on the returned channel; first
// is that event's sequence.
func consumeLive(t *testing.T, c *cluster.Cluster) (_ <-chan *cluster.Event, _ *cluster.Consumer, first uint64) {
	t.Helper()
	events := make(chan *cluster.Event, 100)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	first = mustPublish(t, c, "acme", "chat", `{"n":0}`, "").Seq
	if e := recv(t, events, 10*time.Second); e.Seq != first {
		t.Fatalf("seq %d, want %d", e.Seq, first)
	}
	return events, k, first
}

// TestDeliveryBridgesWhileNoConsumerCanBeCreated: the node's consumer is
// lost and no new one can be created (as while the meta leader is being
// elected, or every attempt lands on a dead server). Events go on
// arriving, in order, read from the stream with direct gets; once a
// consumer can be created again it takes over after the last one, with
// neither gap nor duplicate.
func TestDeliveryBridgesWhileNoConsumerCanBeCreated(t *testing.T) {
	url := clustertest.RunServer(t)
	c := open(t, cluster.Config{URL: url, Name: "node-b"})
	events, _, _ := consumeLive(t, c)

	c.RefuseConsumersForTest(true)
	deleteConsumers(t, c)
	var want []uint64
	for i := range 20 {
		topic := []string{"chat", "news"}[i%2]
		want = append(want, mustPublish(t, c, "acme", topic, fmt.Sprintf(`{"n":%d}`, i+1), "").Seq)
	}
	for i, w := range want {
		e := recv(t, events, 15*time.Second)
		if e.Seq != w {
			t.Fatalf("event %d: seq %d, want %d", i, e.Seq, w)
		}
		if wantTopic := []string{"chat", "news"}[i%2]; e.Tenant != "acme" || e.Topic != wantTopic || e.Cursor == "" {
			t.Fatalf("event %d: tenant %q topic %q cursor %q, want acme %s and a cursor", i, e.Tenant, e.Topic, e.Cursor, wantTopic)
		}
	}
	if got := c.BridgedForTest(); got != 20 {
		t.Fatalf("bridged %v events, want the 20 stored while no consumer ran", got)
	}
	if names := consumerNames(t, c); len(names) != 0 {
		t.Fatalf("consumers %v exist although creation was refused", names)
	}

	c.RefuseConsumersForTest(false)
	checkFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		if names := consumerNames(t, c); len(names) != 1 || !strings.HasPrefix(names[0], "node-b_") {
			return fmt.Errorf("consumers %v, want one of node-b's", names)
		}
		return nil
	})
	want = want[:0]
	for i := range 5 {
		want = append(want, mustPublish(t, c, "acme", "chat", fmt.Sprintf(`{"n":%d}`, 21+i), "").Seq)
	}
	for _, w := range want {
		if e := recv(t, events, 15*time.Second); e.Seq != w {
			t.Fatalf("after the consumer came back: seq %d, want %d", e.Seq, w)
		}
	}
	noRecv(t, events, 200*time.Millisecond)
	if got := c.BridgedForTest(); got != 20 {
		t.Fatalf("bridged %v events, want still 20: the new consumer delivers", got)
	}
}

// TestLostMessageIsDeliveredAgain: a message of the node's consumer lost
// on the way (a slow-consumer drop on the connection, a message in flight
// on a reconnect) shows as a gap in the consumer's delivery sequence; the
// consumer is re-created after the last delivered event, so the lost one
// arrives, in its place, and nothing twice.
func TestLostMessageIsDeliveredAgain(t *testing.T) {
	c := open(t, cluster.Config{})
	events, _, first := consumeLive(t, c)
	lose := first + 3
	var dropped int
	c.DropConsumedForTest(func(seq uint64) bool {
		if seq == lose && dropped == 0 { // run's goroutine only
			dropped++
			return true
		}
		return false
	})
	var want []uint64
	for i := range 10 {
		want = append(want, mustPublish(t, c, "acme", "chat", fmt.Sprintf(`{"n":%d}`, i+1), "").Seq)
	}
	for _, w := range want {
		if e := recv(t, events, 15*time.Second); e.Seq != w {
			t.Fatalf("seq %d, want %d", e.Seq, w)
		}
	}
	noRecv(t, events, 200*time.Millisecond)
	if dropped != 1 {
		t.Fatalf("dropped %d messages, want 1", dropped)
	}
}

// TestBridgeOverManyBatches: more events wait than one bridge reads (8
// direct gets of up to 256), so run bridges several times between its
// attempts to create a consumer: every event arrives once, in order.
func TestBridgeOverManyBatches(t *testing.T) {
	c := open(t, cluster.Config{})
	events := make(chan *cluster.Event, 4000)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	c.RefuseConsumersForTest(true)
	deleteConsumers(t, c)
	const n = 3000 // > 8 × 256
	var want []uint64
	for i := range n {
		want = append(want, mustPublish(t, c, "acme", "chat", fmt.Sprintf(`{"n":%d}`, i), "").Seq)
	}
	for i, w := range want {
		if e := recv(t, events, 15*time.Second); e.Seq != w {
			t.Fatalf("event %d: seq %d, want %d", i, e.Seq, w)
		}
	}
	noRecv(t, events, 200*time.Millisecond)
	if got := c.BridgedForTest(); got != n {
		t.Fatalf("bridged %v events, want %d", got, n)
	}
}
