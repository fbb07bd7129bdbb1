package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testSchema(t testing.TB) *query.Schema {
	t.Helper()
	sdl, err := os.ReadFile("../cmd/fraiseql-node/demo.graphql")
	if err != nil {
		t.Fatal(err)
	}
	s, err := query.LoadSchema("demo.graphql", string(sdl))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testNode builds a node on an in-process NATS server; it is not started.
func testNode(t testing.TB) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cl, err := cluster.Open(ctx, cluster.Config{URL: clustertest.RunServer(t), Ingest: testIngest()}, log)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Schema: testSchema(t), Logger: log}, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		cl.Close()
	})
	return n
}

// queueSink stands in for a connection's bounded queue; what it is pushed
// is queued at once (the write rounds are ws's, tested there).
type queueSink struct {
	q    chan []byte
	errs []error // Error calls
}

func (s *queueSink) Next(p []byte) bool {
	select {
	case s.q <- p:
		return true
	default:
		return false
	}
}
func (s *queueSink) Push(_ *ws.Fanout, p []byte) bool { return s.Next(p) }
func (s *queueSink) NextWait(ctx context.Context, p []byte) bool {
	select {
	case s.q <- p:
		return true
	case <-ctx.Done():
		return false
	}
}
func (s *queueSink) Error(err error) { s.errs = append(s.errs, err) }
func (s *queueSink) Conn() *ws.Conn  { return nil }

func (s *queueSink) drain() {
	for {
		select {
		case <-s.q:
		default:
			return
		}
	}
}

// addSubscribers registers count subscriptions of one plan on n's index.
func addSubscribers(t testing.TB, n *Node, count int) []*queueSink {
	t.Helper()
	return addRoomSubscribers(t, n, "r1", count, 4)
}

// addRoomSubscribers registers count subscriptions to room chat.<room>,
// each with a queue of queueLen.
func addRoomSubscribers(t testing.TB, n *Node, room string, count, queueLen int) []*queueSink {
	t.Helper()
	plan, err := n.compiler.Load().Compile(query.Request{Query: `subscription { messageAdded(room: "` + room + `") { id text author { name } } }`})
	if err != nil {
		t.Fatal(err)
	}
	subject, err := n.cl.Subject("public", plan.Topic)
	if err != nil {
		t.Fatal(err)
	}
	sinks := make([]*queueSink, count)
	for i := range sinks {
		sinks[i] = &queueSink{q: make(chan []byte, queueLen)}
		s := testSub(sinks[i])
		s.plan, s.tenant, s.subject = plan, "public", subject
		n.idx.add(s)
	}
	return sinks
}

func benchEvent(n *Node) *cluster.Event {
	return &cluster.Event{
		Subject: n.cl.Prefix() + ".public.chat.r1",
		Tenant:  "public",
		Topic:   "chat.r1",
		Data:    []byte(`{"id":"7","room":"r1","text":"hello there","author":{"name":"ann","id":"u1"},"createdAt":"2026-11-27T00:00:00Z"}`),
		Cursor:  n.cl.Cursor("public", 1),
		Time:    time.Now(), // the write latency is observed too
	}
}

// TestRouteAllocationsDoNotGrowWithSubscribers checks that one event costs
// the same allocations for 10 and for 5,000 subscribers of one plan: the
// payload is encoded once and the same bytes are queued to each.
func TestRouteAllocationsDoNotGrowWithSubscribers(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race; make test-allocs runs this without it")
	}
	n := testNode(t)
	allocs := func(count int) float64 {
		n := testNodeIndexReset(n)
		sinks := addSubscribers(t, n, count)
		ev := benchEvent(n)
		r := newRouter(n)
		var seq uint64
		return testing.AllocsPerRun(50, func() {
			seq++
			ev.Seq = seq
			r.route(ev)
			for _, s := range sinks {
				s.drain()
			}
		})
	}
	few, many := allocs(10), allocs(5000)
	t.Logf("allocs per event: 10 subscribers %.1f, 5000 subscribers %.1f", few, many)
	if many > few {
		t.Fatalf("allocations grow with subscribers: %.1f for 10, %.1f for 5000", few, many)
	}
	if got := n.Stats().Delivered; got == 0 {
		t.Fatal("nothing delivered")
	}
}

