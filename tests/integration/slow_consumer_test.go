//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// heapInuse returns the heap in use after full collections (two: the
// first only moves sync.Pool contents, NATS's buffers among them, to
// their victim cache).
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// gaugeValue returns the node's gauge name (0 when absent).
func gaugeValue(t testing.TB, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.node.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// labelledCounter returns the node's counter name{label=value} (0 when absent).
func labelledCounter(t testing.TB, e *env, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.node.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestNonReadingClientsKeepMemoryBounded is the attack: connections that
// subscribe, each with its own projection (so nothing is shared between
// their queues), and then never read, while 1 MiB events are published.
// Each connection's queue is bounded in bytes (ws.max_queued_bytes, 4 MiB by
// default): the node's heap stays within the budgets plus a fixed margin,
// and each connection is closed with 1013 long before its write deadline.
func TestNonReadingClientsKeepMemoryBounded(t *testing.T) {
	const (
		conns  = 4
		events = 48
		budget = 4 << 20 // the default ws.max_queued_bytes
		// Per connection beyond its queue: the write batch (64 KiB + one
		// frame) and the frame being rendered.
		perConnMargin = 2 << 20
		// The in-process NATS server, the node's consumer buffers and
		// the test's own event bodies.
		fixedMargin = 40 << 20
	)
	e := startNode(t, startNATS(t), func(c *node.Config, cc *cluster.Config) {
		c.Limits.EventRate = -1
		// The write deadline is far away: the byte budget must act first.
		c.WS.WriteTimeout = time.Minute
		cc.MaxBytes = 16 << 20 // the stream itself holds little of the attack
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var clients []*websocket.Conn
	for i := range conns {
		c, _, err := websocket.Dial(ctx, e.ws, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		c.SetReadLimit(4 << 20)
		clients = append(clients, c)
		// A distinct alias per connection: a distinct plan, so a payload
		// of its own.
		for _, m := range []string{
			`{"type":"connection_init"}`,
			fmt.Sprintf(`{"id":"1","type":"subscribe","payload":{"query":"subscription { messageAdded(room: \"big\") { a%d: text } }"}}`, i),
		} {
			if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 10*time.Second, "the subscriptions", func() bool { return e.node.Stats().Subscriptions == conns })
	base := heapInuse()

	body := []byte(`{"id":"1","room":"big","text":"` + strings.Repeat("x", 1_000_000) + `"}`)
	var peakHeap uint64
	var peakQueued float64
	for i := range events {
		e.publish("chat.big", body)
		if i%8 == 7 {
			waitFor(t, 20*time.Second, "the events routed", func() bool { return e.node.Stats().EventsReceived >= uint64(i+1) })
			peakHeap = max(peakHeap, heapInuse())
			peakQueued = max(peakQueued, gaugeValue(t, e, "fraiseql_queued_bytes"))
		}
	}
	waitFor(t, 20*time.Second, "every event routed", func() bool { return e.node.Stats().EventsReceived >= events })
	peakHeap = max(peakHeap, heapInuse())

	limit := uint64(conns*(budget+perConnMargin) + fixedMargin)
	t.Logf("heap in use: base %d MiB, peak %d MiB (+%d MiB), limit +%d MiB; peak queued %v bytes",
		base>>20, peakHeap>>20, (peakHeap-min(base, peakHeap))>>20, limit>>20, peakQueued)
	if peakHeap > base && peakHeap-base > limit {
		t.Errorf("heap grew by %d MiB under %d non-reading connections, want at most %d MiB", (peakHeap-base)>>20, conns, limit>>20)
	}
	if peakQueued > conns*budget {
		t.Errorf("fraiseql_queued_bytes peaked at %v, want at most %d", peakQueued, conns*budget)
	}

	// The clients read at last: what the sockets held, then close 1013.
	for i, c := range clients {
		var err error
		for n := 0; n <= events; n++ {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			_, _, err = c.Read(rctx)
			rcancel()
			if err != nil {
				break
			}
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusTryAgainLater {
			t.Errorf("client %d: read ended with %v, want close 1013", i, err)
		}
	}
	if got := labelledCounter(t, e, "fraiseql_slow_consumer_closes_total", "reason", "conn_bytes"); got != conns {
		t.Errorf(`fraiseql_slow_consumer_closes_total{reason="conn_bytes"} = %v, want %d`, got, conns)
	}
}

// TestNonReadingResumeKeepsMemoryBounded: a client resumes five
// subscriptions, each with its own projection, from an old cursor, so the
// node replays a large backlog to each, and never reads. Replay waits for
// queue space (bounded by ws.max_queued_bytes, for the connection), the
// live events that arrive meanwhile are held within the same budget (for
// the connection) and let go past it (a later replay round reads them from
// the stream), each replay prefetches at most 4 MiB from the stream, and
// the stuck connection ends as a slow consumer (1013) at its
// write deadline: the heap never holds the backlog.
func TestNonReadingResumeKeepsMemoryBounded(t *testing.T) {
	const (
		subs     = 5 // limits.max_subscriptions_per_conn
		backlog  = 24
		live     = 36
		budget   = 4 << 20
		prefetch = 4 << 20 // per replay: what cluster.Replay prefetches
		// The in-process NATS server caches the stream being replayed
		// (about its size here), and the node renders each event.
		fixedMargin = 80 << 20
	)
	e := startNode(t, startNATS(t), func(c *node.Config, cc *cluster.Config) {
		c.Limits.EventRate = -1
		c.WS.WriteTimeout = 3 * time.Second
		cc.MaxBytes = 128 << 20
	})
	first := dialTransport(t, e.ws)
	first.subscribe("1", `subscription { messageAdded(room: "rb") { text } }`, nil, "")
	waitFor(t, 10*time.Second, "the subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publish("chat.rb", `{"id":"0","room":"rb","text":"before"}`)
	cursor := first.next("1").Extensions.Cursor
	first.c.CloseNow()
	waitFor(t, 10*time.Second, "the first connection gone", func() bool { return e.node.Stats().Subscriptions == 0 })

	body := []byte(`{"id":"1","room":"rb","text":"` + strings.Repeat("x", 1_000_000) + `"}`)
	for range backlog {
		e.publish("chat.rb", body)
	}
	base := heapInuse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.ws, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	msgs := []string{`{"type":"connection_init"}`}
	for i := range subs {
		msgs = append(msgs, fmt.Sprintf(`{"id":"%d","type":"subscribe","payload":{"query":"subscription { messageAdded(room: \"rb\") { a%d: text } }","extensions":{"cursor":"%s"}}}`, i, i, cursor))
	}
	for _, m := range msgs {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the resumed subscriptions", func() bool { return e.node.Stats().Subscriptions == subs })
	received := e.node.Stats().EventsReceived
	var peak uint64
	for i := range live {
		e.publish("chat.rb", body)
		if i%6 == 5 {
			peak = max(peak, heapInuse())
		}
	}
	waitFor(t, 20*time.Second, "the live events routed", func() bool { return e.node.Stats().EventsReceived >= received+live })
	peak = max(peak, heapInuse())
	limit := uint64(2*budget + subs*prefetch + fixedMargin) // the queue, the held events, prefetch, margin
	t.Logf("heap in use: base %d MiB, peak %d MiB (+%d MiB), limit +%d MiB", base>>20, peak>>20, (peak-min(base, peak))>>20, limit>>20)
	if peak > base && peak-base > limit {
		t.Errorf("heap grew by %d MiB for one non-reading resuming client, want at most %d MiB", (peak-base)>>20, limit>>20)
	}
	waitFor(t, 20*time.Second, "the slow consumer closed", func() bool { return e.node.Stats().SlowClients == 1 })
	if got := labelledCounter(t, e, "fraiseql_slow_consumer_closes_total", "reason", "write_timeout"); got != 1 {
		t.Errorf(`fraiseql_slow_consumer_closes_total{reason="write_timeout"} = %v, want 1`, got)
	}
	if got := labelledCounter(t, e, "fraiseql_connections_closed_total", "reason", "slow_consumer"); got != 1 {
		t.Errorf(`fraiseql_connections_closed_total{reason="slow_consumer"} = %v, want 1`, got)
	}
}
