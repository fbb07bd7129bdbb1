package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/query"
)

// natsURLFile is where a node with an embedded NATS server writes its
// client URL, with the server's generated credentials
// (nats://fraiseql:<password>@127.0.0.1:<port>), so that
// `fraiseql-node publish` and other NATS clients run by the same user can
// reach the server, and nobody else can. The file is 0600 and removed on
// exit.
const natsURLFile = "nats.url"

// serveFlags are serve's flags, which config check takes too.
type serveFlags struct {
	commonFlags
	listen, opsListen, schema, logLevel string
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	f.commonFlags.register(fs)
	fs.StringVar(&f.listen, "listen", "", "HTTP listen address; overrides listen (default 127.0.0.1:8080)")
	fs.StringVar(&f.opsListen, "ops-listen", "", "operations listen address (/metrics, /readyz details, pprof) or off; overrides ops_listen (default "+defaultOpsListen+")")
	fs.StringVar(&f.schema, "schema", "", "GraphQL SDL file; overrides schema (default: the built-in demo chat schema)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error; overrides log.level")
}

// load is commonFlags.load with serve's own flags applied too.
// parse registers f on fs, parses args (which must be flags only), and
// loads and validates the configuration they and environ give: what serve
// and config check share.
func (f *serveFlags) parse(fs *flag.FlagSet, args, environ []string) (Config, error) {
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, usageErrorOrHelp(err)
	}
	if fs.NArg() > 0 {
		return Config{}, usageError{fmt.Errorf("%s takes no arguments, got %q", fs.Name(), fs.Args())}
	}
	cfg, err := f.load(fs, environ)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.validate(); err != nil {
		return Config{}, usageError{err}
	}
	return cfg, nil
}

func (f *serveFlags) load(fs *flag.FlagSet, environ []string) (Config, error) {
	cfg, err := f.commonFlags.load(fs, environ)
	if err != nil {
		return cfg, err
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "listen":
			cfg.Listen = f.listen
		case "ops-listen":
			cfg.OpsListen = f.opsListen
		case "schema":
			cfg.Schema = f.schema
		case "log-level":
			cfg.Log.Level = f.logLevel
		}
	})
	return cfg, nil
}

func serve(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage, "\nFlags of serve:\n")
		fs.PrintDefaults()
	}
	var flags serveFlags
	cfg, err := flags.parse(fs, args, environ)
	if err != nil {
		return err
	}
	schema, err := loadSchema(cfg.Schema)
	if err != nil {
		return usageError{err}
	}
	log := newLogger(cfg.Log, stderr)
	checkDescriptors(cfg.Limits, log)
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

	// Claim the data directory and the listen address before NATS
	// starts: a second node must neither open the first one's store nor
	// fail only after its NATS server has come and gone.
	if cfg.NATS.URL == "" {
		lock, err := lockDataDir(cfg.DataDir, cfg.Listen)
		if err != nil {
			return err
		}
		defer lock.release()
	}
	ln, err := listenPublic(cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close() // after Start, the node owns it; closing twice is harmless

	cl, err := cluster.Open(ctx, cfg.clusterConfig(), log)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer cl.Close()
	if cfg.NATS.URL == "" {
		if err := writeNATSURL(cfg.DataDir, cl.EmbeddedURL()); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(cfg.DataDir, natsURLFile))
	}

	adminToken, err := cfg.adminToken()
	if err != nil {
		return usageError{err}
	}
	tp, stopTracing, err := startTracing(ctx, cfg.Tracing)
	if err != nil {
		return usageError{err}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("tracing: spans not flushed at exit", "err", err)
		}
	}()
	ncfg := node.Config{
		AdminToken:    adminToken,
		RevocationTTL: cfg.Admin.RevocationTTL,
		Listen:        cfg.Listen,
		OpsListen:     cfg.opsListen(),
		Schema:        schema,
		LoadSchema:    schemaLoader(cfg.Schema),
		Auth:          verifier,
		Limits:        cfg.Limits,
		Tenant:        cfg.Tenant,
		WS:            cfg.wsOptions(),
		DrainDelay:    cfg.Shutdown.DrainDelay,
		DrainWindow:   cfg.Shutdown.DrainWindow,
		Logger:        log,

		TrustedProxies:  cfg.trustedProxies(),
		ProxyProtocol:   cfg.ProxyProtocol,
		ForwardedHeader: cfg.ForwardedHeader,
		MetricsTenants:  cfg.Metrics.Tenants,
	}
	if tp != nil { // a nil *TracerProvider in the interface would not be nil
		ncfg.TracerProvider = tp
	}
	n, err := node.New(ncfg, cl)
	if err != nil {
		return usageError{err}
	}
	stopBridges, err := startBridges(ctx, cfg.Bridges, cl, n, log)
	if err != nil {
		return usageError{err}
	}
	defer stopBridges()
	if err := n.Start(ctx, ln); err != nil {
		return err
	}
	defer reloadOnHUP(n, log)()
	if cfg.DebugListen != "" {
		stop, err := serveDebug(cfg.DebugListen, n.OpsHandler(), log)
		if err != nil {
			return err
		}
		defer stop()
	}
	printWelcome(stdout, n.Addr(), n.OpsAddr(), cfg, flags.config, cl.ClientURL(), schema)

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Timeout)
	defer cancel()
	if sig, ok := errors.AsType[stopSignal](context.Cause(ctx)); ok {
		go func() { // ends with sctx (cancelled on return)
			select {
			case <-sig.force:
				log.Warn("second signal: stopping now")
				cancel()
			case <-sctx.Done():
			}
		}()
		if sig.sig == syscall.SIGTERM {
			err := n.Drain(sctx)
			select {
			case <-sig.force: // asked for: the remaining sockets were dropped
				return nil
			default:
				return err
			}
		}
	}
	log.Info("shutting down")
	return n.Shutdown(sctx)
}

