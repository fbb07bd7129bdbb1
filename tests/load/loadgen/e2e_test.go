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
// $FRAISEQL_LOADGEN_NODE_BIN) and runs 20 subscriptions at 50 events/s for
// 2 s on each transport: 20 WebSocket connections × 1 subscription, the
// same offering permessage-deflate to a node with ws.compression off (not
// negotiated) and on (negotiated on every connection, fewer bytes on the
// wire than the bodies), and 10 SSE clients × 2 subscriptions (20
// requests), plain and gzip (ws.sse_compression gzip, -gzip), the
// compressed runs with -payload-kind text. Nothing may be lost, and the
// report must be whole.
func TestEndToEnd(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..", "..")
	nodeBin := os.Getenv("FRAISEQL_LOADGEN_NODE_BIN")
	if nodeBin == "" {
		// Build first, with a generous deadline: on a cold build cache, with
		// other packages compiling, it takes far longer than the run.
		nodeBin = filepath.Join(t.TempDir(), "fraiseql-node")
		bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer bcancel()
		build := exec.CommandContext(bctx, "go", "build", "-o", nodeBin, "./cmd/fraiseql-node")
		build.Dir = repo
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/fraiseql-node: %v\n%s", err, out)
		}
	}
	for _, tc := range []struct {
		name        string
		transport   string
		compress    bool
		gzip        bool
		nodeEnv     string
		conns, subs int
		sockets     int64
		compressed  int64 // connections (SSE: requests) compressed
	}{
		{"ws", TransportWS, false, false, "", 20, 1, 20, 0},
		{"ws compress, node off", TransportWS, true, false, "", 20, 1, 20, 0},
		{"ws compress", TransportWS, true, false, "FRAISEQL_WS_COMPRESSION=no_context_takeover", 20, 1, 20, 20},
		{"ws compress context", TransportWS, true, false, "FRAISEQL_WS_COMPRESSION=context_takeover", 20, 1, 20, 20},
		{"sse", TransportSSE, false, false, "", 10, 2, 20, 0},
		{"sse gzip", TransportSSE, false, true, "FRAISEQL_WS_SSE_COMPRESSION=gzip", 10, 2, 20, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Spawn, cfg.RepoDir, cfg.NodeBin = true, repo, nodeBin
			cfg.Transport, cfg.Compress, cfg.Gzip = tc.transport, tc.compress, tc.gzip
			cfg.Conns, cfg.Subs, cfg.Rate = tc.conns, tc.subs, 50
			if tc.nodeEnv != "" {
				// Above ws.compression_threshold (256), which the
				// default 128-byte body is not.
				cfg.NodeEnv = []string{tc.nodeEnv}
				cfg.Payload, cfg.PayloadKind = 512, PayloadText
			}
			endToEnd(t, cfg, tc.sockets, tc.compressed)
		})
	}
}

func endToEnd(t *testing.T, cfg Config, sockets, compressed int64) {
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
	conns, subs := int64(cfg.Conns), int64(cfg.Conns*cfg.Subs)
	if !rep.OK || int64(rep.Connect.Connected) != conns || rep.Subscribe.Accepted != subs || rep.Subscribe.Confirmed != conns || rep.Connect.Sockets != sockets {
		t.Fatalf("setup: ok %v, connected %d, accepted %d, confirmed %d, sockets %d", rep.OK, rep.Connect.Connected, rep.Subscribe.Accepted, rep.Subscribe.Confirmed, rep.Connect.Sockets)
	}
	if rep.Params.Transport != cfg.Transport || rep.Params.Compress != cfg.Compress || rep.Params.Gzip != cfg.Gzip || rep.Connect.Compressed != compressed {
		t.Fatalf("params %+v, compression negotiated on %d, want %d", rep.Params, rep.Connect.Compressed, compressed)
	}
	warned := strings.Contains(strings.Join(rep.Warnings, "\n"), "negotiated no permessage-deflate")
	if cfg.Compress && compressed == 0 != warned {
		t.Fatalf("compression negotiated on %d, warnings %q", compressed, rep.Warnings)
	}
	if len(rep.Windows) != 1 {
		t.Fatalf("%d windows", len(rep.Windows))
	}
	w := rep.Windows[0]
	if w.Published != 100 || w.Expected != 100*uint64(subs) {
		t.Fatalf("published %d, expected %d; want 100 and %d", w.Published, w.Expected, 100*subs)
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
	// A delivery is at least its body on the wire uncompressed, less
	// compressed, and the node wrote it with write(2) or writev(2).
	if w.WireBytesPerDelivery < float64(rep.Params.BodyBytes) != (compressed > 0) || w.ServerWritesPerDelivery <= 0 || w.ClientReadsPerDelivery <= 0 {
		t.Fatalf("wire %v bytes/delivery (body %d), server writes %v, client reads %v", w.WireBytesPerDelivery, rep.Params.BodyBytes, w.ServerWritesPerDelivery, w.ClientReadsPerDelivery)
	}
	if rep.Connect.Time.Count != uint64(conns) || rep.Subscribe.Time.Count != uint64(conns) || len(rep.Disconnects) != 0 || rep.UnreadableMessages != 0 {
		t.Fatalf("connect %+v subscribe %+v disconnects %v unreadable %d", rep.Connect, rep.Subscribe, rep.Disconnects, rep.UnreadableMessages)
	}
	if !strings.Contains(sum.String(), "loss 0.000%") {
		t.Fatalf("summary:\n%s", sum.String())
	}
}