// testNodeIndexReset gives n a fresh, empty routing index.
func testNodeIndexReset(n *Node) *Node {
	n.idx = newIndex()
	return n
}

func TestIndexSharesPlansAndCleansUp(t *testing.T) {
	n := testNode(t)
	plan, err := n.compiler.Load().Compile(query.Request{Query: `subscription { messageAdded(room: "r1") { id } }`})
	if err != nil {
		t.Fatal(err)
	}
	a, b := testSub(&queueSink{}), testSub(&queueSink{})
	a.plan, a.subject = plan, "s"
	b.plan, b.subject = plan, "s"
	n.idx.add(a)
	n.idx.add(b)
	if s, p := n.idx.counts(); s != 1 || p != 1 {
		t.Fatalf("subjects, plans = %d, %d; want 1, 1", s, p)
	}
	n.idx.remove(a)
	n.idx.remove(a) // idempotent
	if s, p := n.idx.counts(); s != 1 || p != 1 {
		t.Fatalf("after one remove: %d, %d", s, p)
	}
	n.idx.remove(b)
	if s, p := n.idx.counts(); s != 0 || p != 0 {
		t.Fatalf("after both removed: %d subjects, %d plans; want none left", s, p)
	}
}

func TestSubscriptionReplayThenLiveNoGapNoDuplicate(t *testing.T) {
	sink := &queueSink{q: make(chan []byte, 16)}
	s := testSub(sink)
	s.replaying, s.maxHeld = true, 10
	s.deliver(nil, 5, []byte("5")) // live, held during replay
	s.deliver(nil, 6, []byte("6"))
	ctx := context.Background()
	s.sendReplayed(ctx, 3, []byte("3"))
	s.sendReplayed(ctx, 4, []byte("4"))
	s.sendReplayed(ctx, 5, []byte("5"))
	if again, _ := s.goLive(ctx, 5); again {
		t.Fatal("goLive overflowed")
	}
	s.deliver(nil, 6, []byte("6")) // duplicate from a lagging consumer
	s.deliver(nil, 7, []byte("7"))
	var got string
	for len(sink.q) > 0 {
		got += string(<-sink.q)
	}
	if got != "34567" {
		t.Fatalf("delivered %q, want 34567", got)
	}
}

// TestSubscriptionReplayOverflow: live events that outgrow the hold bound
// during a replay are let go, and goLive asks for another round from the
// last event sent; what arrives after that round starts is held again, so
// nothing is lost or sent twice.
func TestSubscriptionReplayOverflow(t *testing.T) {
	sink := &queueSink{q: make(chan []byte, 16)}
	s := testSub(sink)
	s.replaying, s.maxHeld = true, 2
	ctx := context.Background()
	s.sendReplayed(ctx, 1, []byte("1"))
	for i := uint64(2); i <= 4; i++ { // live during the replay: 3 > maxHeld
		s.deliver(nil, i, []byte{'0' + byte(i)})
	}
	if len(s.pending) != 0 {
		t.Fatalf("%d events still held after the overflow", len(s.pending))
	}
	again, after := s.goLive(ctx, 1)
	if !again || after != 1 {
		t.Fatalf("goLive = %v, %d; want another round after 1", again, after)
	}
	s.deliver(nil, 5, []byte("5")) // held: the second round has begun
	for i := uint64(2); i <= 4; i++ {
		s.sendReplayed(ctx, i, []byte{'0' + byte(i)}) // the second round reads them from the stream
	}
	if again, _ := s.goLive(ctx, 4); again {
		t.Fatal("the second round overflowed")
	}
	s.deliver(nil, 6, []byte("6"))
	var got string
	for len(sink.q) > 0 {
		got += string(<-sink.q)
	}
	if got != "123456" {
		t.Fatalf("delivered %q, want 123456", got)
	}
	if len(sink.errs) != 0 {
		t.Fatalf("errors %v", sink.errs)
	}
}

