//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/subscriptions/bridges/postgres/pgtest"
)

// TestServeWithBridges runs the node as a user configures it — bridges
// enabled through FRAISEQL_* variables — and checks that events published
// to Redis and through fraiseql.publish() in PostgreSQL reach a WebSocket
// subscriber, and that `migrate` and /readyz work.
func TestServeWithBridges(t *testing.T) {
	pgURL := pgtest.URL(t)
	schema := pgtest.Schema(t, pgURL)
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	opt, err := goredis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s: %v; start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no (or set REDIS_URL)", redisURL, err)
	}
	prefix := fmt.Sprintf("fqltest%d", rand.Uint32())

	// migrate, as an operator runs it before enabling the bridge.
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"migrate", "--database-url", pgURL, "--schema", schema}, nil, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("migrate exited %d: %s", code, stderr.String())
	}

	env := []string{
		"FRAISEQL_DATA_DIR=" + t.TempDir(),
		"FRAISEQL_BRIDGES_REQUIRED=true",
		"FRAISEQL_BRIDGES_REDIS_ENABLED=true",
		"FRAISEQL_BRIDGES_REDIS_URL=" + redisURL,
		"FRAISEQL_BRIDGES_REDIS_PREFIX=" + prefix,
		"FRAISEQL_BRIDGES_REDIS_DISABLE_STREAMS=true",
		"FRAISEQL_BRIDGES_POSTGRES_ENABLED=true",
		"FRAISEQL_BRIDGES_POSTGRES_URL=" + pgURL,
		"FRAISEQL_BRIDGES_POSTGRES_SCHEMA=" + schema,
		"FRAISEQL_BRIDGES_POSTGRES_LEASE_TTL=1s",
		"FRAISEQL_BRIDGES_REDIS_LEASE_TTL=1s",
	}
	addr := serveForTest(t, env)
	sub := subscribeForTest(t, addr, `subscription { messageAdded(room: "r1") { id text } }`)

	// Wait until both bridges lead (readyz is green with bridges required).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz not ready: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Pub/sub is at-most-once: publish until the bridge's subscription is
	// live (bounded), then expect the outbox event.
	var got string
	for i := 0; got == "" && i < 100; i++ {
		rdb.Publish(ctx, prefix+":public:chat.r1", `{"id":"redis","room":"r1","text":"via redis"}`)
		select {
		case m := <-sub.msgs:
			got = string(m["payload"])
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !strings.Contains(got, `{"messageAdded":{"id":"redis","text":"via redis"}}`) {
		t.Fatalf("redis event: %q", got)
	}
	for drained := false; !drained; { // duplicates of the retry loop's publishes
		select {
		case <-sub.msgs:
		case <-time.After(300 * time.Millisecond):
			drained = true
		}
	}
	conn := pgtest.Connect(t, pgURL)
	if _, err := conn.Exec(ctx, `SELECT `+schema+`.publish('public', 'chat.r1', '{"id":"pg","room":"r1","text":"via postgres"}'::jsonb)`); err != nil {
		t.Fatal(err)
	}
	if d := sub.data(); d != `{"messageAdded":{"id":"pg","text":"via postgres"}}` {
		t.Fatalf("postgres event: %s", d)
	}
}

func TestMigrateNeedsADatabase(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"migrate"}, []string{}, nil, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "database") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

// data returns the next `next` message's data.
func (s *wsSubscriber) data() string {
	s.t.Helper()
	m := s.next()
	var p struct {
		Data json.RawMessage `json:"data"`
	}
	json.Unmarshal(m["payload"], &p)
	if string(m["type"]) != `"next"` {
		s.t.Fatalf("got %s %s", m["type"], m["payload"])
	}
	return string(p.Data)
}
