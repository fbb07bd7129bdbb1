//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/internal/uring/uringtest"
	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/ws"
)

func goleakOptions() []goleak.Option {
	return []goleak.Option{
		// The net/http client keeps idle keep-alive conns' readers for a while.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	}
}

const roomQuery = `subscription($room: ID!) { messageAdded(room: $room) { id text author { name } } }`

func TestSubscribeReceivesProjectedEventWithCursor(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscription registered", func() bool { return e.node.Stats().Subscriptions == 1 })

	e.publish("chat.r2", `{"id":"0","room":"r2","text":"other room"}`)
	seq := e.publish("chat.r1", `{"id":"7","room":"r1","text":"hi","secret":"not selected","author":{"name":"ann","email":"x"}}`)

	m := c.expectType("next")
	want := `{"data":{"messageAdded":{"id":"7","text":"hi","author":{"name":"ann"}}},"extensions":{"cursor":"` + e.cl.Cursor("public", seq) + `"}}`
	if string(m.Payload) != want {
		t.Fatalf("payload\n got %s\nwant %s", m.Payload, want)
	}
	c.expectNothing(200 * time.Millisecond) // the r2 event was not delivered
}

func TestCompleteStopsDelivery(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	c.subscribe("a", roomQuery, map[string]any{"room": "r1"}, "")
	c.subscribe("b", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "2 subscriptions", func() bool { return e.node.Stats().Subscriptions == 2 })
	e.publish("chat.r1", `{"id":"1","room":"r1","text":"one"}`)
	got := map[string]bool{c.read().ID: true, c.read().ID: true}
	if !got["a"] || !got["b"] {
		t.Fatalf("want next for a and b, got %v", got)
	}

	c.send(`{"id":"a","type":"complete"}`)
	waitFor(t, 5*time.Second, "a removed", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publish("chat.r1", `{"id":"2","room":"r1","text":"two"}`)
	r := c.next("b")
	if string(r.Data["messageAdded"]) != `{"id":"2","text":"two","author":null}` {
		t.Fatalf("b got %s", r.Data["messageAdded"])
	}
	c.expectNothing(200 * time.Millisecond)
}

func TestIdenticalPlansShareOneEncode(t *testing.T) {
	e := newEnv(t)
	c1 := dialTransport(t, e.ws)
	c2 := dialTransport(t, e.ws)
	// Same plan written differently: whitespace and a variable vs a literal.
	c1.subscribe("x", roomQuery, map[string]any{"room": "r1"}, "")
	c2.subscribe("y", `subscription { messageAdded(room: "r1") {   id text author { name } } }`, nil, "")
	// A different projection is a different plan.
	c3 := dialTransport(t, e.ws)
	c3.subscribe("z", `subscription { messageAdded(room: "r1") { text } }`, nil, "")
	waitFor(t, 5*time.Second, "3 subscriptions", func() bool { return e.node.Stats().Subscriptions == 3 })
	if p := e.node.Stats().Plans; p != 2 {
		t.Fatalf("plans = %d, want 2 (x and y share one)", p)
	}
	before := e.node.Stats().Encodes
	e.publish("chat.r1", `{"id":"1","room":"r1","text":"same bytes"}`)
	m1, m2 := c1.expectType("next"), c2.expectType("next")
	c3.expectType("next")
	if !bytes.Equal(m1.Payload, m2.Payload) {
		t.Fatalf("payloads differ:\n%s\n%s", m1.Payload, m2.Payload)
	}
	if got := e.node.Stats().Encodes - before; got != 2 {
		t.Fatalf("encodes for one event = %d, want 2 (one per plan, not per subscriber)", got)
	}
}

func TestInvalidQueryKeepsConnectionUsable(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	cases := []struct {
		name, query, code string
	}{
		{"unknown field", `subscription { nope { id } }`, "GRAPHQL_VALIDATION_FAILED"},
		{"not a subscription", `query { health }`, "GRAPHQL_VALIDATION_FAILED"},
		{"syntax", `subscription { messageAdded(room: "r1") { id `, "GRAPHQL_PARSE_FAILED"},
		{"missing required arg", `subscription { messageAdded { id } }`, "GRAPHQL_VALIDATION_FAILED"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprint("bad", i)
			c.subscribe(id, tc.query, nil, "")
			if got := c.errorCode(id); got != tc.code {
				t.Fatalf("code = %s, want %s", got, tc.code)
			}
		})
	}
	// The same connection still works.
	c.subscribe("ok", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publish("chat.r1", `{"id":"1","room":"r1","text":"still here"}`)
	c.next("ok")
}

func TestCloseCodes(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		do   func(c *client)
		code websocket.StatusCode
	}{
		{"bad JSON is 4400", func(c *client) { c.send(`{"type":`) }, 4400},
		{"unknown type is 4400", func(c *client) {
			c.send(`{"type":"connection_init"}`)
			c.expectType("connection_ack")
			c.send(`{"type":"bogus"}`)
		}, 4400},
		{"subscribe before ack is 4401", func(c *client) {
			c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
		}, 4401},
		{"no init in time is 4408", func(c *client) {}, 4408},
		{"duplicate id is 4409", func(c *client) {
			c.send(`{"type":"connection_init"}`)
			c.expectType("connection_ack")
			c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
			c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
		}, 4409},
		{"second init is 4429", func(c *client) {
			c.send(`{"type":"connection_init"}`)
			c.expectType("connection_ack")
			c.send(`{"type":"connection_init"}`)
		}, 4429},
		{"message over 256 KiB is 1009", func(c *client) {
			c.send(`{"type":"connection_init"}`)
			c.expectType("connection_ack")
			c.send(`{"type":"ping","payload":{"pad":"` + strings.Repeat("x", 256<<10) + `"}}`)
		}, websocket.StatusMessageTooBig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, e.ws, "graphql-transport-ws")
			tc.do(c)
			c.expectClose(tc.code)
		})
	}
}

