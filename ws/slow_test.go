package ws

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// subscribed returns a graphql-transport-ws client with one active
// subscription "1", its session, and the subscription.
func subscribed(t testing.TB, e *env) (*client, *fakeSession, *Subscription) {
	t.Helper()
	cl := e.dial(t, SubprotocolTransportWS)
	sess := e.session(t)
	cl.initTransport()
	sess.expect(t, "init")
	cl.send(`{"id":"1","type":"subscribe","payload":{"query":"subscription { a }"}}`)
	return cl, sess, sess.expect(t, "subscribe").sub
}

func TestSlowConsumerQueueFull(t *testing.T) {
	e := startEnv(t, Options{WriteQueue: 4}, nil)
	cl, sess, sub := subscribed(t, e)

	// The client is not reading and Next outruns the writer: the queue
	// fills and the connection is closed as a slow consumer.
	payload := []byte(`{"data":{"a":"` + string(bytes.Repeat([]byte("x"), 100)) + `"}}`)
	sent := 0
	for sent < 1_000_000 && sub.Next(payload) {
		sent++
	}
	if sent == 1_000_000 {
		t.Fatal("Next never refused")
	}
	select {
	case <-sub.Conn().Context().Done():
	case <-time.After(waitFor):
		t.Fatal("connection not closing")
	}
	// The client reads what was written before the close, then 1013.
	want := `{"id":"1","type":"next","payload":` + string(payload) + `}`
	got := 0
	for {
		msg, err := cl.read()
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusTryAgainLater || ce.Reason != "slow consumer" {
				t.Fatalf("read: %v, want close 1013 slow consumer", err)
			}
			break
		}
		if msg != want {
			t.Fatalf("got %.80s", msg)
		}
		got++
	}
	if got > sent {
		t.Fatalf("received %d frames, sent %d", got, sent)
	}
	sess.expect(t, "unsubscribe")
	sess.expectClosed(t, SlowConsumer)
	<-sub.Done()
	if got := e.srv.SlowConsumerCloses(); got != (SlowCloses{Frames: 1}) {
		t.Fatalf("slow-consumer closes %+v, want one for frames", got)
	}
}

func TestSlowConsumerWriteTimeout(t *testing.T) {
	// The byte budget is out of the way: the write deadline acts.
	e := startEnv(t, Options{WriteTimeout: 50 * time.Millisecond, MaxQueuedBytes: 128 << 20}, nil)
	_, sess, sub := subscribed(t, e)

	// 64 MiB in 64 frames fills any socket buffer of a client that does
	// not read; the queue (1024) never fills, the write deadline fires.
	payload := bytes.Repeat([]byte("1"), 1<<20)
	for range 64 {
		if !sub.Next(payload) {
			break
		}
	}
	sess.expect(t, "unsubscribe")
	sess.expectClosed(t, SlowConsumer)
	if sub.Next(payload) {
		t.Fatal("Next accepted on a dropped connection")
	}
	if got := e.srv.SlowConsumerCloses(); got != (SlowCloses{WriteTimeout: 1}) {
		t.Fatalf("slow-consumer closes %+v, want one for the write timeout", got)
	}
}

// TestSlowConsumerQueueBytes: a connection's queue holds up to exactly
// MaxQueuedBytes of payloads. Pushed without a Flush, nothing is written,
// so the queue holds all of it: with a budget of limit-1 the third 1,000
// byte payload is refused, with limit or limit+1 the fourth; the refusal
// closes the connection with 1013 "slow consumer", counted as conn_bytes,
// and gives its bytes back.
func TestSlowConsumerQueueBytes(t *testing.T) {
	const size, frames = 1000, 3
	for _, tc := range []struct {
		name   string
		budget int64
		queued int // pushes accepted
	}{
		{"limit-1", size*frames - 1, frames - 1},
		{"limit", size * frames, frames},
		{"limit+1", size*frames + 1, frames},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, Options{MaxQueuedBytes: tc.budget}, nil)
			cl, sess, sub := subscribed(t, e)
			payload := bytes.Repeat([]byte("1"), size)
			f := e.srv.NewFanout()
			queued := 0
			for range frames + 1 {
				if !sub.Push(f, payload) {
					break
				}
				queued++
			}
			if queued != tc.queued {
				t.Fatalf("%d pushes of %d bytes queued under a budget of %d, want %d", queued, size, tc.budget, tc.queued)
			}
			if got := sub.Conn().queue.queuedBytes(); got != 0 {
				t.Fatalf("the closing connection still queues %d bytes", got)
			}
			cl.expectClose(CloseTryAgainLater, "slow consumer")
			sess.expect(t, "unsubscribe")
			sess.expectClosed(t, SlowConsumer)
			if got := e.srv.SlowConsumerCloses(); got != (SlowCloses{ConnBytes: 1}) {
				t.Fatalf("slow-consumer closes %+v, want one for conn_bytes", got)
			}
		})
	}
}

