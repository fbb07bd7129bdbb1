//go:build linux && integration

package loadgen

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestEndToEnd spawns a real node (go build ./cmd/fraiseql-node, or the binary in
// $FRAISEQL_LOADGEN_NODE_BIN) and runs 20 connections × 1 subscription at
// 50 events/s for 2 s: nothing may be lost, and the report must be whole.
func TestEndToEnd(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	cfg := Defaults()
	cfg.Spawn = true
	cfg.RepoDir = filepath.Join(filepath.Dir(file), "..", "..", "..")
	cfg.NodeBin = os.Getenv("FRAISEQL_LOADGEN_NODE_BIN")
	if cfg.NodeBin == "" {
		// Build first, with a generous deadline: on a cold build cache, with
		// other packages compiling, it takes far longer than the run.
		cfg.NodeBin = filepath.Join(t.TempDir(), "fraiseql-node")
		bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer bcancel()
		build := exec.CommandContext(bctx, "go", "build", "-o", cfg.NodeBin, "./cmd/fraiseql-node")
		build.Dir = cfg.RepoDir
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/fraiseql-node: %v\n%s", err, out)
		}
	}
	cfg.Conns, cfg.Subs, cfg.Rate = 20, 1, 50
	cfg.Duration, cfg.Warmup = 2*time.Second, 500*time.Millisecond
	cfg.Settle, cfg.Drain = 200*time.Millisecond, time.Second
	cfg.MaxRuntime = 25 * time.Second
	var log bytes.Buffer
	cfg.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 28*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	var sum bytes.Buffer
	rep.Summary(&sum)
	t.Logf("\n%s", sum.String())
	if !rep.OK || rep.Connect.Connected != 20 || rep.Subscribe.Accepted != 20 || rep.Subscribe.Confirmed != 20 {
		t.Fatalf("setup: ok %v, connected %d, accepted %d, confirmed %d", rep.OK, rep.Connect.Connected, rep.Subscribe.Accepted, rep.Subscribe.Confirmed)
	}
	if len(rep.Windows) != 1 {
		t.Fatalf("%d windows", len(rep.Windows))
	}
	w := rep.Windows[0]
	if w.Published != 100 || w.Expected != 100*20 {
		t.Fatalf("published %d, expected %d; want 100 and 2000", w.Published, w.Expected)
	}
	if w.Delivered != w.Expected || w.Lost != 0 || w.LossPct != 0 || w.Duplicates != 0 || w.Reorders != 0 || w.Skipped != 0 {
		t.Fatalf("delivery: %+v", w)
	}
	if w.Latency.Count != w.Delivered || w.Latency.P50 <= 0 || w.Latency.P99 < w.Latency.P50 || w.Latency.Max < w.Latency.P99 {
		t.Fatalf("latency: %+v", w.Latency)
	}
	if rep.Node.CPUSource != "proc" || rep.Node.PID == 0 || w.ServerCPUMicrosPerDelivery <= 0 || rep.Memory.Idle.RSS <= 0 || rep.Memory.Subscribed.RSS <= 0 {
		t.Fatalf("server measurements: node %+v, window %+v, memory %+v", rep.Node, w, rep.Memory)
	}
	if rep.Connect.Time.Count != 20 || rep.Subscribe.Time.Count != 20 || len(rep.Disconnects) != 0 || rep.UnreadableMessages != 0 {
		t.Fatalf("connect %+v subscribe %+v disconnects %v unreadable %d", rep.Connect, rep.Subscribe, rep.Disconnects, rep.UnreadableMessages)
	}
	if !strings.Contains(sum.String(), "loss 0.000%") {
		t.Fatalf("summary:\n%s", sum.String())
	}
}
