package ws

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

// newFrameQueue returns an empty queue of at most limit frames, with no
// byte budget (a Conn embeds its queue and calls init).
func newFrameQueue(limit int) *frameQueue {
	return newBudgetQueue(limit, math.MaxInt64, nil)
}

// newBudgetQueue returns an empty queue of at most limit frames and
// maxBytes bytes, counted in b (may be nil).
func newBudgetQueue(limit int, maxBytes int64, b *queueBudget) *frameQueue {
	q := new(frameQueue)
	q.init(limit, maxBytes, b)
	return q
}

// sized returns a frame whose payload is n bytes.
func sized(n int) frame { return frame{payload: make([]byte, n), kind: kindNext} }

func TestFrameQueueBoundsOrderAndShrinks(t *testing.T) {
	q := newFrameQueue(100)
	for i := range 100 { // limit-1 and limit are accepted
		if !q.push(frame{kind: frameKind(i)}) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	if q.push(frame{}) { // limit+1
		t.Fatal("push accepted over the limit")
	}
	for i := range 60 {
		if f, ok := q.pop(); !ok || f.kind != frameKind(i) {
			t.Fatalf("pop %d = %v, %v", i, f.kind, ok)
		}
	}
	for i := range 60 { // wraps around the ring
		if !q.push(frame{kind: frameKind(100 + i)}) {
			t.Fatalf("push after pops %d refused", i)
		}
	}
	for i := 60; i < 160; i++ {
		if f, ok := q.pop(); !ok || f.kind != frameKind(i) {
			t.Fatalf("pop %d = %v, %v", i, f.kind, ok)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop from an empty queue")
	}
	if q.buf != nil {
		t.Fatalf("drained queue kept a ring of %d", len(q.buf))
	}
	q.push(frame{kind: kindRaw})
	if _, ok := q.popNext(); ok || q.len() != 1 {
		t.Fatal("popNext took a frame that is not a next frame")
	}
	q.pop()
	q.push(frame{kind: kindNext})
	if f, ok := q.popNext(); !ok || f.kind != kindNext || q.len() != 0 {
		t.Fatal("popNext did not take a next frame")
	}
}

func TestFrameQueueSignalsAWaitingPusher(t *testing.T) {
	q := newFrameQueue(2)
	q.push(frame{})
	q.push(frame{})
	q.pop()
	select {
	case <-q.space:
		t.Fatal("space signalled with no pusher waiting")
	default:
	}
	q.push(frame{})
	q.waiting.Add(1)
	q.pop()
	select {
	case <-q.space:
	default:
		t.Fatal("no space signal after a pop while a pusher waits")
	}
}

// TestFrameQueueByteBudget: a queue takes frames up to exactly its byte
// budget: limit-1 and limit bytes are queued, limit+1 is refused (and says
// why), and taking a frame gives its bytes back.
func TestFrameQueueByteBudget(t *testing.T) {
	const budget = 1000
	for _, tc := range []struct {
		name  string
		first int // queued before the probe
		probe int
		ok    bool
	}{
		{"one frame of limit-1", 0, budget - 1, true},
		{"one frame of limit", 0, budget, true},
		{"one frame of limit+1", 0, budget + 1, false},
		{"two frames summing to limit-1", 600, budget - 1 - 600, true},
		{"two frames summing to limit", 600, budget - 600, true},
		{"two frames summing to limit+1", 600, budget + 1 - 600, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newBudgetQueue(100, budget, nil)
			if tc.first > 0 && !q.push(sized(tc.first)) {
				t.Fatal("first frame refused")
			}
			n, why := q.pushN(sized(tc.probe))
			if got := n > 0; got != tc.ok {
				t.Fatalf("push of %d bytes after %d: queued %v, want %v", tc.probe, tc.first, got, tc.ok)
			}
			if !tc.ok && why != fullBytes {
				t.Fatalf("refused with %v, want fullBytes", why)
			}
			want := int64(tc.first)
			if tc.ok {
				want += int64(tc.probe)
			}
			if got := q.queuedBytes(); got != want {
				t.Fatalf("queued bytes %d, want %d", got, want)
			}
		})
	}
	q := newBudgetQueue(100, budget, nil)
	q.push(sized(budget))
	q.pop()
	if q.queuedBytes() != 0 || !q.push(sized(budget)) {
		t.Fatal("a taken frame's bytes were not given back")
	}
	q.shutDown()
	if n, why := q.pushN(sized(1)); n != 0 || why != fullShut || q.queuedBytes() != 0 {
		t.Fatalf("push into a shut queue: %d, %v", n, why)
	}
}

// TestFrameQueuePushWaitByteBudget: replay's pushWait waits for bytes to
// be taken, and refuses at once a frame bigger than the whole budget.
func TestFrameQueuePushWaitByteBudget(t *testing.T) {
	q := newBudgetQueue(100, 1000, nil)
	stop := make(chan struct{})
	if ok, why := q.pushWait(context.Background(), stop, sized(1001)); ok || why != fullBytes {
		t.Fatalf("frame over the budget: %v, %v; want refused as fullBytes", ok, why)
	}
	q.push(sized(600))
	done := make(chan bool)
	go func() { ok, _ := q.pushWait(context.Background(), stop, sized(500)); done <- ok }()
	select {
	case <-done:
		t.Fatal("pushWait queued past the byte budget")
	case <-time.After(50 * time.Millisecond):
	}
	q.pop()
	select {
	case ok := <-done:
		if !ok || q.queuedBytes() != 500 {
			t.Fatalf("pushWait: %v, %d bytes queued", ok, q.queuedBytes())
		}
	case <-time.After(waitFor):
		t.Fatal("pushWait not woken by a pop")
	}
}

// TestFrameQueueNodeBudget: queues count their bytes in the node-wide sum
// when they sync; a queue that grew while the sum is past the budget is
// told so (limit-1, limit: not over; limit+1: over), a queue that shrank
// never is, and shutting a queue down gives its bytes back.
func TestFrameQueueNodeBudget(t *testing.T) {
	b := &queueBudget{limit: 1000}
	q1 := newBudgetQueue(100, 1000, b)
	q2 := newBudgetQueue(100, 1000, b)
	q1.push(sized(600))
	if q1.sync() {
		t.Fatal("600 of 1000: over")
	}
	q2.push(sized(399))
	if q2.sync() || b.queued.Load() != 999 {
		t.Fatalf("limit-1: over, or sum %d", b.queued.Load())
	}
	q2.push(sized(1))
	if q2.sync() || b.queued.Load() != 1000 {
		t.Fatalf("limit: over, or sum %d", b.queued.Load())
	}
	if q2.sync() {
		t.Fatal("a sync with nothing new reported over")
	}
	q2.push(sized(1))
	if !q2.sync() || b.queued.Load() != 1001 {
		t.Fatalf("limit+1: not over, or sum %d", b.queued.Load())
	}
	q1.pop() // q1 shrinks: never its fault
	if q1.sync() || b.queued.Load() != 401 {
		t.Fatalf("after a pop: over, or sum %d", b.queued.Load())
	}
	q2.shutDown()
	if b.queued.Load() != 0 {
		t.Fatalf("sum %d after every queue emptied", b.queued.Load())
	}
	q1.shutDown()
	if b.queued.Load() != 0 {
		t.Fatalf("sum %d after shutdowns", b.queued.Load())
	}
}

// BenchmarkFrameQueueRound is one connection's share of a write round
// whose socket takes everything: push, take, then the end-of-round sync,
// which finds nothing new and touches no shared memory.
func BenchmarkFrameQueueRound(b *testing.B) {
	q := newBudgetQueue(1024, DefaultMaxQueuedBytes, &queueBudget{limit: DefaultNodeQueuedBytes})
	f := sized(128)
	b.ReportAllocs()
	for b.Loop() {
		q.push(f)
		q.pop()
		q.sync()
	}
}

// BenchmarkFrameQueueRoundBacklog is BenchmarkFrameQueueRound for
// connections whose backlog changes every round, from several goroutines
// at once: each sync adds to the node-wide sum (one atomic add on a shared
// cache line).
func BenchmarkFrameQueueRoundBacklog(b *testing.B) {
	budget := &queueBudget{limit: DefaultNodeQueuedBytes}
	f := sized(128)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		q := newBudgetQueue(1024, DefaultMaxQueuedBytes, budget)
		for pb.Next() {
			q.push(f)
			q.sync()
			q.pop()
			q.sync()
		}
	})
}

