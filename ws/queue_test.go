package ws

import "testing"

// newFrameQueue returns an empty queue of at most limit frames (a Conn
// embeds its queue and calls init).
func newFrameQueue(limit int) *frameQueue {
	q := new(frameQueue)
	q.init(limit)
	return q
}

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
