//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/subscriptions/examples/internal/nodetest"
)

// TestDashboardDraws runs the whole example: a node with its PostgreSQL
// bridge (a process built from this repository, on an outbox schema of its
// own), the SQL loop, and the page in headless Chromium, which must
// connect, receive, redraw and leave a drawing; the screenshot is saved
// (DASHBOARD_SCREENSHOT names where; by default the test's temp dir).
func TestDashboardDraws(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v (start it: pg_ctlcluster <version> main start, or set DATABASE_URL)", dbURL, err)
	}
	defer pg.Close(context.Background())
	chromium, jsDir := nodetest.Browser(t)

	suffix := make([]byte, 4)
	rand.Read(suffix)
	schema := "fq_dash_" + hex.EncodeToString(suffix)
	defer pg.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")

	bin := filepath.Join(t.TempDir(), "fraiseql-node")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/fraiseql-node")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.CommandContext(ctx, bin, "migrate", "--database-url", dbURL, "--schema", schema).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	nodeAddr := freeAddr(t)
	node := exec.Command(bin)
	node.Env = append(os.Environ(), "FRAISEQL_DATA_DIR="+t.TempDir(), "FRAISEQL_LISTEN="+nodeAddr, "FRAISEQL_OPS_LISTEN=off",
		"FRAISEQL_BRIDGES_POSTGRES_ENABLED=true", "FRAISEQL_BRIDGES_POSTGRES_URL="+dbURL, "FRAISEQL_BRIDGES_POSTGRES_SCHEMA="+schema,
		"FRAISEQL_BRIDGES_POSTGRES_POLL_INTERVAL=100ms")
	var nodeOut bytes.Buffer
	node.Stdout, node.Stderr = &nodeOut, &nodeOut
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { node.Process.Kill(); node.Wait() }()
	waitListening(t, nodeAddr)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { // ends with rctx
		done <- run(rctx, config{node: "http://" + nodeAddr, databaseURL: dbURL, schema: schema, tenant: "public", metric: "cpu", interval: 200 * time.Millisecond}, ln)
	}()
	defer func() { stop(); <-done }()

	shot := os.Getenv("DASHBOARD_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "dashboard.png")
	}
	drive := exec.CommandContext(ctx, "node", "test/dashboard.mjs")
	drive.Dir = jsDir
	drive.Env = append(os.Environ(), "PAGE_URL=http://"+ln.Addr().String()+"/?metric=cpu", "SCREENSHOT="+shot, "CHROMIUM="+chromium)
	var stderr bytes.Buffer
	drive.Stderr = &stderr
	out, err := drive.Output()
	if err != nil {
		t.Fatalf("the page did not draw: %v\n%s\nnode log:\n%s", err, stderr.String(), nodeOut.String())
	}
	var got struct{ Points, First, Inked int }
	if err := json.Unmarshal(bytes.TrimSpace(out), &got); err != nil {
		t.Fatalf("driver printed %q", out)
	}
	if got.Points <= got.First || got.Inked < 100 {
		t.Fatalf("chart: %d points after %d, %d inked pixels; want a redraw and a line", got.Points, got.First, got.Inked)
	}
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 1000 || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("screenshot %s: %d bytes, %v", shot, len(png), err)
	}
	t.Logf("chart drew %d points (%d inked pixels); screenshot %s", got.Points, got.Inked, shot)
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	for i := 0; i < 600; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no node listening on %s after 60 s", addr)
}