func TestShutdownClosesWith1001(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go e.node.Shutdown(ctx) // Cleanup's Shutdown waits for this one (idempotent)
	c.expectClose(websocket.StatusGoingAway)
}

func TestLegacyGraphQLWSProtocol(t *testing.T) {
	e := newEnv(t)
	c := dial(t, e.ws, "graphql-ws")
	c.send(`{"type":"connection_init","payload":{}}`)
	c.expectType("connection_ack")
	c.send(`{"id":"1","type":"start","payload":{"query":"subscription { messageAdded(room: \"r1\") { id text } }"}}`)
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	seq := e.publish("chat.r1", `{"id":"9","room":"r1","text":"legacy"}`)
	m := c.expectType("data")
	want := `{"data":{"messageAdded":{"id":"9","text":"legacy"}},"extensions":{"cursor":"` + e.cl.Cursor("public", seq) + `"}}`
	if m.ID != "1" || string(m.Payload) != want {
		t.Fatalf("data %s, want id 1 payload %s", m.raw, want)
	}
	c.send(`{"id":"2","type":"start","payload":{"query":"subscription { nope }"}}`)
	if m := c.expectType("error"); m.ID != "2" || !strings.Contains(string(m.Payload), "GRAPHQL_VALIDATION_FAILED") {
		t.Fatalf("legacy error %s", m.raw)
	}
	c.send(`{"id":"1","type":"stop"}`)
	c.expectType("complete")
	waitFor(t, 5*time.Second, "unsubscribed", func() bool { return e.node.Stats().Subscriptions == 0 })
	c.send(`{"type":"connection_terminate"}`)
	c.expectClose(websocket.StatusNormalClosure)
}

func TestThousandSubscribersOneSubject(t *testing.T) {
	const subscribers = 1000
	// One test process is one IP and one anonymous user: lift the per-IP
	// and per-user limits that would (rightly) stop 1,000 connections.
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) {
		c.Limits.ConnRatePerIP, c.Limits.MaxConnsPerUser, c.Limits.SubscribeRate = -1, -1, -1
	})
	clients := make([]*client, subscribers)
	for i := range clients {
		clients[i] = dialTransport(t, e.ws)
		clients[i].subscribe("s", roomQuery, map[string]any{"room": "big"}, "")
	}
	waitFor(t, 30*time.Second, "1000 subscriptions", func() bool { return e.node.Stats().Subscriptions == subscribers })
	seq := e.publish("chat.big", `{"id":"1","room":"big","text":"to all"}`)
	want := `{"data":{"messageAdded":{"id":"1","text":"to all","author":null}},"extensions":{"cursor":"` + e.cl.Cursor("public", seq) + `"}}`
	var wg sync.WaitGroup
	errs := make(chan string, subscribers)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := c.readErr(30 * time.Second)
			if err != nil || m.Type != "next" || string(m.Payload) != want {
				errs <- fmt.Sprintf("client %d: %v %s", i, err, m.raw)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if enc := e.node.Stats().Encodes; enc != 1 {
		t.Errorf("encodes = %d, want 1 for 1000 subscribers of one plan", enc)
	}
}

