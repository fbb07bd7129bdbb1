package ws

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func numbered(i, size int) []byte {
	return fmt.Appendf(nil, `{"data":{"n":%d,"pad":"%s"}}`, i, strings.Repeat("x", size))
}

// readNumbered runs expectNumbered on a goroutine of its own; the channel
// closes when it returns (all frames read, or a read error reported).
func readNumbered(t *testing.T, cl *client, n, size int) <-chan struct{} {
	done := make(chan struct{})
	go func() { // ends with the n frames or a read error
		defer close(done)
		expectNumbered(t, cl, n, size)
	}()
	return done
}

// expectNumbered reads n frames carrying numbered(0..n-1, size), in order.
func expectNumbered(t *testing.T, cl *client, n, size int) {
	t.Helper()
	for i := range n {
		got, err := cl.read()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := `{"id":"1","type":"next","payload":` + string(numbered(i, size)) + `}`; got != want {
			t.Fatalf("frame %d: got %.80s…, want %.80s…", i, got, want)
		}
	}
}

// TestPushThenFlushWritesDirectly: frames pushed for a batch go out with
// one direct write when Flush is called, and only the first Push since a
// Flush asks for one.
func TestPushThenFlushWritesDirectly(t *testing.T) {
	writeEngines(t, testPushThenFlushWritesDirectly)
}

func testPushThenFlushWritesDirectly(t *testing.T, engine IOUringMode) {
	e := startEnv(t, Options{IOUring: engine}, nil)
	cl, _, sub := subscribed(t, e)
	// The write goroutine that sent connection_ack may still be ending; a
	// Flush meanwhile rightly hands off to it.
	waitNoWriter(t, sub.Conn())
	f := e.srv.NewFanout()
	for round := range 3 {
		for i := range 10 {
			if !sub.Push(f, numbered(round*10+i, 10)) || len(f.dirty) != 1 {
				t.Fatalf("round %d push %d: refused, or %d connections to write", round, i, len(f.dirty))
			}
		}
		f.Idle()
	}
	expectNumbered(t, cl, 30, 10)
	if direct, handoff := e.srv.FlushStats(); direct != 3 || handoff != 0 {
		t.Fatalf("flushes: %d direct, %d handed off; want 3 direct", direct, handoff)
	}
	checkEngine(t, e, engine, 3)
}

// TestPushAndNextKeepQueueOrder: frames queued by Next (written by the
// write goroutine) and by Push (written by Flush on the caller's
// goroutine) reach the client in the order they were queued.
func TestPushAndNextKeepQueueOrder(t *testing.T) {
	writeEngines(t, testPushAndNextKeepQueueOrder)
}

func testPushAndNextKeepQueueOrder(t *testing.T, engine IOUringMode) {
	e := startEnv(t, Options{WriteQueue: 4096, IOUring: engine}, nil) // room for every frame, however slow the reader
	cl, _, sub := subscribed(t, e)
	const n = 2000
	done := readNumbered(t, cl, n, 100)
	f := e.srv.NewFanout()
	for i := range n {
		if i%3 == 0 {
			if !sub.Next(numbered(i, 100)) {
				t.Fatalf("Next %d refused", i)
			}
			continue
		}
		if !pushFlush(f, sub, numbered(i, 100)) {
			t.Fatalf("Push %d refused", i)
		}
	}
	<-done
}

// TestFlushDoesNotBlockOnAFullSocket: a client that does not read fills
// its socket; Flush must then hand the rest — possibly half a frame — to
// the write goroutine instead of waiting, and every frame still arrives
// whole and in order once the client reads.
func TestFlushDoesNotBlockOnAFullSocket(t *testing.T) {
	writeEngines(t, testFlushDoesNotBlockOnAFullSocket)
}

func testFlushDoesNotBlockOnAFullSocket(t *testing.T, engine IOUringMode) {
	e := startEnv(t, Options{WriteTimeout: time.Minute, IOUring: engine}, nil)
	cl, _, sub := subscribed(t, e)
	const n, size = 400, 16 << 10 // 6.4 MB: more than loopback socket buffers hold
	f := e.srv.NewFanout()
	start := time.Now()
	for i := range n {
		if !pushFlush(f, sub, numbered(i, size)) {
			t.Fatalf("Push %d refused", i)
		}
	}
	// A blocking Flush would wait for the client, which reads only below.
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("Flush blocked: %d flushes took %v", n, d)
	}
	if _, handoff := e.srv.FlushStats(); handoff == 0 {
		t.Fatal("no Flush was handed to the write goroutine: the socket never filled")
	}
	checkEngine(t, e, engine, 1)
	expectNumbered(t, cl, n, size)
}

