//go:build linux

// Command fraiseql-loadgen drives a FraiseQL Subscriptions node with many
// graphql-transport-ws (or GraphQL over SSE) clients and a paced JetStream publisher, and reports
// delivery, loss, latency and the node's CPU and memory.
//
//	fraiseql-loadgen -spawn -conns 1000 -rate 100 -duration 30s -out run.json
//	fraiseql-loadgen -target ws://127.0.0.1:8080/graphql -data-dir /tmp/fraiseql-1000 -conns 200
//	fraiseql-loadgen -spawn -saturate -conns 2000 -sat-start 10 -sat-step 10s
//	fraiseql-loadgen -spawn -soak -conns 10000 -subs 10 -rate 1 -duration 30m
//	fraiseql-loadgen -server centrifugo -spawn -centrifugo-bin ./centrifugo -conns 2000 -rate 20
//	fraiseql-loadgen -spawn -transport sse -conns 1000 -rate 100 -duration 20s
//
// It only connects to loopback addresses. See docs/load-tool.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fraiseql/subscriptions/tests/load/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// envList collects repeated -node-env KEY=VAL.
type envList []string

func (e *envList) String() string     { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error { *e = append(*e, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := loadgen.Defaults()
	fs := flag.NewFlagSet("fraiseql-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var env envList
	fs.StringVar(&cfg.Server, "server", cfg.Server, "what to measure: fraiseql (the node) or centrifugo (the reference, for comparison on the same machine)")
	fs.StringVar(&cfg.CentrifugoBin, "centrifugo-bin", "", "-server centrifugo -spawn: the Centrifugo binary to start (the tool does not build it)")
	fs.StringVar(&cfg.API, "api", "", "-server centrifugo -target: its HTTP API, http://127.0.0.1:PORT/api (loopback only)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "-server centrifugo -target: its HTTP API key")
	fs.StringVar(&cfg.Transport, "transport", cfg.Transport, "how clients reach the node: ws (graphql-transport-ws, one WebSocket per client) or sse (GraphQL over SSE, one HTTP request, so one TCP connection, per subscription)")
	fs.BoolVar(&cfg.Compress, "compress", false, "offer WebSocket permessage-deflate; the report says whether the server took it")
	fs.BoolVar(&cfg.Gzip, "gzip", false, "-transport sse: send Accept-Encoding: gzip and decode gzip bodies; the report says how many streams were gzip")
	fs.StringVar(&cfg.Target, "target", "", "endpoint of a running node, ws://127.0.0.1:PORT/graphql (-transport sse: http://127.0.0.1:PORT/graphql; loopback only)")
	fs.StringVar(&cfg.NATSURL, "nats", "", "NATS URL to publish to, nats://[user:password@]127.0.0.1:PORT (default: <data-dir>/nats.url, which holds the embedded server's credentials)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "the running node's data dir, to read nats.url from")
	fs.StringVar(&cfg.OpsURL, "ops", "", "the running node's ops listener, for its /metrics (e.g. http://127.0.0.1:8081; default: the target's host)")
	fs.IntVar(&cfg.ServerPID, "pid", 0, "the running node's PID, for CPU and RSS from /proc (default: from its /metrics)")
	fs.BoolVar(&cfg.Spawn, "spawn", false, "build and start the node as a child process on a free port")
	fs.StringVar(&cfg.NodeBin, "node-bin", "", "node binary for -spawn (default: go build ./cmd/fraiseql-node into a temp dir)")
	fs.StringVar(&cfg.RepoDir, "repo", "", "repository root to build ./cmd/fraiseql-node in (default: found above the working dir)")
	fs.Var(&env, "node-env", "KEY=VAL for the spawned node's environment (repeatable; wins over the load defaults)")
	fs.BoolVar(&cfg.NodeDefaults, "node-defaults", cfg.NodeDefaults, "give the spawned node load-friendly limits (per-IP/user limits and event rate off)")
	fs.BoolVar(&cfg.KeepNodeDir, "keep-node-dir", false, "keep the spawned node's temp dir (binary, node.log, store)")
	fs.IntVar(&cfg.Conns, "conns", cfg.Conns, "clients: WebSocket connections (-transport sse: each makes -subs requests, one TCP connection each)")
	fs.IntVar(&cfg.Subs, "subs", cfg.Subs, "subscriptions per connection (same plan, distinct ids)")
	fs.IntVar(&cfg.Rooms, "rooms", cfg.Rooms, "rooms (topics chat.<room>); connection i subscribes to room i mod R")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "events per second published, in total over all rooms")
	fs.IntVar(&cfg.Payload, "payload", cfg.Payload, "event body size in bytes (the text field pads it)")
	fs.StringVar(&cfg.PayloadKind, "payload-kind", cfg.PayloadKind, "what pads the text field: x (a 512-byte body deflates about 7:1) or text (chat-like English, different in each event)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured window (soak: the soak's length)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "publishing before the measured window, not reported")
	fs.Float64Var(&cfg.ConnectRate, "connect-rate", cfg.ConnectRate, "new connections (and subscribing connections) per second")
	fs.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", cfg.ConnectConcurrency, "dials in flight")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "sanity cap on -conns")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", cfg.MaxInflight, "unacknowledged JetStream publishes in flight (-server centrifugo: events waiting behind the API request in flight)")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "after a window, wait this long without progress for late deliveries")
	fs.DurationVar(&cfg.Settle, "settle", cfg.Settle, "pause before each memory sample")
	fs.DurationVar(&cfg.MaxRuntime, "max-runtime", cfg.MaxRuntime, "hard limit on the whole run (0: its planned length + 10m)")
	fs.BoolVar(&cfg.Saturate, "saturate", false, "step the rate up until loss or p99 exceed their bounds")
	fs.Float64Var(&cfg.SatStartRate, "sat-start", cfg.SatStartRate, "saturate: first step's events/s")
	fs.Float64Var(&cfg.SatFactor, "sat-factor", cfg.SatFactor, "saturate: rate multiplier per step")
	fs.DurationVar(&cfg.SatStep, "sat-step", cfg.SatStep, "saturate: length of each step")
	fs.IntVar(&cfg.SatMaxSteps, "sat-max-steps", cfg.SatMaxSteps, "saturate: most steps")
	fs.Float64Var(&cfg.SatMaxLossPct, "sat-max-loss", cfg.SatMaxLossPct, "saturate: a step fails above this loss, percent")
	fs.DurationVar(&cfg.SatMaxP99, "sat-max-p99", cfg.SatMaxP99, "saturate: a step fails above this p99 latency")
	fs.BoolVar(&cfg.Soak, "soak", false, "hold the connections for -duration at -rate, sampling memory and goroutines")
	fs.DurationVar(&cfg.SampleEvery, "sample-every", cfg.SampleEvery, "soak: sampling interval")
	fs.StringVar(&cfg.Tenant, "tenant", cfg.Tenant, "tenant the node serves anonymous clients")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "the node's subject prefix")
	out := fs.String("out", "", "write the JSON report here")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	maxLoss := fs.Float64("max-loss", -1, "exit 3 if a window's loss exceeds this percent (negative: never)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fraiseql-loadgen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg.NodeEnv = env
	if !*quiet {
		cfg.Log = stderr
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "fraiseql-loadgen:", err)
		return 2
	}
	rep, err := loadgen.Run(ctx, cfg)
	if rep != nil {
		if *out != "" {
			b, jerr := json.MarshalIndent(rep, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(*out, append(b, '\n'), 0o644)
			}
			if jerr != nil {
				fmt.Fprintln(stderr, "fraiseql-loadgen: -out:", jerr)
				return 1
			}
		}
		rep.Summary(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "fraiseql-loadgen:", err)
		return 1
	}
	if *maxLoss >= 0 {
		for _, w := range rep.Windows {
			if w.LossPct > *maxLoss && w.Pass == nil {
				fmt.Fprintf(stderr, "fraiseql-loadgen: %s lost %.3f%% (max %.3f%%)\n", w.Name, w.LossPct, *maxLoss)
				return 3
			}
		}
	}
	return 0
}
