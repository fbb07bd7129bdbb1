// Package nodetest runs a node for the examples' tests: an in-process NATS
// server with JetStream and a node serving the demo schema, both stopped
// at the test's cleanup.
package nodetest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/query"
)

// Node is a running node: its HTTP address, the NATS server's URL, and a
// cluster connection to publish with.
type Node struct {
	Addr    string // host:port of /graphql
	NATSURL string
	Cluster *cluster.Cluster
}

// Start starts NATS and a node with the demo schema.
func Start(t testing.TB) *Node {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	sdl, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "..", "cmd", "fraiseql-node", "demo.graphql"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := query.LoadSchema("demo.graphql", string(sdl))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	natsURL := clustertest.RunServer(t)
	cl, err := cluster.Open(ctx, cluster.Config{URL: natsURL}, log)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{Schema: schema, Logger: log}, cl)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx, ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(sctx)
		cl.Close()
	})
	return &Node{Addr: n.Addr(), NATSURL: natsURL, Cluster: cl}
}

// Browser returns Debian's Chromium (or $CHROMIUM) and the directory of
// clients/js, whose playwright-core and test scripts drive it, and fails
// the test, saying how to install them, when either is missing.
func Browser(t testing.TB) (chromium, jsDir string) {
	t.Helper()
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is required: apt-get install chromium (or set CHROMIUM): %v", err)
	}
	_, file, _, _ := runtime.Caller(0)
	jsDir = filepath.Join(filepath.Dir(file), "..", "..", "..", "clients", "js")
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatal("playwright-core is not installed: run `make deps` (npm ci --prefix clients/js)")
	}
	return chromium, jsDir
}
