package cluster_test

import (
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// leases opens two nodes on one server competing for one lease.
func leases(t *testing.T, ttl time.Duration) (a, b *cluster.Lease) {
	t.Helper()
	url := clustertest.RunServer(t)
	na := open(t, cluster.Config{URL: url, Name: "a"})
	nb := open(t, cluster.Config{URL: url, Name: "b"})
	a, err := na.Lease(testCtx(t), "bridge.redis", ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Release)
	if got := recv(t, a.Changes(), 5*time.Second); !got || !a.Held() {
		t.Fatal("first contender did not acquire a free lease")
	}
	if b, err = nb.Lease(testCtx(t), "bridge.redis", ttl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	return a, b
}

func TestLeaseTakeoverWhenHolderStopsRenewing(t *testing.T) {
	const ttl = 900 * time.Millisecond
	a, b := leases(t, ttl)
	// The holder keeps it across several renewals.
	noRecv(t, b.Changes(), 2*ttl)
	if !a.Held() || b.Held() {
		t.Fatalf("held: a=%v b=%v, want only a", a.Held(), b.Held())
	}
	start := time.Now()
	a.AbandonForTest() // stops renewing, key left behind: as a crash
	if got := recv(t, b.Changes(), 5*ttl); !got || !b.Held() {
		t.Fatal("b did not take over")
	}
	if d := time.Since(start); d < ttl/2 {
		t.Fatalf("b took over after %v, before the holder's key could expire (ttl %v)", d, ttl)
	}
}

func TestLeaseReleaseHandsOver(t *testing.T) {
	const ttl = 3 * time.Second
	a, b := leases(t, ttl)
	start := time.Now()
	a.Release()
	if got, ok := <-a.Changes(); !ok || got {
		t.Fatalf("a's changes after Release: %v, %v; want false then closed", got, ok)
	}
	if _, ok := <-a.Changes(); ok {
		t.Fatal("a's changes not closed after Release")
	}
	if got := recv(t, b.Changes(), 2*ttl); !got {
		t.Fatal("b did not acquire")
	}
	if d := time.Since(start); d > ttl {
		t.Fatalf("hand-over took %v; Release should free the key at once", d)
	}
	a.Release() // idempotent
}

func TestLeaseBadArgs(t *testing.T) {
	c := open(t, cluster.Config{})
	if _, err := c.Lease(testCtx(t), "a b", time.Second); err == nil {
		t.Fatal("bad name accepted")
	}
	if _, err := c.Lease(testCtx(t), "x", time.Millisecond); err == nil {
		t.Fatal("tiny ttl accepted")
	}
}
