//go:build integration

package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fraiseql/subscriptions/bridges/postgres/pgtest"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// testLog logs to stderr when FRAISEQL_TEST_LOG is set, else nowhere.
func testLog() *slog.Logger {
	if os.Getenv("FRAISEQL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// harness is one test's PostgreSQL schema and NATS server.
type harness struct {
	t       testing.TB
	pgURL   string
	schema  string
	conn    *pgx.Conn
	srv     *server.Server
	natsDir string
	cl      *cluster.Cluster
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	url := pgtest.URL(t)
	h := &harness{t: t, pgURL: url, schema: pgtest.Schema(t, url)}
	h.conn = pgtest.Connect(t, url)
	if err := Migrate(testCtx(t, 30*time.Second), h.conn, h.schema); err != nil {
		t.Fatal(err)
	}
	h.natsDir = t.TempDir()
	h.srv = clustertest.StartServer(t, clustertest.Options(h.natsDir))
	h.cl = h.openCluster("node-a")
	return h
}

func (h *harness) openCluster(name string) *cluster.Cluster {
	h.t.Helper()
	cl, err := cluster.Open(testCtx(h.t, 30*time.Second), cluster.Config{URL: h.srv.ClientURL(), Name: name}, testLog())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cl.Close() })
	return cl
}

func (h *harness) config() Config {
	return Config{URL: h.pgURL, Schema: h.schema, PollInterval: 200 * time.Millisecond, LeaseTTL: time.Second}
}

// runBridge runs a bridge until the returned stop is called (or cleanup).
func (h *harness) runBridge(cl *cluster.Cluster, cfg Config) (b *Bridge, stop func()) {
	h.t.Helper()
	b, err := New(cfg, cl, testLog())
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // owned by stop
		defer close(done)
		if err := b.Run(ctx); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}()
	stop = func() { cancel(); <-done }
	h.t.Cleanup(stop)
	return b, stop
}

// publish calls <schema>.publish and returns the row id.
func (h *harness) publish(tenant, topic, payload string) int64 {
	h.t.Helper()
	var id int64
	if err := h.conn.QueryRow(testCtx(h.t, 10*time.Second), `SELECT `+h.schema+`.publish($1, $2, $3::jsonb)`, tenant, topic, payload).Scan(&id); err != nil {
		h.t.Fatalf("publish: %v", err)
	}
	return id
}

// stored is one message in the stream.
type stored struct {
	seq     uint64
	subject string
	msgID   string
	data    string
	trace   string // the traceparent header
}

// streamContents returns every message in the stream, in order.
func streamContents(t testing.TB, cl *cluster.Cluster) []stored {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	st, err := cl.JetStream().Stream(ctx, cl.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			if strings.Contains(err.Error(), "not found") {
				continue
			}
			t.Fatal(err)
		}
		out = append(out, stored{seq: seq, subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader), data: string(m.Data),
			trace: m.Header.Get("traceparent")})
	}
	return out
}

func streamCount(t testing.TB, cl *cluster.Cluster) uint64 {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	st, err := cl.JetStream().Stream(ctx, cl.StreamName())
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkExactlyOnceInOrder checks that the stream holds exactly the rows
// ids (in this order), once each, with dedup ids "pg-<id>".
func checkExactlyOnceInOrder(t testing.TB, msgs []stored, prefix string, ids []int64) {
	t.Helper()
	if len(msgs) != len(ids) {
		seen := map[string]int{}
		for _, m := range msgs {
			seen[m.msgID]++
		}
		var dups []string
		for k, n := range seen {
			if n > 1 {
				dups = append(dups, k)
			}
		}
		t.Fatalf("stream has %d messages, want %d (duplicated: %v)", len(msgs), len(ids), dups)
	}
	for i, m := range msgs {
		if want := prefix + strconv.FormatInt(ids[i], 10); m.msgID != want {
			t.Fatalf("stream[%d] = %s (%s), want %s", i, m.msgID, m.data, want)
		}
	}
}

func (h *harness) count(query string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.conn.QueryRow(testCtx(h.t, 10*time.Second), fmt.Sprintf(query, h.schema), args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", query, err)
	}
	return n
}
