package ws

import (
	"sync"
	"testing"
	"time"
)

// TestWriteRoundsAcrossRingBatches: a round over more connections than
// one io_uring submit carries (uringEntries) writes every one of them its
// own frames (a payload of its own size), whole and in order, with
// either engine; with io_uring, one submit per 64 connections.
func TestWriteRoundsAcrossRingBatches(t *testing.T) {
	writeEngines(t, func(t *testing.T, engine IOUringMode) {
		e := startEnv(t, Options{IOUring: engine}, nil)
		const conns, events, size = 2*64 + 3, 5, 40
		var cls []*client
		var subs []*Subscription
		for range conns {
			cl, _, sub := subscribed(t, e)
			<-e.opened // the handler counts connections in a channel of 64
			cls, subs = append(cls, cl), append(subs, sub)
		}
		f := e.srv.NewFanout()
		for i := range events {
			for j, s := range subs {
				if !s.Push(f, numbered(i, size+j)) {
					t.Fatalf("event %d: push refused", i)
				}
			}
			f.Routed()
			f.Idle()
		}
		for j, cl := range cls {
			expectNumbered(t, cl, events, size+j)
		}
		checkEngine(t, e, engine, conns*events-conns) // the first round may meet write goroutines still ending after the ack
		if engine != IOUringOff {
			if submits, _ := e.srv.IOUringStats(); submits < 3*(events-1) || submits > 3*events {
				t.Fatalf("%d io_uring submits for %d rounds of %d connections: want 3 per round", submits, events, conns)
			}
		}
	})
}

// TestWriteRoundsWhileConnectionsClose: connections whose sockets close
// while rounds write them end as lost; the others get every frame, in
// order (run with -race).
func TestWriteRoundsWhileConnectionsClose(t *testing.T) {
	writeEngines(t, func(t *testing.T, engine IOUringMode) {
		e := startEnv(t, Options{IOUring: engine, WriteQueue: 1024}, nil)
		const conns, events, size = 12, 200, 20
		var cls []*client
		var subs []*Subscription
		for range conns {
			cl, _, sub := subscribed(t, e)
			cls, subs = append(cls, cl), append(subs, sub)
		}
		var readers sync.WaitGroup
		for _, cl := range cls[conns/2:] {
			readers.Go(func() { expectNumbered(t, cl, events, size) }) // ends with the frames or a failed read
		}
		var closers sync.WaitGroup
		closers.Go(func() { // ends after its conns/2 closes
			for _, s := range subs[:conns/2] {
				time.Sleep(time.Millisecond)
				_ = s.Conn().raw.Close()
			}
		})
		f := e.srv.NewFanout()
		for i := range events {
			p := numbered(i, size)
			for j, s := range subs {
				if !s.Push(f, p) && j >= conns/2 {
					t.Fatalf("event %d: push to open connection %d refused", i, j)
				}
			}
			f.Routed()
			f.Idle()
		}
		closers.Wait()
		readers.Wait()
		for _, s := range subs[:conns/2] {
			select {
			case <-s.Conn().Context().Done():
			case <-time.After(waitFor):
				t.Fatal("a connection whose socket closed is still open")
			}
		}
	})
}

// TestIOUringOption: ws.io_uring takes auto, off and on; on is refused
// where io_uring cannot be used.
func TestIOUringOption(t *testing.T) {
	for _, mode := range []IOUringMode{"", IOUringAuto, IOUringOff} {
		if err := (Options{IOUring: mode}).Validate(); err != nil {
			t.Errorf("%q: %v", mode, err)
		}
	}
	if err := (Options{IOUring: "always"}).Validate(); err == nil {
		t.Error(`"always" accepted`)
	}
	err := (Options{IOUring: IOUringOn}).Validate()
	if (err == nil) != (IOUringStatus() == nil) {
		t.Errorf("on: %v, with io_uring status %v", err, IOUringStatus())
	}
	if got := (Options{}).withDefaults().IOUring; got != IOUringAuto {
		t.Errorf("default %q, want %q", got, IOUringAuto)
	}
}
