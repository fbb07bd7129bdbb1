package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/bridges/postgres"
	"github.com/fraiseql/subscriptions/bridges/redis"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/ws"
)

// Config is the node's configuration file. Every key can be overridden by
// an environment variable FRAISEQL_<KEY PATH> (e.g. nats.url →
// FRAISEQL_NATS_URL) and some by flags; flags win over env, env over the file.
type Config struct {
	// Listen is the public HTTP address: /graphql, /healthz and a bare
	// /readyz status.
	Listen string `yaml:"listen"`
	// OpsListen is the operations address: /metrics, /readyz with the
	// reasons, /healthz and pprof. "off" serves none. Keep it on loopback
	// or a private network.
	OpsListen string `yaml:"ops_listen"`
	// TrustedProxies are the load balancers (CIDRs or addresses) believed
	// about a client's address; see docs/security.md.
	TrustedProxies addrList `yaml:"trusted_proxies"`
	// ProxyProtocol is off, optional or required: the PROXY header from
	// TrustedProxies.
	ProxyProtocol string `yaml:"proxy_protocol"`
	// ForwardedHeader is x-forwarded-for, forwarded or none: the request
	// header TrustedProxies name the client in.
	ForwardedHeader string `yaml:"forwarded_header"`
	// Schema is the path of the SDL file; empty serves the built-in demo chat schema.
	Schema string `yaml:"schema"`
	// DataDir holds the embedded NATS server's JetStream store and the file
	// nats.url that `fraiseql-node publish` reads to find it.
	DataDir string `yaml:"data_dir"`
	// Tenant is the tenant of anonymous connections.
	Tenant string `yaml:"tenant"`
	// DebugListen, when set, serves the ops listener's handler (pprof at
	// /debug/pprof/, /metrics) on this address too. Deprecated: ops_listen
	// serves pprof. Keep it on loopback: profiles expose internals.
	DebugListen string     `yaml:"debug_listen"`
	Log         LogConfig  `yaml:"log"`
	NATS        NATSConfig `yaml:"nats"`
	WS          WSConfig   `yaml:"ws"`
	// Shutdown configures how the node stops; see ShutdownConfig.
	Shutdown ShutdownConfig `yaml:"shutdown"`
	Limits   limits.Config  `yaml:"limits"`
	// Auth configures JWT authentication; see docs/security.md.
	Auth auth.Config `yaml:"auth"`
	// Bridges ingest Redis and PostgreSQL events; see docs/publishing.md.
	Bridges BridgesConfig `yaml:"bridges"`
	// Metrics configures what /metrics reports; see docs/monitoring.md.
	Metrics MetricsConfig `yaml:"metrics"`
	// Admin configures the admin API; see AdminConfig.
	Admin AdminConfig `yaml:"admin"`
	// Tracing configures OpenTelemetry traces; see TracingConfig.
	Tracing TracingConfig `yaml:"tracing"`
}

// MetricsConfig configures /metrics.
type MetricsConfig struct {
	// Tenants get per-tenant connection and subscription gauges (at most
	// 100; the others are summed as "_other"). File only.
	Tenants []string `yaml:"tenants"`
}

// BridgesConfig selects the bridges this node runs. Every node may run
// them: a lease per source makes exactly one node ingest it at a time.
type BridgesConfig struct {
	// Required makes /readyz fail while an enabled bridge is down, so a
	// load balancer routes around the node. Off by default: subscribers
	// are served whatever the bridges' state.
	Required bool           `yaml:"required"`
	Redis    RedisBridge    `yaml:"redis"`
	Postgres PostgresBridge `yaml:"postgres"`
}

// RedisBridge is the Redis bridge's section: enabled plus its own keys.
type RedisBridge struct {
	Enabled      bool `yaml:"enabled"`
	redis.Config `yaml:",inline"`
}