// TestSubscriptionReplayHeldBytes: live events held during a replay are
// bounded in bytes too (the connection's queue budget). Held bytes of
// limit-1 and limit are kept; at limit+1 what is held is let go (the
// memory is bounded by the budget) and another replay round is due.
func TestSubscriptionReplayHeldBytes(t *testing.T) {
	const budget = 10
	for _, tc := range []struct {
		name     string
		last     int // size of the third event, after two of 4 bytes
		overflow bool
	}{
		{"limit-1", budget - 8 - 1, false},
		{"limit", budget - 8, false},
		{"limit+1", budget - 8 + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &queueSink{q: make(chan []byte, 16)}
			s := testSub(sink)
			s.replaying, s.maxHeld, s.maxBytes = true, 100, budget
			s.deliver(nil, 1, []byte("1111"))
			s.deliver(nil, 2, []byte("2222"))
			s.deliver(nil, 3, []byte(strings.Repeat("3", tc.last)))
			if tc.overflow {
				s.deliver(nil, 4, []byte("4")) // after an overflow: not held
				if len(s.pending) != 0 || s.heldBytes != 0 {
					t.Fatalf("held %d events of %d bytes after the overflow", len(s.pending), s.heldBytes)
				}
				if again, _ := s.goLive(context.Background(), 0); !again {
					t.Fatal("no second round after an overflow")
				}
				return
			}
			if len(s.pending) != 3 || s.heldBytes != int64(8+tc.last) {
				t.Fatalf("held %d events of %d bytes", len(s.pending), s.heldBytes)
			}
			if again, _ := s.goLive(context.Background(), 0); again || len(sink.q) != 3 {
				t.Fatalf("goLive: again %v, %d sent", again, len(sink.q))
			}
		})
	}
}

// TestSubscriptionReplayHeldBytesPerConnection: the held bound is the
// connection's, shared by its subscriptions: 9 and 10 bytes held across
// two of them fit a bound of 10; one more byte makes the subscription that
// asked for it let go of what it holds; an ended subscription gives back
// its count and holds nothing more.
func TestSubscriptionReplayHeldBytesPerConnection(t *testing.T) {
	var held atomic.Int64
	a, b := testSub(&queueSink{q: make(chan []byte, 16)}), testSub(&queueSink{q: make(chan []byte, 16)})
	for _, s := range []*subscription{a, b} {
		s.replaying, s.maxHeld, s.maxBytes, s.held = true, 100, 10, &held
	}
	a.deliver(nil, 1, []byte("aaaaaa"))
	b.deliver(nil, 1, []byte("bbb"))
	if held.Load() != 9 || len(a.pending)+len(b.pending) != 2 {
		t.Fatalf("limit-1: held %d bytes in %d events", held.Load(), len(a.pending)+len(b.pending))
	}
	b.deliver(nil, 2, []byte("b"))
	if held.Load() != 10 || len(b.pending) != 2 {
		t.Fatalf("limit: held %d bytes, b holds %d events", held.Load(), len(b.pending))
	}
	a.deliver(nil, 2, []byte("a"))
	if held.Load() != 4 || len(a.pending) != 0 || !a.overflow || b.overflow {
		t.Fatalf("limit+1: held %d bytes, a holds %d (overflow %v), b overflow %v", held.Load(), len(a.pending), a.overflow, b.overflow)
	}
	b.stopHolding()
	b.deliver(nil, 3, []byte("b"))
	if held.Load() != 0 || len(b.pending) != 0 {
		t.Fatalf("after b ended: held %d bytes, b holds %d", held.Load(), len(b.pending))
	}
}

// testSub is a subscription with an unlimited event rate.
func testSub(out sink) *subscription {
	s := &subscription{ws: out, drops: prometheus.NewCounter(prometheus.CounterOpts{Name: "test_drops"}), maxBytes: 1 << 62}
	s.events.Init(limits.Inf, 1)
	return s
}

