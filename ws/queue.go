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
// Safe for concurrent use; one writer pops.
type frameQueue struct {
	mu    sync.Mutex
	buf   []frame // the ring; len(buf) is its current capacity; guarded by mu
	head  int     // guarded by mu
	n     int     // frames queued; guarded by mu
	limit int

	space   chan struct{} // cap 1: frames were taken while a pusher waits (pushWait)
	waiting atomic.Int32  // pushers waiting for space (pushWait); takes signal space only then
}

// keptRing is the largest ring kept once the queue is empty.
const keptRing = 64

// init makes q an empty queue of at most limit frames.
func (q *frameQueue) init(limit int) {
	q.limit, q.space = limit, make(chan struct{}, 1)
}

// push queues f; it reports false, queuing nothing, when the queue is full.
func (q *frameQueue) push(f frame) bool { return q.pushN(f) > 0 }

// pushN queues f and returns how many frames are queued now, or 0 (queuing
// nothing) when the queue is full.
func (q *frameQueue) pushN(f frame) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == q.limit {
		return 0
	}
	if q.n == len(q.buf) {
		q.growLocked()
	}
	q.buf[(q.head+q.n)%len(q.buf)] = f
	q.n++
	return q.n
}

// pushWait queues f, waiting while the queue is full, until stop is
// closed or ctx is done (false). Takes signal space only while a pusher
// waits: it says so before it tries again, so a take made before that,
// which signalled nobody, is caught by the try.
func (q *frameQueue) pushWait(ctx context.Context, stop <-chan struct{}, f frame) bool {
	if isDone(stop) {
		return false
	}
	if q.push(f) {
		return true
	}
	q.waiting.Add(1)
	defer q.waiting.Add(-1)
	for !q.push(f) {
		select {
		case <-q.space:
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		}
		if isDone(stop) { // both were ready: stopping wins
			return false
		}
	}
	return true
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
	if q.n == 0 || onlyNext && q.buf[q.head].kind != kindNext {
		q.mu.Unlock()
		return frame{}, false
	}
	f := q.buf[q.head]
	q.buf[q.head] = frame{} // drop the payload reference: payloads are shared
	q.head = (q.head + 1) % len(q.buf)
	q.n--
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

// len returns the number of frames queued.
func (q *frameQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// clear drops every queued frame.
func (q *frameQueue) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.buf, q.head, q.n = nil, 0, 0
}

// signal wakes a waiter on c, if none is already due to wake.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
