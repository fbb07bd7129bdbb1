package bridges

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackoffIsCappedAndJittered(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond}
	for i := 0; i < 100; i++ {
		d := b.Next()
		if d < 5*time.Millisecond || d > 200*time.Millisecond {
			t.Fatalf("attempt %d: %v outside [Min/2, Max]", i, d)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset: %v, want at most Min", d)
	}
}

// TestRunWhileLeader: two contenders for one lease; fn runs on exactly one
// of them at a time, and the other takes over when the leader stops.
func TestRunWhileLeader(t *testing.T) {
	url := clustertest.RunServer(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *cluster.Cluster {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl, err := cluster.Open(ctx, cluster.Config{URL: url}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	var running, maxRunning, starts atomic.Int32
	fn := func(ctx context.Context) error {
		starts.Add(1)
		n := running.Add(1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		<-ctx.Done()
		running.Add(-1)
		return nil
	}
	var leaders [2]atomic.Bool
	ctxs := make([]context.CancelFunc, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		cl := open()
		ctx, cancel := context.WithCancel(context.Background())
		ctxs[i] = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			RunWhileLeader(ctx, cl, "test-lease", time.Second, log, func(held bool) { leaders[i].Store(held) }, fn)
		}()
	}
	defer func() {
		for _, c := range ctxs {
			c()
		}
		wg.Wait()
	}()
	waitUntil(t, "a leader", func() bool { return running.Load() == 1 })
	first := 0
	if leaders[1].Load() {
		first = 1
	}
	ctxs[first]() // the leader stops (and releases its lease)
	waitUntil(t, "the other to take over", func() bool { return leaders[1-first].Load() && running.Load() == 1 })
	if maxRunning.Load() != 1 {
		t.Fatalf("fn ran on %d nodes at once", maxRunning.Load())
	}
	if starts.Load() != 2 {
		t.Fatalf("fn started %d times, want 2", starts.Load())
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