// TestResumeOnAnotherNode: a client drops, events are published while it is
// away, and it resumes on a different node with its last cursor: it gets
// exactly the missed events, in order, then live ones, no gap, no duplicate.
func TestResumeOnAnotherNode(t *testing.T) {
	url := startNATS(t)
	a := startNode(t, url, nil)
	b := startNode(t, url, nil)

	c := dialTransport(t, a.ws)
	c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscription on a", func() bool { return a.node.Stats().Subscriptions == 1 })
	var cursor string
	for i := 1; i <= 3; i++ {
		a.publish("chat.r1", fmt.Sprintf(`{"id":"%d","room":"r1","text":"m"}`, i))
		r := c.next("1")
		cursor = r.Extensions.Cursor
	}
	c.c.CloseNow()
	for i := 4; i <= 6; i++ { // missed while away; noise on another room too
		a.publish("chat.r1", fmt.Sprintf(`{"id":"%d","room":"r1","text":"m"}`, i))
		a.publish("chat.r2", `{"id":"x","room":"r2","text":"noise"}`)
	}

	c2 := dialTransport(t, b.ws)
	c2.subscribe("1", roomQuery, map[string]any{"room": "r1"}, cursor)
	// Publish live events while the replay may still be running.
	go func() {
		for i := 7; i <= 9; i++ {
			b.publish("chat.r1", fmt.Sprintf(`{"id":"%d","room":"r1","text":"m"}`, i))
		}
	}()
	for i := 4; i <= 9; i++ {
		r := c2.next("1")
		var msg struct{ ID string }
		json.Unmarshal(r.Data["messageAdded"], &msg)
		if msg.ID != fmt.Sprint(i) {
			t.Fatalf("event %d: got id %s (%s)", i, msg.ID, r.Data["messageAdded"])
		}
	}
	c2.expectNothing(300 * time.Millisecond)
}

