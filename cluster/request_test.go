package cluster_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
)

// A request of a kind reaches the node serving it and returns its reply;
// a kind nobody serves (its node gone) is ErrNoResponder, at once.
func TestAdminRequestReply(t *testing.T) {
	c := open(t, cluster.Config{})
	stop, err := c.ServeAdmin("sse.n1", func(data []byte) []byte { return append([]byte("re: "), data...) })
	if err != nil {
		t.Fatal(err)
	}
	reply, err := c.RequestAdmin(testCtx(t), "sse.n1", []byte("hi"))
	if err != nil || string(reply) != "re: hi" {
		t.Fatalf("got %q %v", reply, err)
	}
	stop()
	if _, err := c.RequestAdmin(testCtx(t), "sse.n1", []byte("hi")); !errors.Is(err, cluster.ErrNoResponder) {
		t.Fatalf("after stop: %v, want ErrNoResponder", err)
	}
}

// A request that takes long (one tenant's slow subscribe, forwarded) does
// not hold up the requests after it: each is answered as soon as its own
// work is done, up to MaxAdminConcurrency at once.
func TestAdminRequestsDoNotWaitForASlowOne(t *testing.T) {
	c := open(t, cluster.Config{})
	release := make(chan struct{})
	stop, err := c.ServeAdmin("sse.n1", func(data []byte) []byte {
		if string(data) == "slow" {
			<-release
		}
		return data
	})
	if err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := c.RequestAdmin(testCtx(t), "sse.n1", []byte("slow"))
		slow <- err
	}()
	// The slow request is in flight once a later one is answered (NATS
	// keeps one publisher's order); repeat so that the slow one is surely
	// taken first.
	for i := range 3 {
		reply, err := c.RequestAdmin(testCtx(t), "sse.n1", []byte("fast"))
		if err != nil || string(reply) != "fast" {
			t.Fatalf("fast request %d while a slow one runs: %q %v", i, reply, err)
		}
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow request ended before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	stop()
}

// Past MaxAdminConcurrency requests at work, the next waits for one of
// them (the bound holds), and is answered once one ends.
func TestAdminRequestsBounded(t *testing.T) {
	c := open(t, cluster.Config{})
	release := make(chan struct{})
	var running, peak atomic.Int64
	stop, err := c.ServeAdmin("sse.n1", func(data []byte) []byte {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if string(data) == "slow" {
			<-release
		}
		running.Add(-1)
		return data
	})
	if err != nil {
		t.Fatal(err)
	}
	const limit = cluster.MaxAdminConcurrency
	errs := make(chan error, limit+1)
	for range limit + 1 { // limit+1 slow requests
		go func() {
			_, err := c.RequestAdmin(testCtx(t), "sse.n1", []byte("slow"))
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < limit && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := running.Load(); got != limit {
		t.Fatalf("%d requests at work, want the bound %d", got, limit)
	}
	close(release)
	for range limit + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p > limit {
		t.Fatalf("%d requests at work at once, above the bound %d", p, limit)
	}
	stop()
}