func TestEventRateDropsAreReportedOnTheNextDelivery(t *testing.T) {
	sink := &queueSink{q: make(chan []byte, 16)}
	s := testSub(sink)
	s.events.Init(0.0001, 2) // 2 events, then (practically) no refill
	payload := encodeNext([]byte(`{"f":1}`), "CUR")
	for seq := uint64(1); seq <= 5; seq++ {
		s.deliver(nil, seq, payload)
	}
	if len(sink.q) != 2 {
		t.Fatalf("queued %d, want 2 (burst)", len(sink.q))
	}
	<-sink.q
	if got := string(<-sink.q); got != `{"data":{"f":1},"extensions":{"cursor":"CUR"}}` {
		t.Fatalf("payload %s", got)
	}
	s.events.Init(limits.Inf, 1) // the rate recovers
	s.deliver(nil, 6, payload)
	if got := string(<-sink.q); got != `{"data":{"f":1},"extensions":{"cursor":"CUR","dropped":3}}` {
		t.Fatalf("after drops: %s", got)
	}
	s.deliver(nil, 7, payload)
	if got := string(<-sink.q); got != `{"data":{"f":1},"extensions":{"cursor":"CUR"}}` {
		t.Fatalf("dropped must reset: %s", got)
	}
	if string(payload) != `{"data":{"f":1},"extensions":{"cursor":"CUR"}}` {
		t.Fatalf("the shared payload was modified: %s", payload)
	}
}

// BenchmarkFanout routes one event to N in-process subscribers of one plan:
// filter + project + encode once, then a non-blocking send of the same
// bytes into each subscriber's bounded queue (drained inside the timed
// region, so the receivers' work is attributed to the event that caused it).
func BenchmarkFanout(b *testing.B) {
	for _, count := range []int{1, 100, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", count), func(b *testing.B) {
			n := testNode(b)
			sinks := addSubscribers(b, n, count)
			ev := benchEvent(n)
			r := newRouter(n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev.Seq = uint64(i + 1)
				r.route(ev)
				for _, s := range sinks {
					s.drain()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(count), "ns/delivery")
		})
	}
}

func TestReadinessReportsChecks(t *testing.T) {
	n := testNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background(), ln); err != nil {
		t.Fatal(err)
	}
	ops := httptest.NewServer(n.OpsHandler())
	defer ops.Close()
	get := func(base string) (int, string) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	public := "http://" + n.Addr()
	for _, base := range []string{public, ops.URL} {
		if code, body := get(base); code != 200 || body != "ready\n" {
			t.Fatalf("healthy: %d %q", code, body)
		}
	}
	var optionalErr, requiredErr error
	n.AddReadiness("bridges.redis", false, func() error { return optionalErr })
	n.AddReadiness("bridges.postgres", true, func() error { return requiredErr })
	optionalErr = errors.New("redis-pubsub is down: connection refused")
	if code, body := get(ops.URL); code != 200 || !strings.Contains(body, "degraded") || !strings.Contains(body, "bridges.redis: redis-pubsub is down") {
		t.Fatalf("optional check failing: %d %q, want 200 naming it", code, body)
	}
	if code, body := get(public); code != 200 || body != "ready\n" {
		t.Fatalf("optional check failing, public: %d %q, want a bare ready", code, body)
	}
	requiredErr = errors.New("postgres-outbox is down")
	if code, body := get(ops.URL); code != 503 || !strings.Contains(body, "bridges.postgres: postgres-outbox is down") {
		t.Fatalf("required check failing: %d %q, want 503 naming it", code, body)
	}
	if code, body := get(public); code != 503 || body != "not ready\n" {
		t.Fatalf("required check failing, public: %d %q, want a bare 503", code, body)
	}
}

// TestReplayBusyError: a resume refused because too many wait is coded
// REPLAY_BUSY, with the seconds to wait before resubscribing.
func TestReplayBusyError(t *testing.T) {
	e := replayBusyError()
	if e.Extensions["code"] != CodeReplayBusy || e.Extensions["retryAfter"] != 1.0 {
		t.Fatalf("extensions = %v, want code %s and retryAfter 1", e.Extensions, CodeReplayBusy)
	}
}
