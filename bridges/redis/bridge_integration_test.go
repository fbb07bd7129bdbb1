//go:build integration

package redis

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// testRedisURL is REDIS_URL or the default; a test that cannot reach
// Redis fails, saying how to start it.
func testRedisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		u = DefaultURL
	}
	o, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(o)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf(`Redis at %s is unreachable (%v); start one with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no (or set REDIS_URL)`, u, err)
	}
	return u
}

func testLog() *slog.Logger {
	if os.Getenv("FRAISEQL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func waitUntil(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisBridgeLifecycle runs both sources, checks status, metrics and
// a round trip each, and that Run returns promptly on cancel leaving no
// goroutine behind (TestMain's goleak).
func TestRedisBridgeLifecycle(t *testing.T) {
	url := testRedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := cluster.Open(ctx, cluster.Config{URL: clustertest.RunServer(t)}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sfx := fmt.Sprintf("%x", rand.Uint64())
	key := "fraiseql:events:life" + sfx
	b, err := New(Config{URL: url, Patterns: []string{"fraiseql:public:life" + sfx}, Streams: []string{key}, StreamPattern: "-",
		Group: "g" + sfx, Consumer: "c", LeaseTTL: time.Second, BlockTimeout: 100 * time.Millisecond}, cl, testLog())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range b.Status() {
		if !s.Up || s.Leader {
			t.Fatalf("before Run: %+v (want a healthy follower)", s)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	waitUntil(t, 15*time.Second, "both sources leading and up", func() bool {
		st := b.Status()
		return len(st) == 2 && st[0].Leader && st[0].Up && st[1].Leader && st[1].Up &&
			st[0].Name == sourcePubSub && st[1].Name == sourceStreams
	})
	if err := b.Run(ctx); err == nil {
		t.Fatal("second Run did not fail")
	}

	o, _ := goredis.ParseURL(url)
	rc := goredis.NewClient(o)
	defer rc.Close()
	defer rc.Del(context.Background(), key)
	rc.Publish(ctx, "fraiseql:public:life"+sfx, `{"id":"1"}`)
	rc.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []any{"data", `{"id":"2"}`, "traceparent", testTP}})
	waitUntil(t, 10*time.Second, "both forwarded", func() bool {
		return counter(b.m.Forwarded.WithLabelValues(sourcePubSub)) == 1 && counter(b.m.Forwarded.WithLabelValues(sourceStreams)) == 1
	})
	// The entry's traceparent is the stored message's header.
	js, err := jetstream.New(cl.Conn())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, cluster.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := cl.Subject("public", "life"+sfx)
	// The two sources race: the entry may be stored before or after the
	// pub/sub message, so look for it among the subject's last two.
	last, err := stream.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	var entry *jetstream.RawStreamMsg
	for seq := last.Sequence; seq > 0 && seq+2 > last.Sequence && entry == nil; seq-- {
		if m, err := stream.GetMsg(ctx, seq); err == nil && m.Subject == subj && string(m.Data) == `{"id":"2"}` {
			entry = m
		}
	}
	if entry == nil || entry.Header.Get("traceparent") != testTP {
		t.Fatalf("stored entry: %+v; want one with traceparent %s", entry, testTP)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil on cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	for _, s := range b.Status() {
		if s.Leader {
			t.Fatalf("after Run: %+v", s)
		}
	}
}

func counter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
