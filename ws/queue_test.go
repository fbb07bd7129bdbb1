package ws

import "testing"

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
}

func TestFrameQueueSignals(t *testing.T) {
	q := newFrameQueue(2)
	q.push(frame{})
	select {
	case <-q.ready:
	default:
		t.Fatal("no ready signal when the queue became non-empty")
	}
	q.push(frame{})
	q.pop()
	select {
	case <-q.space:
	default:
		t.Fatal("no space signal after a pop")
	}
}
