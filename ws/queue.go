package ws

import (
	"context"
	"sync"
	"sync/atomic"
)

// frameQueue is a connection's bounded write queue. It is a ring that
// grows on demand up to its limit and gives its storage back when drained,
// so an idle connection holds almost nothing — a buffered channel of the
// same bound would keep its whole buffer (tens of KiB) per connection.
//
// It is bounded twice: in frames (limit) and in bytes (maxBytes, the sum
// of the queued frames' payload lengths). Payloads are shared between
// connections, but a queue counts each of its frames' payloads in full:
// what it holds is what it keeps alive. Its bytes also count in the
// Server's node-wide sum (budget), synced at the end of each write round
// (see sync), not on every push.
//
// Safe for concurrent use; one writer pops.
type frameQueue struct {
	mu      sync.Mutex
	buf     []frame // the ring; len(buf) is its current capacity; guarded by mu
	head    int     // guarded by mu
	n       int     // frames queued; guarded by mu
	bytes   int64   // payload bytes queued; guarded by mu
	charged int64   // bytes counted in budget.queued; guarded by mu
	shut    bool    // the connection is closing: nothing more is queued; guarded by mu

	limit    int
	maxBytes int64
	budget   *queueBudget // node-wide; nil in tests of the queue alone

	space   chan struct{} // cap 1: frames were taken while a pusher waits (pushWait)
	waiting atomic.Int32  // pushers waiting for space (pushWait); takes signal space only then
}

// queueBudget is the node-wide sum of the bytes of every connection's
// queue, as of each queue's last sync, and its bound. One per Server.
type queueBudget struct {
	_      [64]byte // queued sits on a cache line of its own
	queued atomic.Int64
	_      [56]byte
	limit  int64
}

// full says why a push was refused.
type full uint8

const (
	notFull    full = iota
	fullFrames      // limit frames are queued
	fullBytes       // the frame would take the queue past maxBytes
	fullShut        // the queue is shut: the connection is closing
)

// keptRing is the largest ring kept once the queue is empty.
const keptRing = 64

// init makes q an empty queue of at most limit frames and maxBytes bytes,
// counted in budget (which may be nil).
func (q *frameQueue) init(limit int, maxBytes int64, budget *queueBudget) {
	q.limit, q.maxBytes, q.budget, q.space = limit, maxBytes, budget, make(chan struct{}, 1)
}

// push queues f; it reports false, queuing nothing, when the queue is full.
func (q *frameQueue) push(f frame) bool {
	n, _ := q.pushN(f)
	return n > 0
}

// pushN queues f and returns how many frames are queued now, or 0 (queuing
// nothing) and why when the queue is full. A frame is refused if it would
// take the queue past maxBytes: a queue holds at most maxBytes, exactly.
func (q *frameQueue) pushN(f frame) (int, full) {
	size := int64(len(f.payload))
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.shut:
		return 0, fullShut
	case q.n == q.limit:
		return 0, fullFrames
	case q.bytes+size > q.maxBytes:
		return 0, fullBytes
	}
	if q.n == len(q.buf) {
		q.growLocked()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = f
	q.n++
	q.bytes += size
	return q.n, notFull
}

// pushWait queues f, waiting while the queue is full, until stop is
// closed or ctx is done (false, notFull). A frame that cannot fit even in
// an empty queue (its payload exceeds maxBytes) is refused at once (false,
// fullBytes). Takes signal space only while a pusher waits: it says so
// before it tries again, so a take made before that, which signalled
// nobody, is caught by the try.
func (q *frameQueue) pushWait(ctx context.Context, stop <-chan struct{}, f frame) (bool, full) {
	if isDone(stop) {
		return false, notFull
	}
	if int64(len(f.payload)) > q.maxBytes {
		return false, fullBytes
	}
	if q.push(f) {
		return true, notFull
	}
	q.waiting.Add(1)
	defer q.waiting.Add(-1)
	for !q.push(f) {
		select {
		case <-q.space:
		case <-stop:
			return false, notFull
		case <-ctx.Done():
			return false, notFull
		}
		if isDone(stop) { // both were ready: stopping wins
			return false, notFull
		}
	}
	return true, notFull
}

// isDone reports whether c is closed.
func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// growLocked doubles the ring (at least 4, at most limit), keeping order.
func (q *frameQueue) growLocked() {
	size := min(max(4, 2*len(q.buf)), q.limit)
	buf := make([]frame, size)
	for i := range q.n {
		buf[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	q.buf, q.head = buf, 0
}

// pop takes the oldest frame.
func (q *frameQueue) pop() (frame, bool) { return q.take(false) }

// popNext takes the oldest frame if it is a `next` frame.
func (q *frameQueue) popNext() (frame, bool) { return q.take(true) }

func (q *frameQueue) take(onlyNext bool) (frame, bool) {
	q.mu.Lock()
	if q.n == 0 || onlyNext && !q.buf[q.head].kind.isNext() {
		q.mu.Unlock()
		return frame{}, false
	}
	f := q.buf[q.head]
	q.buf[q.head] = frame{} // drop the payload reference: payloads are shared
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.bytes -= int64(len(f.payload))
	if q.n == 0 {
		q.head = 0
		if len(q.buf) > keptRing {
			q.buf = nil
		}
	}
	q.mu.Unlock()
	// Only a waiting pusher needs the signal; the delivery path takes a
	// frame per delivery and should not touch the channel for it.
	if q.waiting.Load() > 0 {
		signal(q.space)
	}
	return f, true
}

// sync brings the node-wide sum up to date with this queue's bytes. It
// reports whether the queue grew since its last sync and the sum is now
// over the node-wide budget: the caller closes this connection, whose
// backlog is growing. When nothing changed (a connection whose socket
// took everything at once, the common case) it touches no shared memory.
func (q *frameQueue) sync() (over bool) {
	if q.budget == nil {
		return false
	}
	q.mu.Lock()
	d := q.bytes - q.charged
	q.charged = q.bytes
	q.mu.Unlock()
	if d == 0 {
		return false
	}
	total := q.budget.queued.Add(d)
	return d > 0 && total > q.budget.limit
}

// len returns the number of frames queued.
func (q *frameQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// queuedBytes returns the payload bytes queued.
func (q *frameQueue) queuedBytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// shutDown drops every queued frame, gives its bytes back to the node-wide
// sum, and refuses every later push: the connection is closing, and
// nothing queued would be written.
func (q *frameQueue) shutDown() {
	q.mu.Lock()
	charged := q.charged
	q.buf, q.head, q.n, q.bytes, q.charged, q.shut = nil, 0, 0, 0, 0, true
	q.mu.Unlock()
	if charged != 0 && q.budget != nil {
		q.budget.queued.Add(-charged)
	}
	if q.waiting.Load() > 0 {
		signal(q.space)
	}
}

// signal wakes a waiter on c, if none is already due to wake.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