// TestCloseAfterAPartialDirectWrite: when a direct write left part of a
// frame unwritten and the connection then closes, the rest of that frame
// goes out before the close frame: the client sees whole messages, then
// the close code.
func TestCloseAfterAPartialDirectWrite(t *testing.T) {
	writeEngines(t, testCloseAfterAPartialDirectWrite)
}

func testCloseAfterAPartialDirectWrite(t *testing.T, engine IOUringMode) {
	e := startEnv(t, Options{WriteTimeout: time.Minute, IOUring: engine}, nil)
	cl, _, sub := subscribed(t, e)
	// The first handoff must be the full socket's, not the ack's write
	// goroutine still ending.
	waitNoWriter(t, sub.Conn())
	const size = 16 << 10
	f := e.srv.NewFanout()
	n := 0
	for ; n < 1000; n++ {
		pushFlush(f, sub, numbered(n, size))
		if _, handoff := e.srv.FlushStats(); handoff > 0 {
			break
		}
	}
	checkEngine(t, e, engine, 1)
	sub.Conn().Close(4400, "bye")
	for i := 0; ; i++ {
		got, err := cl.read()
		if err != nil {
			if !strings.Contains(err.Error(), "4400") {
				t.Fatalf("after %d frames: %v, want close 4400", i, err)
			}
			return
		}
		var f struct {
			Payload struct {
				Data struct{ N int } `json:"data"`
			} `json:"payload"`
		}
		if err := json.Unmarshal([]byte(got), &f); err != nil || f.Payload.Data.N != i {
			t.Fatalf("frame %d: %v %.80s", i, err, got)
		}
	}
}

// TestIdleConnectionHasNoWriteGoroutine: write goroutines start when
// there is something to write and end when there is nothing left, so an
// idle connection holds none; keep-alives and frames still go out.
func TestIdleConnectionHasNoWriteGoroutine(t *testing.T) {
	e := startEnv(t, Options{KeepAlive: 50 * time.Millisecond}, nil)
	cl := e.dial(t, SubprotocolLegacyWS)
	sess := e.session(t)
	cl.send(`{"type":"connection_init"}`)
	cl.expect(`{"type":"connection_ack"}`)
	c := sess.expect(t, "init").conn
	cl.send(`{"id":"1","type":"start","payload":{"query":"q"}}`)
	sub := sess.expect(t, "subscribe").sub
	idle := func() { t.Helper(); waitNoWriter(t, c) }
	for i := range 3 {
		cl.expect(`{"type":"ka"}`)
		idle()
		if !sub.Next(fmt.Appendf(nil, "%d", i)) {
			t.Fatal("Next refused")
		}
		for {
			got, err := cl.read()
			if err != nil {
				t.Fatal(err)
			}
			if got != `{"type":"ka"}` {
				if want := fmt.Sprintf(`{"type":"data","id":"1","payload":%d}`, i); got != want {
					t.Fatalf("got %s, want %s", got, want)
				}
				break
			}
		}
		idle()
	}
}