func TestCursorErrors(t *testing.T) {
	url := startNATS(t)
	e := startNode(t, url, func(_ *node.Config, c *cluster.Config) {
		c.MaxAge, c.DuplicateWindow = 2*time.Second, time.Second
	})
	c := dialTransport(t, e.ws)
	c.subscribe("bad", roomQuery, map[string]any{"room": "r1"}, "not-a-cursor")
	if got := c.errorCode("bad"); got != "BAD_CURSOR" {
		t.Fatalf("bad cursor code = %s", got)
	}
	seq := e.publish("chat.r1", `{"id":"1","room":"r1","text":"old"}`)
	e.publish("chat.r1", `{"id":"2","room":"r1","text":"old too"}`)
	// Wait until retention removed both events, then resume from before them.
	old := e.cl.Cursor("public", seq)
	waitFor(t, 15*time.Second, "retention to expire events", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := e.cl.JetStream().Stream(ctx, "EVENTS")
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
	e.publish("chat.r1", `{"id":"3","room":"r1","text":"new"}`)
	c.subscribe("old", roomQuery, map[string]any{"room": "r1"}, old)
	if got := c.errorCode("old"); got != "CURSOR_EXPIRED" {
		t.Fatalf("expired cursor code = %s", got)
	}
}

// TestResumeLargeBacklog: a client that missed more events than its
// connection's write queue holds still gets every one of them on resume,
// in order (replay waits for queue space instead of closing the client).
func TestResumeLargeBacklog(t *testing.T) {
	const missed = 3000 // > the default write queue (1024 frames)
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) { c.Limits.EventRate = -1 })
	c := dialTransport(t, e.ws)
	c.subscribe("1", roomQuery, map[string]any{"room": "r1"}, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publish("chat.r1", `{"id":"0","room":"r1","text":"m"}`)
	cursor := c.next("1").Extensions.Cursor
	c.c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 1; i <= missed; i++ {
		if _, err := e.cl.JetStream().PublishAsync("fraiseql.public.chat.r1", fmt.Appendf(nil, `{"id":"%d","room":"r1","text":"%s"}`, i, strings.Repeat("m", 4000))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-e.cl.JetStream().PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing timed out")
	}
	c2 := dialTransport(t, e.ws)
	c2.subscribe("1", roomQuery, map[string]any{"room": "r1"}, cursor)
	// Read nothing for a while: 12 MB of replay fills the socket buffers
	// and the write queue, as a client on a slow link would.
	time.Sleep(2 * time.Second)
	for i := 1; i <= missed; i++ {
		var msg struct{ ID string }
		json.Unmarshal(c2.next("1").Data["messageAdded"], &msg)
		if msg.ID != fmt.Sprint(i) {
			t.Fatalf("event %d: got id %s", i, msg.ID)
		}
	}
}

// nodeMetric sums every series of the node's metric name.
func nodeMetric(t testing.TB, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.node.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestWriteDelayCollectsEvents: with ws.write_delay, events published in
// quick succession reach a connection in fewer write rounds than events,
// all of them, in order.
func TestWriteDelayCollectsEvents(t *testing.T) {
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) {
		c.WS.WriteDelay = 500 * time.Millisecond
	})
	c := dialTransport(t, e.ws)
	c.subscribe("s", roomQuery, map[string]any{"room": "wd"}, "")
	waitFor(t, 10*time.Second, "the subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	rounds := nodeMetric(t, e, "fraiseql_flushes_total")
	const n = 10
	for i := range n {
		e.publish("chat.wd", fmt.Sprintf(`{"id":"%d","room":"wd","text":"t"}`, i))
	}
	for i := range n {
		var got struct{ ID string }
		r := c.next("s")
		if err := json.Unmarshal(r.Data["messageAdded"], &got); err != nil || got.ID != fmt.Sprint(i) {
			t.Fatalf("event %d: %s (%v)", i, r.Data["messageAdded"], err)
		}
	}
	if got := nodeMetric(t, e, "fraiseql_flushes_total") - rounds; got >= n/2 {
		t.Fatalf("%d write rounds for %d events published within the write delay", int(got), n)
	}
}

// TestIOUringWriteRounds: by default (ws.io_uring auto) a node's write
// rounds send through io_uring where the kernel allows it, and with off
// through write(2); either way every event arrives, in order.
func TestIOUringWriteRounds(t *testing.T) {
	uringtest.Require(t, ws.IOUringStatus())
	ns := startNATS(t)
	for _, mode := range []ws.IOUringMode{ws.IOUringAuto, ws.IOUringOff} {
		t.Run(string(mode), func(t *testing.T) {
			e := startNode(t, ns, func(c *node.Config, _ *cluster.Config) { c.WS.IOUring = mode })
			c := dialTransport(t, e.ws)
			room := "iou-" + string(mode)
			c.subscribe("s", roomQuery, map[string]any{"room": room}, "")
			waitFor(t, 10*time.Second, "the subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
			const n = 10
			for i := range n {
				e.publish("chat."+room, fmt.Sprintf(`{"id":"%d","room":"%s","text":"t"}`, i, room))
				var got struct{ ID string }
				r := c.next("s")
				if err := json.Unmarshal(r.Data["messageAdded"], &got); err != nil || got.ID != fmt.Sprint(i) {
					t.Fatalf("event %d: %s (%v)", i, r.Data["messageAdded"], err)
				}
			}
			sends := nodeMetric(t, e, "fraiseql_io_uring_sends_total")
			switch {
			case mode == ws.IOUringOff && sends != 0:
				t.Fatalf("io_uring off, yet %v sends through it", sends)
			case mode == ws.IOUringAuto && sends < n-1: // the first may meet the ack's write goroutine
				t.Fatalf("%v sends through io_uring for %d events", sends, n)
			}
		})
	}
}