// TestNodeQueuedBytesDefault: 1 GiB, or half the Go memory limit when that
// is lower; never below the per-connection budget.
func TestNodeQueuedBytesDefault(t *testing.T) {
	for _, tc := range []struct{ memLimit, want int64 }{
		{math.MaxInt64, DefaultNodeQueuedBytes}, // no GOMEMLIMIT
		{4 << 30, DefaultNodeQueuedBytes},
		{1 << 30, 512 << 20},
	} {
		if got := defaultNodeQueuedBytes(tc.memLimit); got != tc.want {
			t.Errorf("memory limit %d: %d, want %d", tc.memLimit, got, tc.want)
		}
	}
	o := Options{MaxQueuedBytes: 2 << 30}.withDefaults()
	if o.NodeQueuedBytes != 2<<30 {
		t.Errorf("node budget %d below the per-connection one %d", o.NodeQueuedBytes, o.MaxQueuedBytes)
	}
	if err := (Options{MaxQueuedBytes: 10, NodeQueuedBytes: 9}).Validate(); err == nil || !strings.Contains(err.Error(), "ws.node_queued_bytes") {
		t.Errorf("node budget below the per-connection one: %v", err)
	}
	for _, o := range []Options{{MaxQueuedBytes: -1}, {NodeQueuedBytes: -1}} {
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "queued_bytes") {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