// TestPushBurstLargerThanTheQueue: frames pushed faster than any Flush
// (a burst of events, or many subscriptions of one connection, within one
// write round) start the write goroutine once half the queue is used, so
// a client that reads is not closed as a slow consumer.
func TestPushBurstLargerThanTheQueue(t *testing.T) {
	e := startEnv(t, Options{WriteQueue: 64}, nil)
	cl, sess, sub := subscribed(t, e)
	const n = 1000
	done := readNumbered(t, cl, n, 10)
	c := sub.Conn()
	f := e.srv.NewFanout()
	for i := range n {
		if !sub.Push(f, numbered(i, 10)) {
			t.Fatalf("Push %d refused", i)
		}
		// Keep below the queue's bound: only a write goroutine started by
		// Push (no Flush is called) can drain it.
		deadline := time.Now().Add(waitFor)
		for c.queue.len() >= 48 {
			if time.Now().After(deadline) {
				t.Fatalf("after %d pushes the queue holds %d frames and nothing drains it", i+1, c.queue.len())
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	f.Idle()
	<-done
	select {
	case ev := <-sess.events:
		t.Fatalf("unexpected session event %s (%v)", ev.kind, ev.reason)
	default:
	}
}

// TestNoNextAfterTheEndFrame: a `next` queued behind the subscription's
// end frame (Complete raced with a delivery) is dropped, by the write
// goroutine and by Flush alike.
func TestNoNextAfterTheEndFrame(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	cl, _, sub := subscribed(t, e)
	c := sub.Conn()
	sub.Complete()
	c.enqueue(frame{sub: sub, payload: numbered(1, 1), kind: kindNext}) // behind the end frame: the write goroutine
	cl.expect(`{"id":"1","type":"complete"}`)
	c.queue.push(frame{sub: sub, payload: numbered(2, 1), kind: kindNext}) // after it was written: a round
	c.flush()
	cl.send(`{"type":"ping"}`)
	cl.expect(`{"type":"pong"}`) // and nothing before it
}

// waitNoWriter waits until c has no write goroutine.
func waitNoWriter(t *testing.T, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for c.writerOn.Load() {
		if time.Now().After(deadline) {
			t.Fatal("a write goroutine is still running on an idle connection")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNextWaitWaitsForSpace: NextWait blocks while the queue and the
// socket are full and goes on as the client reads, with two senders
// waiting at once; nothing is lost and each sender's frames stay in order.
func TestNextWaitWaitsForSpace(t *testing.T) {
	e := startEnv(t, Options{WriteQueue: 4, WriteTimeout: time.Minute}, nil)
	cl, _, sub := subscribed(t, e)
	const perSender, size = 150, 32 << 10 // 2 × 4.8 MB: more than the socket buffers and the queue hold
	sent := make(chan int, 2)
	for s := range 2 {
		go func() { // ends when its frames are queued or the connection closes
			n := 0
			for i := range perSender {
				if !sub.NextWait(t.Context(), fmt.Appendf(nil, `{"s":%d,"i":%d,"pad":"%s"}`, s, i, strings.Repeat("x", size))) {
					break
				}
				n++
			}
			sent <- n
		}()
	}
	// Both senders must come to wait: the queue holds 4 frames.
	deadline := time.Now().Add(waitFor)
	for sub.Conn().queue.waiting.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d senders waiting for space, want 2", sub.Conn().queue.waiting.Load())
		}
		time.Sleep(time.Millisecond)
	}
	next := [2]int{}
	for range 2 * perSender {
		got, err := cl.read()
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Payload struct{ S, I int } `json:"payload"`
		}
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Fatalf("%.80s: %v", got, err)
		}
		if s := m.Payload.S; m.Payload.I != next[s] {
			t.Fatalf("sender %d: frame %d, want %d", s, m.Payload.I, next[s])
		}
		next[m.Payload.S]++
	}
	for range 2 {
		if n := <-sent; n != perSender {
			t.Fatalf("a sender queued %d of %d frames", n, perSender)
		}
	}
	// A waiter that is not counted off would make every later take signal.
	if w := sub.Conn().queue.waiting.Load(); w != 0 {
		t.Fatalf("%d waiters still counted after the senders returned", w)
	}
}

// TestPushFlushAllocs: delivering an event to a connection whose socket
// takes it at once — Push, then Flush, the queue's byte accounting and the
// node-wide sync included — allocates nothing.
func TestPushFlushAllocs(t *testing.T) {
	writeEngines(t, func(t *testing.T, engine IOUringMode) {
		e := startEnv(t, Options{IOUring: engine}, nil)
		_, _, sub := subscribed(t, e)
		pushFlushAllocs(t, e, sub)
		checkEngine(t, e, engine, 200)
	})
}

// pushFlushAllocs checks that delivering to sub, a subscription of e
// whose client does not read, allocates nothing.
func pushFlushAllocs(t *testing.T, e *env, sub *Subscription) {
	t.Helper()
	waitNoWriter(t, sub.Conn())
	payload := numbered(0, 32)
	f := e.srv.NewFanout()
	deliver := func() { pushFlush(f, sub, payload) }
	deliver() // warm the batch pool
	// 200 frames of ~80 bytes: the socket buffers take them all unread.
	if n := testing.AllocsPerRun(200, deliver); n != 0 {
		t.Fatalf("%v allocations per delivery, want 0", n)
	}
	if direct, handoff := e.srv.FlushStats(); handoff != 0 || direct == 0 {
		t.Fatalf("flushes: %d direct, %d handed off; want all direct", direct, handoff)
	}
	if got := e.srv.QueuedBytes(); got != 0 {
		t.Fatalf("%d bytes counted node-wide for a socket that took everything", got)
	}
}
