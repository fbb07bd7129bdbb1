package cluster_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/cluster"
)

func TestMain(m *testing.M) {
	// No ignores: Close must leave nothing behind, and goleak retries for a
	// while, which covers nats.go goroutines that end just after Close.
	goleak.VerifyTestMain(m)
}

// testLog logs to stderr when FRAISEQL_TEST_LOG is set, else nowhere.
// (Not t.Log: nats callbacks may log after a test has returned.)
func testLog() *slog.Logger {
	if os.Getenv("FRAISEQL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openAfterDelete is open right after the stream was deleted: the server
// may still be removing the old stream's files, and refuses to create a
// store there until it has ("error creating store for stream"), so Open is
// tried again for a while.
func openAfterDelete(t testing.TB, cfg cluster.Config) *cluster.Cluster {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := cluster.Open(testCtx(t), cfg, testLog())
		if err == nil {
			closeOnCleanup(t, c)
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("Open after deleting the stream: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// open opens a Cluster (embedded in t.TempDir() when cfg.URL is empty)
// and closes it in t.Cleanup.
func open(t testing.TB, cfg cluster.Config) *cluster.Cluster {
	t.Helper()
	if cfg.URL == "" && cfg.Embedded.StoreDir == "" {
		cfg.Embedded.StoreDir = t.TempDir()
	}
	c, err := cluster.Open(testCtx(t), cfg, testLog())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	closeOnCleanup(t, c)
	return c
}

// recv waits for one value from ch.
func recv[T any](t testing.TB, ch <-chan T, d time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		var zero T
		t.Fatalf("nothing received after %v", d)
		return zero
	}
}

// noRecv checks that nothing arrives on ch for d.
func noRecv[T any](t testing.TB, ch <-chan T, d time.Duration) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected value %v", v)
	case <-time.After(d):
	}
}

// checkFor polls f until it returns nil or d passes.
func checkFor(t testing.TB, d, every time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(every)
	}
	t.Fatalf("after %v: %v", d, err)
}

func mustPublish(t testing.TB, c *cluster.Cluster, tenant, topic, data, id string) cluster.PubResult {
	t.Helper()
	r, err := c.Publish(testCtx(t), tenant, topic, []byte(data), id)
	if err != nil {
		t.Fatalf("Publish(%s, %s): %v", tenant, topic, err)
	}
	return r
}

// closeOnCleanup closes c when the test ends.
func closeOnCleanup(t testing.TB, c *cluster.Cluster) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}