// PostgresBridge is the PostgreSQL bridge's section: enabled plus its own keys.
type PostgresBridge struct {
	Enabled         bool `yaml:"enabled"`
	postgres.Config `yaml:",inline"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // auto (json unless stderr is a terminal), text or json
}

// NATSConfig selects the NATS server and the stream. An empty URL starts
// the embedded server.
type NATSConfig struct {
	URL             string        `yaml:"url"`
	CredsFile       string        `yaml:"creds_file"`
	User            string        `yaml:"user"`
	Password        string        `yaml:"password"`
	Token           string        `yaml:"token"`
	TLSCA           string        `yaml:"tls_ca"`
	TLSCert         string        `yaml:"tls_cert"`
	TLSKey          string        `yaml:"tls_key"`
	Prefix          string        `yaml:"prefix"`
	Stream          string        `yaml:"stream"`
	MaxAge          time.Duration `yaml:"max_age"`
	MaxBytes        int64         `yaml:"max_bytes"`
	Replicas        int           `yaml:"replicas"`
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// CursorKeyFile holds the key that authenticates cursors (one base64
	// or hex 32-byte key per line, the first current); empty keeps it in
	// the KV bucket fraiseql_cursor. See docs/security.md, Cursors.
	CursorKeyFile string `yaml:"cursor_key_file"`
	// MaxReplays and MaxReplayQueue bound resumes from a cursor: history
	// reads in flight, and reads waiting for a slot (past it: REPLAY_BUSY).
	// See docs/limits.md, Resumes.
	MaxReplays     int          `yaml:"max_replays"`
	MaxReplayQueue int          `yaml:"max_replay_queue"`
	Embedded       EmbeddedNATS `yaml:"embedded"`

	// Ingest is how the node receives live events: "interest" (only its
	// subscriptions' subjects; the default) or "stream" (every event).
	// See docs/architecture.md, Ingest by interest.
	Ingest string `yaml:"ingest"`
}

// EmbeddedNATS configures the embedded server.
type EmbeddedNATS struct {
	Host string `yaml:"host"`
	// Port 0 picks a free port: another NATS may already own 4222.
	Port int `yaml:"port"`
	// StoreDir defaults to <data_dir>/jetstream.
	StoreDir string `yaml:"store_dir"`
}

// ShutdownConfig: on SIGTERM the node drains (node.Node.Drain): /readyz
// answers 503 at once, connections are still accepted for DrainDelay, then
// the open ones are closed over DrainWindow; all within Timeout. SIGINT
// (Ctrl-C) stops at once; a second signal cuts either short.
type ShutdownConfig struct {
	DrainDelay  time.Duration `yaml:"drain_delay"`
	DrainWindow time.Duration `yaml:"drain_window"`
	Timeout     time.Duration `yaml:"timeout"`
}

// Defaults of ShutdownConfig.
const (
	defaultDrainDelay      = 5 * time.Second
	defaultDrainWindow     = 5 * time.Second
	defaultShutdownTimeout = 30 * time.Second
)

// WSConfig tunes the WebSocket transport.
type WSConfig struct {
	KeepAlive time.Duration `yaml:"keep_alive"`
	// SSEKeepAlive is the interval of the comments that keep an idle
	// GraphQL-over-SSE stream open through proxies (ws.Options).
	SSEKeepAlive time.Duration `yaml:"sse_keep_alive"`
	WriteQueue   int           `yaml:"write_queue"`
	WriteTimeout time.Duration `yaml:"write_timeout"`

	// MultipartHeartbeat is the interval of the heartbeat parts that keep
	// an idle multipart subscription response open (ws.Options).
	MultipartHeartbeat time.Duration `yaml:"multipart_heartbeat"`

	// MaxQueuedBytes bounds one connection's write queue in bytes; 0: 4 MiB,
	// or four events of limits.max_event_bytes when more (ws.Options).
	MaxQueuedBytes int64 `yaml:"max_queued_bytes"`
	// NodeQueuedBytes bounds the backlog of all connections together; 0:
	// 1 GiB, or half GOMEMLIMIT when lower (ws.Options).
	NodeQueuedBytes int64 `yaml:"node_queued_bytes"`
	// WriteDelay puts off write rounds to collect events (ws.Options.WriteDelay).
	WriteDelay time.Duration `yaml:"write_delay"`
	// CoalesceDelay holds the writes of connections that receive events
	// faster than one per delay, so that several share a write(2)
	// (ws.Options.CoalesceDelay); 0 disables it.
	CoalesceDelay time.Duration `yaml:"coalesce_delay"`
	// OriginPatterns are the browser origins allowed besides the node's own
	// host (e.g. "app.example.com", "*.example.com"). Clients that send no
	// Origin header (non-browser) are always allowed.
	OriginPatterns []string `yaml:"origin_patterns"`
	// Compression negotiates permessage-deflate with WebSocket clients
	// that offer it: off, no_context_takeover or context_takeover
	// (ws.Options.Compression).
	Compression string `yaml:"compression"`
	// CompressionThreshold: smaller `next` messages go uncompressed.
	CompressionThreshold int `yaml:"compression_threshold"`
	// CompressionContextConns bounds the connections with a compressor of
	// their own (context_takeover); later ones get no context takeover.
	CompressionContextConns int `yaml:"compression_context_conns"`
	// SSECompression: gzip compresses GraphQL-over-SSE responses for
	// clients that accept it; off does not.
	SSECompression string `yaml:"sse_compression"`
	// IOUring: auto sends write rounds' writes through io_uring where the
	// kernel allows it, off never, on refuses to start without it
	// (ws.Options.IOUring).
	IOUring string `yaml:"io_uring"`

	// SSEReservationTimeout and SSEMaxReservations* bound graphql-sse
	// single connection mode reservations (ws.Options).
	SSEReservationTimeout       time.Duration `yaml:"sse_reservation_timeout"`
	SSEMaxReservations          int           `yaml:"sse_max_reservations"`
	SSEMaxReservationsPerUser   int           `yaml:"sse_max_reservations_per_user"`
	SSEMaxReservationsPerTenant int           `yaml:"sse_max_reservations_per_tenant"`
}

func defaultConfig() Config {
	return Config{
		Listen:    "127.0.0.1:8080",
		OpsListen: defaultOpsListen,
		DataDir:   defaultDataDir(),
		Tenant:    "public",
		Log:       LogConfig{Level: "info", Format: "auto"},
		NATS: NATSConfig{
			Prefix:          cluster.DefaultPrefix,
			Stream:          cluster.DefaultStream,
			MaxAge:          cluster.DefaultMaxAge,
			MaxBytes:        cluster.DefaultMaxBytes,
			Replicas:        cluster.DefaultReplicas,
			DuplicateWindow: cluster.DefaultDuplicateWindow,
			MaxReplays:      cluster.DefaultMaxReplays,
			MaxReplayQueue:  cluster.DefaultMaxReplayQueue,
			Ingest:          cluster.IngestInterest,
			Embedded:        EmbeddedNATS{Host: cluster.DefaultEmbeddedHost},
		},
		Admin: AdminConfig{RevocationTTL: node.DefaultRevocationTTL},
		Shutdown: ShutdownConfig{
			DrainDelay:  defaultDrainDelay,
			DrainWindow: defaultDrainWindow,
			Timeout:     defaultShutdownTimeout,
		},
		WS: WSConfig{
			KeepAlive:     ws.DefaultKeepAlive,
			SSEKeepAlive:  ws.DefaultSSEKeepAlive,
			WriteQueue:    ws.DefaultWriteQueue,
			WriteTimeout:  ws.DefaultWriteTimeout,
			CoalesceDelay: ws.DefaultCoalesceDelay,

			MultipartHeartbeat: ws.DefaultMultipartHeartbeat,

			Compression:             string(ws.CompressionOff),
			CompressionThreshold:    ws.DefaultCompressionThreshold,
			CompressionContextConns: ws.DefaultCompressionContextConns,
			SSECompression:          ws.SSECompressionOff,
			IOUring:                 string(ws.IOUringAuto),
		},
		ProxyProtocol:   node.ProxyProtocolOff,
		ForwardedHeader: node.ForwardedXFF,
	}
}

// defaultDataDir is $XDG_STATE_HOME/fraiseql, else <tmp>/fraiseql-<uid>.
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "fraiseql")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("fraiseql-%d", os.Getuid()))
}

// loadConfig reads the file (if any), then applies FRAISEQL_* env vars.
func loadConfig(path string, environ []string) (Config, error) {
	cfg := defaultConfig()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		if err := decodeNode(&doc, reflect.ValueOf(&cfg).Elem(), ""); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// envKeys maps FRAISEQL_* names to the config fields they set, from the
// yaml tags. fileOnly gets the names of the keys the environment cannot set
// (lists and maps).
func envKeys(v reflect.Value, prefix, path string, out map[string]envField, fileOnly map[string]string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		fv := v.Field(i)
		if f.Anonymous && strings.Contains(f.Tag.Get("yaml"), "inline") {
			envKeys(fv, prefix, path, out, fileOnly) // an inlined struct's keys are its parent's
			continue
		}
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		name, key := prefix+"_"+strings.ToUpper(tag), path+tag
		if f.Type.Kind() == reflect.Struct && !implementsText(f.Type) {
			envKeys(fv, name, key+".", out, fileOnly)
			continue
		}
		if (f.Type.Kind() == reflect.Map || f.Type.Kind() == reflect.Slice) && !implementsText(f.Type) {
			fileOnly[name] = key // maps and lists are file-only, unless they parse from text (trusted_proxies)
			continue
		}
		out[name] = envField{key: key, v: fv}
	}
}

type envField struct {
	key string
	v   reflect.Value
}

func implementsText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshaler)
}

// applyEnv sets the keys named by FRAISEQL_* variables. A FRAISEQL_*
// variable that is not a key's is an error when it looks meant as one:
// inside a section (FRAISEQL_LIMITS_…) or a typo or two from a key's name.
// Others (FRAISEQL_URL, FRAISEQL_TOKEN of the example clients) are not
// the node's and pass.
func applyEnv(cfg *Config, environ []string) error {
	fields, fileOnly := make(map[string]envField), make(map[string]string)
	envKeys(reflect.ValueOf(cfg).Elem(), "FRAISEQL", "", fields, fileOnly)
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "FRAISEQL_") {
			continue
		}
		f, known := fields[name]
		if !known {
			if err := unknownEnv(name, fields, fileOnly); err != nil {
				return err
			}
			continue
		}
		// Decode the value as a YAML scalar into the field, so that env and
		// file parse values (durations, sizes, bools) the same way.
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(val), &doc); err != nil {
			return fmt.Errorf("environment %s (%s): %q is not a single value", name, f.key, val)
		}
		if err := decodeNode(&doc, f.v, f.key); err != nil {
			if ce, ok := errors.AsType[*configError](err); ok {
				ce.line = 0 // the variable has one line
			}
			return fmt.Errorf("environment %s: %w", name, err)
		}
	}
	return nil
}

// unknownEnv returns the error for a FRAISEQL_* variable that no key has,
// or nil when the variable is not meant for the node.
func unknownEnv(name string, fields map[string]envField, fileOnly map[string]string) error {
	if key, ok := fileOnly[name]; ok {
		return fmt.Errorf("environment %s: %s is a list or mapping, set in the configuration file only (docs/configuration.md)", name, key)
	}
	names := slices.Collect(maps.Keys(fields))
	slices.Sort(names)
	best, d := nearest(name, names)
	var keys []string
	for _, f := range fields {
		keys = append(keys, f.key)
	}
	inSection := false
	for _, k := range slices.Concat(keys, slices.Collect(maps.Values(fileOnly))) {
		// a section's prefix, e.g. FRAISEQL_LIMITS_ for limits.subscribe_rate
		if parent, _ := splitKey(k); parent != "" && strings.HasPrefix(name, "FRAISEQL_"+strings.ToUpper(strings.ReplaceAll(parent, ".", "_"))+"_") {
			inSection = true
			break
		}
	}
	if !inSection && d > maxTypo(strings.TrimPrefix(name, "FRAISEQL_")) {
		return nil
	}
	return fmt.Errorf("environment %s is not a configuration variable; did you mean %s (%s)? (docs/configuration.md lists them)", name, best, fields[best].key)
}

// clusterConfig maps the nats section onto cluster.Config.
func (c Config) clusterConfig() cluster.Config {
	n := c.NATS
	store := n.Embedded.StoreDir
	if store == "" {
		store = filepath.Join(c.DataDir, "jetstream")
	}
	return cluster.Config{
		URL:             n.URL,
		CredsFile:       n.CredsFile,
		User:            n.User,
		Password:        n.Password,
		Token:           n.Token,
		TLSCA:           n.TLSCA,
		TLSCert:         n.TLSCert,
		TLSKey:          n.TLSKey,
		Prefix:          n.Prefix,
		Stream:          n.Stream,
		MaxAge:          n.MaxAge,
		MaxBytes:        n.MaxBytes,
		Replicas:        n.Replicas,
		DuplicateWindow: n.DuplicateWindow,
		CursorKeyFile:   n.CursorKeyFile,
		MaxReplays:      n.MaxReplays,
		MaxReplayQueue:  n.MaxReplayQueue,
		Ingest:          n.Ingest,
		MaxMsgSize:      int32(c.Limits.WithDefaults().MaxEventBytes),
		Embedded: cluster.EmbeddedConfig{
			Host:     n.Embedded.Host,
			Port:     n.Embedded.Port,
			StoreDir: store,
		},
	}
}

// validate checks everything that can be checked without starting anything.
// defaultOpsListen is ops_listen's default: loopback only.
const defaultOpsListen = "127.0.0.1:8081"

// opsListen is the ops listener's address for node.Config ("" for off).
func (c Config) opsListen() string {
	if c.OpsListen == "off" {
		return ""
	}
	return c.OpsListen
}

func (c Config) validate() error {
	if _, err := c.adminToken(); err != nil {
		return err
	}
	if err := c.Tracing.validate(); err != nil {
		return err
	}
	if c.Listen == "" {
		return errors.New("listen: must not be empty")
	}
	if c.OpsListen == "" {
		return fmt.Errorf("ops_listen: must be host:port (default %s) or off", defaultOpsListen)
	}
	if _, _, err := net.SplitHostPort(c.OpsListen); c.OpsListen != "off" && err != nil {
		return fmt.Errorf("ops_listen: %q is not host:port (e.g. %s) or off", c.OpsListen, defaultOpsListen)
	}
	if c.OpsListen != "off" && c.OpsListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		return fmt.Errorf("ops_listen: %s is also listen; operations data must not be served on the public address", c.OpsListen)
	}
	if _, err := c.edgeConfig(); err != nil {
		return err
	}
	if c.DataDir == "" {
		return errors.New("data_dir: must not be empty")
	}
	if err := cluster.ValidateTenant(c.Tenant); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return err
	}
	if c.Log.Format != "auto" && c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format: %q is not auto, text or json", c.Log.Format)
	}
	if s := c.Shutdown; s.DrainDelay < 0 || s.DrainWindow < 0 || s.Timeout <= 0 || s.DrainDelay+s.DrainWindow >= s.Timeout {
		return fmt.Errorf("shutdown: drain_delay (%v) and drain_window (%v) must not be negative, and their sum must be less than timeout (%v), which must be positive",
			s.DrainDelay, s.DrainWindow, s.Timeout)
	}
	if c.WS.WriteQueue < 0 {
		return fmt.Errorf("ws.write_queue (%d) must not be negative", c.WS.WriteQueue)
	}
	if ev := int64(c.Limits.WithDefaults().MaxEventBytes); c.WS.MaxQueuedBytes > 0 && c.WS.MaxQueuedBytes < ev {
		return fmt.Errorf("ws.max_queued_bytes (%d) must be at least limits.max_event_bytes (%d)", c.WS.MaxQueuedBytes, ev)
	}
	if c.WS.CoalesceDelay < 0 {
		return fmt.Errorf("ws.coalesce_delay (%v) must be between 0 and %v (0 disables coalescing)", c.WS.CoalesceDelay, ws.MaxCoalesceDelay)
	}
	if err := c.wsOptions().Validate(); err != nil {
		return err
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if c.authMode() == auth.ModeNone && c.Auth.Mode == "" && !loopback(c.Listen) {
		return fmt.Errorf("auth: no key configured (auth.hs256_secret_file, auth.public_key_files or auth.jwks_file) and listen %s is not a loopback address; configure a key, or set auth.mode: none to serve without authentication (development only)", c.Listen)
	}
	if c.authMode() == auth.ModeJWT {
		if err := c.Auth.Validate(); err != nil {
			return err
		}
	}
	if err := node.CheckOriginPatterns(c.WS.OriginPatterns, c.authMode() == auth.ModeJWT && c.Auth.Cookie != ""); err != nil {
		return err
	}
	if c.Bridges.Redis.Enabled {
		if err := c.Bridges.Redis.Validate(); err != nil {
			return err
		}
	}
	if c.Bridges.Postgres.Enabled {
		if err := c.Bridges.Postgres.Validate(); err != nil {
			return err
		}
	}
	if err := c.clusterConfig().Validate(); err != nil {
		return err
	}
	return nil
}

// authMode is the effective auth mode: an explicit auth.mode, else jwt
// when a key is configured, else none (development; loopback only, see
// validate).
func (c Config) authMode() string {
	if c.Auth.Mode != "" {
		return c.Auth.Mode
	}
	a := c.Auth
	if a.HS256Secret != "" || a.HS256SecretFile != "" || len(a.PublicKeyFiles) > 0 || a.JWKSFile != "" {
		return auth.ModeJWT
	}
	return auth.ModeNone
}

// loopback reports whether addr's host is a loopback address or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("log.level: %q is not debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger returns the node's logger on w. Format auto is JSON (for log
// collectors) unless w is a terminal (a person reading).
func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" || c.Format == "auto" && !isTerminal(w) {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redactURLs hides the passwords of the comma-separated URLs in s.
func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// printConfig writes the effective configuration (secrets redacted) as YAML.
func printConfig(w io.Writer, c Config) error {
	// Defaults resolved: what the node runs with, not what was written.
	mode := c.authMode()
	c.Auth = c.Auth.WithDefaults()
	c.Auth.Mode = mode
	c.Limits = c.Limits.WithDefaults()
	consumer := c.Bridges.Redis.Consumer // default: the node's host and pid, not this command's
	c.Bridges.Redis.Config = c.Bridges.Redis.WithDefaults()
	c.Bridges.Redis.Consumer = consumer
	c.Bridges.Postgres.Config = c.Bridges.Postgres.WithDefaults()
	c.NATS.Embedded.StoreDir = c.clusterConfig().Embedded.StoreDir
	for _, s := range []*string{&c.NATS.Password, &c.NATS.Token, &c.Auth.HS256Secret} {
		if *s != "" {
			*s = "REDACTED"
		}
	}
	for _, s := range []*string{&c.NATS.URL, &c.Bridges.Redis.URL, &c.Bridges.Postgres.URL} {
		*s = redactURLs(*s)
	}
	fmt.Fprintln(w, "# configuration is valid; effective values:")
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return err
	}
	return enc.Close()
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// wsOptions is the WebSocket transport's part of the configuration.
func (c Config) wsOptions() ws.Options {
	coalesce := c.WS.CoalesceDelay
	if coalesce == 0 {
		coalesce = -1 // ws.Options: zero means the default, negative off
	}
	return ws.Options{
		KeepAlive:      c.WS.KeepAlive,
		SSEKeepAlive:   c.WS.SSEKeepAlive,
		WriteQueue:     c.WS.WriteQueue,
		WriteTimeout:   c.WS.WriteTimeout,
		OriginPatterns: c.WS.OriginPatterns,

		MultipartHeartbeat: c.WS.MultipartHeartbeat,

		MaxQueuedBytes:  c.WS.MaxQueuedBytes,
		NodeQueuedBytes: c.WS.NodeQueuedBytes,
		WriteDelay:      c.WS.WriteDelay,
		CoalesceDelay:   coalesce,

		Compression:                 ws.Compression(c.WS.Compression),
		CompressionThreshold:        c.WS.CompressionThreshold,
		CompressionContextConns:     c.WS.CompressionContextConns,
		SSECompression:              c.WS.SSECompression,
		IOUring:                     ws.IOUringMode(c.WS.IOUring),
		SSEReservationTimeout:       c.WS.SSEReservationTimeout,
		SSEMaxReservations:          c.WS.SSEMaxReservations,
		SSEMaxReservationsPerUser:   c.WS.SSEMaxReservationsPerUser,
		SSEMaxReservationsPerTenant: c.WS.SSEMaxReservationsPerTenant,
	}
}
