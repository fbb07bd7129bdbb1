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
}

func TestSlowConsumerWriteTimeout(t *testing.T) {
	e := startEnv(t, Options{WriteTimeout: 50 * time.Millisecond}, nil)
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
}