// TestSlowConsumerNodeBytes: the node-wide budget. Two clients that do not
// read get 1 MiB payloads in turn, each pushed and flushed as a write
// round does; once their socket buffers are full their backlogs grow, and
// when the bytes queued node-wide pass NodeQueuedBytes the one whose
// backlog grows is closed with 1013, counted as node_bytes, while both are
// under their own budget. A client that reads, on the same server, gets
// everything and counts for nothing.
func TestSlowConsumerNodeBytes(t *testing.T) {
	const node = 8 << 20
	e := startEnv(t, Options{MaxQueuedBytes: 6 << 20, NodeQueuedBytes: node, WriteTimeout: time.Minute}, nil)
	type slowClient struct {
		cl   *client
		sess *fakeSession
		sub  *Subscription
		open bool
	}
	var slow [2]*slowClient
	for i := range slow {
		cl, sess, sub := subscribed(t, e)
		slow[i] = &slowClient{cl, sess, sub, true}
	}
	reader, _, rsub := subscribed(t, e)
	payload := bytes.Repeat([]byte("1"), 1<<20)
	f := e.srv.NewFanout()
	var peak int64
	pushes := 0
	for ; pushes < 400 && (slow[0].open || slow[1].open); pushes++ { // 400 MiB: more than any socket buffers hold
		s := slow[pushes%2]
		if !s.open {
			continue
		}
		ok := pushFlush(f, s.sub, payload)
		s.open = ok && !isDone(s.sub.Done()) && s.sub.Conn().Context().Err() == nil
		peak = max(peak, e.srv.QueuedBytes())
	}
	if slow[0].open || slow[1].open {
		t.Fatal("the budgets never closed the connections")
	}
	if got := e.srv.SlowConsumerCloses(); got.NodeBytes != 1 || got.NodeBytes+got.ConnBytes != 2 {
		t.Fatalf("slow-consumer closes %+v, want one for node_bytes (and one for conn_bytes)", got)
	}
	// A sync adds one round (one payload) before it checks.
	if peak > node+int64(len(payload)) {
		t.Fatalf("queued bytes peaked at %d, budget %d", peak, node)
	}
	if got := e.srv.QueuedBytes(); got != 0 {
		t.Fatalf("%d bytes still counted after the closes", got)
	}
	// The slow clients read at last: what their sockets held, then 1013.
	for _, s := range slow {
		for n := 0; ; n++ {
			if n > pushes {
				t.Fatal("more messages than were pushed")
			}
			if _, err := s.cl.read(); err != nil {
				if CloseCode(websocket.CloseStatus(err)) != CloseTryAgainLater {
					t.Fatalf("slow client: %v, want close 1013", err)
				}
				break
			}
		}
		s.sess.expect(t, "unsubscribe")
		s.sess.expectClosed(t, SlowConsumer)
	}

	small := []byte(`{"data":{"a":1}}`)
	for range 100 {
		if !pushFlush(f, rsub, small) {
			t.Fatal("the reading client's push refused")
		}
		if _, err := reader.read(); err != nil {
			t.Fatalf("reading client: %v", err)
		}
	}
	if got := e.srv.QueuedBytes(); got != 0 {
		t.Fatalf("%d bytes counted for a client that reads", got)
	}
}

// TestNextWaitFrameOverBudget: replay waits for space, but a frame that
// cannot fit even in an empty queue closes the connection (conn_bytes)
// instead of waiting forever.
func TestNextWaitFrameOverBudget(t *testing.T) {
	e := startEnv(t, Options{MaxQueuedBytes: 1000}, nil)
	cl, sess, sub := subscribed(t, e)
	if sub.NextWait(t.Context(), bytes.Repeat([]byte("1"), 1001)) {
		t.Fatal("NextWait queued a frame over the whole budget")
	}
	cl.expectClose(CloseTryAgainLater, "slow consumer")
	sess.expect(t, "unsubscribe")
	sess.expectClosed(t, SlowConsumer)
	if got := e.srv.SlowConsumerCloses(); got != (SlowCloses{ConnBytes: 1}) {
		t.Fatalf("slow-consumer closes %+v, want one for conn_bytes", got)
	}
}
