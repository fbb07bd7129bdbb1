package ws

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
)

// BenchmarkNext measures delivering one result to one subscription over a
// real loopback WebSocket: Next, the writer assembling prefix + payload +
// "}" and writing it, and the client reading it. Allocations are counted
// process-wide, so the client reads into a fixed buffer; in steady state
// the whole path allocates nothing per frame.
//
// The producer keeps at most window frames in flight (Next never blocks;
// without flow control it would fill the queue and be closed as a slow
// consumer, which is what the queue is for).
func BenchmarkNext(b *testing.B) {
	benchDeliver(b, func(sub *Subscription, p []byte) bool { return sub.Next(p) })
}

// BenchmarkPushFlush is BenchmarkNext for the fan-out path: each frame is
// pushed and flushed, as a write round does for a connection that got one
// event, so it is written by the caller with one non-blocking write(2)
// instead of by the connection's write goroutine.
func BenchmarkPushFlush(b *testing.B) {
	var f *Fanout
	benchDeliver(b, func(sub *Subscription, p []byte) bool {
		if f == nil {
			f = newFanout(sub.conn.opts, sub.conn.flushes)
		}
		return pushFlush(f, sub, p)
	})
}

func benchDeliver(b *testing.B, deliver func(*Subscription, []byte) bool) {
	e := startEnv(b, Options{}, nil)
	cl, _, sub := subscribed(b, e)
	payload := []byte(`{"data":{"messageAdded":{"id":"7","room":"r1","text":"hello, world"}},"extensions":{"cursor":"AAAAAAAAAAE"}}`)

	var received atomic.Int64
	progress := make(chan struct{}, 1) // the reader's wake-up for a waiting producer
	readDone := make(chan struct{})
	go func() { // ends when the benchmark's cleanup closes the client
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			_, r, err := cl.c.Reader(context.Background())
			if err != nil {
				return
			}
			for {
				_, err := r.Read(buf)
				if err == io.EOF {
					break
				}
				if err != nil {
					return
				}
			}
			received.Add(1)
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}()
	b.Cleanup(func() {
		_ = cl.c.CloseNow()
		<-readDone
	})
	benchSend(b, sub, payload, deliver, &received, progress)
}

// benchSend delivers b.N frames of payload to sub, keeping at most window
// of them unread by the client, which counts them in received and wakes
// progress.
func benchSend(b *testing.B, sub *Subscription, payload []byte, deliver func(*Subscription, []byte) bool, received *atomic.Int64, progress chan struct{}) {
	const window = 512
	send := func(n int) {
		base := received.Load()
		for i := range n {
			for int64(i)-(received.Load()-base) >= window {
				<-progress
			}
			if !deliver(sub, payload) {
				b.Fatal("delivery refused")
			}
		}
		for received.Load()-base < int64(n) {
			<-progress
		}
	}
	send(2 * window) // warm up: grow the writer's buffer

	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	send(b.N)
}