// listenPublic binds the public address, with an error that says what to do
// when another process holds it.
func listenPublic(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen %s: the address is in use by another process (another fraiseql-node?); "+
			"choose another with --listen HOST:PORT (or FRAISEQL_LISTEN)", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
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

// writeNATSURL writes url (which holds a password) to dataDir/nats.url,
// readable by its owner only. It writes a new file and renames it over
// the old one, so the mode is 0600 even when an older nats.url had
// another, and a reader never sees a partial URL.
func writeNATSURL(dataDir, url string) (err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	f, err := os.CreateTemp(dataDir, natsURLFile+".*") // mode 0600
	if err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err := f.WriteString(url + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dataDir, natsURLFile)); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	return nil
}

func printWelcome(w io.Writer, addr, opsAddr string, cfg Config, configFile, natsURL string, schema *query.Schema) {
	nats := "embedded NATS at " + natsURL + " (store " + cfg.clusterConfig().Embedded.StoreDir + ";\n" +
		"                           clients log in with the URL in " + filepath.Join(cfg.DataDir, natsURLFile) + ")"
	if cfg.NATS.URL != "" {
		nats = "NATS at " + natsURL
	}
	ops := "off (ops_listen)"
	if opsAddr != "" {
		ops = "http://" + opsAddr + "/metrics  /readyz  /debug/pprof/"
	}
	sub, pub := tourCommands(addr, cfg, configFile)
	fmt.Fprintf(w, `FraiseQL node ready
  GraphQL over WebSocket:  ws://%[1]s/graphql  (graphql-transport-ws, graphql-ws)
  health:                  http://%[1]s/healthz  /readyz
  operations:              %[4]s
  events from:             %[2]s
  subscription fields:     %[3]v
  authentication:          %[7]s

Subscribe (in another terminal, from the repository):
  %[5]s
Publish:
  %[6]s
`, addr, nats, schema.Fields(), ops, sub, pub, authSummary(cfg))
}

// tourCommands are the banner's subscribe and publish commands for this
// node as it runs: its address, data directory, configuration and auth.
func tourCommands(addr string, cfg Config, configFile string) (sub, pub string) {
	var env []string
	if addr != defaultConfig().Listen {
		env = append(env, "FRAISEQL_URL=ws://"+addr+"/graphql")
	}
	pubFlags := ""
	if configFile != "" {
		pubFlags += " --config " + shellQuote(configFile)
	}
	if cfg.NATS.URL == "" && cfg.DataDir != defaultDataDir() {
		pubFlags += " --data-dir " + shellQuote(cfg.DataDir)
	}
	if cfg.NATS.URL != "" && configFile == "" {
		pubFlags += " --nats-url " + shellQuote(redactURLs(cfg.NATS.URL))
	}
	if cfg.authMode() == auth.ModeJWT {
		token := "<a JWT for tenant acme from your identity provider>"
		if f := cfg.Auth.HS256SecretFile; f != "" {
			token = "$(go run ./auth/cmd/fraiseql-token --secret-file " + shellQuote(f) + " --tenant acme --sub you)"
		}
		env = append(env, "FRAISEQL_TOKEN="+token)
		pubFlags += " --tenant acme"
	}
	prefix := strings.Join(env, " ")
	if prefix != "" {
		prefix += " "
	}
	sub = "cd examples/js && npm install && " + prefix + `node subscribe.mjs 'subscription { messageAdded(room: "r1") { id text } }'`
	pub = "go run ./cmd/fraiseql-node publish" + pubFlags + ` chat.r1 '{"id":"1","room":"r1","text":"hello"}'`
	return sub, pub
}

// authSummary says how the node authenticates connections.
func authSummary(cfg Config) string {
	if cfg.authMode() == auth.ModeJWT {
		return "JWT (connection_init payload {token}, {authToken} or {Authorization}, or an Authorization: Bearer header)"
	}
	return "OFF: every connection is tenant " + cfg.Tenant + " (auth.mode: none; development only)"
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:@=,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// usageErrorOrHelp passes -h through and marks other flag errors as usage errors.
func usageErrorOrHelp(err error) error {
	if err == flag.ErrHelp {
		return err
	}
	return usageError{err}
}

// serveDebug serves the ops handler on addr (the deprecated debug_listen)
// until stop is called.
func serveDebug(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug_listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { // owned by stop
		defer close(done)
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("debug listener stopped", "err", err)
		}
	}()
	log.Warn("debug_listen is deprecated: ops_listen serves pprof", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
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
