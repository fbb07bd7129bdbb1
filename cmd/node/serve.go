package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// natsURLFile is where a node with an embedded NATS server writes its
// client URL, so that `fraiseql-node publish` finds the server.
const natsURLFile = "nats.url"

func serve(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	listen := fs.String("listen", "", "HTTP listen address; overrides listen (default 127.0.0.1:8080)")
	schemaPath := fs.String("schema", "", "GraphQL SDL file; overrides schema (default: the built-in demo chat schema)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error; overrides log.level")
	if err := fs.Parse(args); err != nil {
		return usageErrorOrHelp(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("serve takes no arguments, got %q", fs.Args())}
	}
	cfg, err := common.load(fs, environ)
	if err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "schema":
			cfg.Schema = *schemaPath
		case "log-level":
			cfg.Log.Level = *logLevel
		}
	})
	if err := cfg.validate(); err != nil {
		return usageError{err}
	}
	schema, err := loadSchema(cfg.Schema)
	if err != nil {
		return usageError{err}
	}
	log := newLogger(cfg.Log, stderr)
	var verifier *auth.Verifier
	if cfg.authMode() == auth.ModeJWT {
		authCfg := cfg.Auth
		authCfg.Mode = auth.ModeJWT
		if verifier, err = auth.New(authCfg, log); err != nil {
			return usageError{err}
		}
		defer verifier.Close()
	} else {
		log.Warn("AUTHENTICATION IS OFF (auth.mode: none): every connection is anonymous, tenant " + cfg.Tenant +
			". Development only: configure auth.hs256_secret_file, auth.public_key_files or auth.jwks_file for anything else.")
	}

	cl, err := cluster.Open(ctx, cfg.clusterConfig(), log)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer cl.Close()
	if cfg.NATS.URL == "" {
		if err := writeNATSURL(cfg.DataDir, cl.ClientURL()); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(cfg.DataDir, natsURLFile))
	}

	n, err := node.New(node.Config{
		Listen: cfg.Listen,
		Schema: schema,
		Auth:   verifier,
		Limits: cfg.Limits,
		Tenant: cfg.Tenant,
		WS: ws.Options{
			KeepAlive:      cfg.WS.KeepAlive,
			WriteQueue:     cfg.WS.WriteQueue,
			WriteTimeout:   cfg.WS.WriteTimeout,
			OriginPatterns: cfg.WS.OriginPatterns,

			MaxQueuedBytes:  cfg.WS.MaxQueuedBytes,
			NodeQueuedBytes: cfg.WS.NodeQueuedBytes,
		},
		WriteDelay: cfg.WS.WriteDelay,
		Logger:     log,
	}, cl)
	if err != nil {
		return usageError{err}
	}
	stopBridges, err := startBridges(ctx, cfg.Bridges, cl, n, log)
	if err != nil {
		return usageError{err}
	}
	defer stopBridges()
	if err := n.Start(ctx, nil); err != nil {
		return err
	}
	if cfg.DebugListen != "" {
		stop, err := serveDebug(cfg.DebugListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	printWelcome(stdout, n.Addr(), cfg, cl.ClientURL(), schema)

	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return n.Shutdown(sctx)
}

func loadSchema(path string) (*query.Schema, error) {
	if path == "" {
		return query.LoadSchema("demo.graphql", demoSchema)
	}
	sdl, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := query.LoadSchema(filepath.Base(path), string(sdl))
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", path, err)
	}
	return s, nil
}

func writeNATSURL(dataDir, url string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, natsURLFile), []byte(url+"\n"), 0o600); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	return nil
}

func printWelcome(w io.Writer, addr string, cfg Config, natsURL string, schema *query.Schema) {
	nats := "embedded NATS at " + natsURL + " (store " + cfg.clusterConfig().Embedded.StoreDir + ")"
	if cfg.NATS.URL != "" {
		nats = "NATS at " + natsURL
	}
	fmt.Fprintf(w, `FraiseQL node ready
  GraphQL over WebSocket:  ws://%[1]s/graphql  (graphql-transport-ws, graphql-ws)
  health, metrics:         http://%[1]s/healthz  /readyz  /metrics
  events from:             %[2]s
  subscription fields:     %[3]v

Subscribe (in another terminal, from the repository):
  cd examples/js && npm install && node subscribe.mjs 'subscription { messageAdded(room: "r1") { id text } }'
Publish:
  go run ./cmd/node publish chat.r1 '{"id":"1","room":"r1","text":"hello"}'
`, addr, nats, schema.Fields())
}

// usageErrorOrHelp passes -h through and marks other flag errors as usage errors.
func usageErrorOrHelp(err error) error {
	if err == flag.ErrHelp {
		return err
	}
	return usageError{err}
}

// serveDebug serves net/http/pprof on addr until stop is called.
func serveDebug(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { // owned by stop
		defer close(done)
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("debug listener stopped", "err", err)
		}
	}()
	log.Info("pprof listening", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { srv.Close(); <-done }, nil
}

// startBridges starts the enabled bridges and adds them to /readyz.
func startBridges(ctx context.Context, cfg BridgesConfig, cl *cluster.Cluster, n *node.Node, log *slog.Logger) (stop func(), err error) {
	var stops []func()
	stopAll := func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}
	add := func(name string, status func() []bridges.Status, stop func()) {
		stops = append(stops, stop)
		n.AddReadiness(name, cfg.Required, func() error {
			for _, s := range status() {
				if !s.Up {
					return fmt.Errorf("%s is down: %s", s.Name, s.LastError)
				}
			}
			return nil
		})
	}
	if cfg.Redis.Enabled {
		status, stop, err := startRedisBridge(ctx, cfg.Redis.Config, cl, n.Registry(), log)
		if err != nil {
			return nil, fmt.Errorf("bridges.redis: %w", err)
		}
		add("bridges.redis", status, stop)
	}
	if cfg.Postgres.Enabled {
		status, stop, err := startPostgresBridge(ctx, cfg.Postgres.Config, cl, n.Registry(), log)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("bridges.postgres: %w", err)
		}
		add("bridges.postgres", status, stop)
	}
	return stopAll, nil
}
