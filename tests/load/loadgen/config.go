//go:build linux

package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is one run of the load tool. Zero fields take the defaults of
// Defaults; Validate names the flag of a bad field.
type Config struct {
	// Server is what is measured: ServerFraiseQL (the node, default) or
	// ServerCentrifugo (the reference the targets are set against).
	Server string
	// CentrifugoBin is the Centrifugo binary to spawn (Server centrifugo
	// with Spawn).
	CentrifugoBin string
	// API and APIKey are a running Centrifugo's HTTP API
	// (http://127.0.0.1:PORT/api) and key, where events are published.
	API, APIKey string

	// Transport is how clients reach the node: TransportWS (one WebSocket
	// per client, graphql-transport-ws; the default) or TransportSSE
	// (GraphQL over Server-Sent Events: one HTTP/1.1 request, so one TCP
	// connection, per subscription).
	Transport string
	// Compress offers WebSocket permessage-deflate; the report says
	// whether the server took it.
	Compress bool
	// Gzip (-transport sse) sends Accept-Encoding: gzip and decodes gzip
	// response bodies; the report says how many streams were gzip.
	Gzip bool

	// Target is the node's endpoint: ws://127.0.0.1:PORT/graphql, or
	// http://127.0.0.1:PORT/graphql with TransportSSE. Empty with Spawn.
	Target string
	// NATSURL is where to publish; empty reads DataDir/nats.url.
	NATSURL string
	// DataDir is the running node's data directory (for nats.url).
	DataDir string
	// OpsURL is the running node's ops listener (http://127.0.0.1:8081),
	// where its /metrics are; empty means Target's host (Centrifugo).
	OpsURL string
	// ServerPID, when known in target mode, lets the tool read the node's
	// CPU and RSS from /proc; otherwise they come from its /metrics.
	ServerPID int

	// Spawn builds (or takes NodeBin) and starts the node as a child.
	Spawn   bool
	NodeBin string
	// RepoDir is the repository root to build ./cmd/fraiseql-node from; empty
	// searches upward from the working directory.
	RepoDir string
	// NodeEnv is extra KEY=VAL for the spawned node, after the load
	// defaults (NodeDefaults), so it wins.
	NodeEnv []string
	// NodeDefaults adds LoadNodeEnv to the spawned node's environment.
	NodeDefaults bool
	// KeepNodeDir keeps the spawned node's temp dir (binary, log, store).
	KeepNodeDir bool

	Conns, Subs, Rooms int
	// Rate is the events per second published in total, over all rooms.
	Rate float64
	// Payload is the size of each event body in bytes (the text field pads
	// it); a body is never smaller than its unpadded size.
	Payload int
	// PayloadKind is what pads the body: PayloadX ('x's) or PayloadText
	// (chat-like English, different in every event).
	PayloadKind string
	Duration    time.Duration
	Warmup      time.Duration
	// ConnectRate bounds new connections (and subscribing connections) per second.
	ConnectRate float64
	// ConnectConcurrency bounds dials in flight.
	ConnectConcurrency int
	// MaxConns is a sanity cap on Conns (and Conns×Subs ≤ 10×MaxConns).
	MaxConns int
	// MaxInflight bounds unacknowledged JetStream publishes (Centrifugo:
	// events waiting behind the API request in flight).
	MaxInflight int
	// Drain is how long to wait after the last publish for stragglers,
	// once deliveries stop making progress.
	Drain time.Duration
	// Settle is the pause before each memory sample, so that the node's
	// work from the previous step is done.
	Settle time.Duration
	// MaxRuntime ends the whole run, whatever happens. Zero: the run's
	// planned length (ramps, warm-up, windows, drains) plus 10 minutes.
	MaxRuntime time.Duration

	Saturate      bool
	SatStartRate  float64
	SatFactor     float64
	SatStep       time.Duration
	SatMaxSteps   int
	SatMaxLossPct float64
	SatMaxP99     time.Duration

	Soak        bool
	SampleEvery time.Duration

	Tenant, Prefix string

	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// The servers the tool can measure.
const (
	ServerFraiseQL   = "fraiseql"
	ServerCentrifugo = "centrifugo"
)

// The transports the tool's clients speak.
const (
	TransportWS  = "ws"
	TransportSSE = "sse"
)

// Defaults returns the default Config (a 30 s run of 100 connections × 1
// subscription at 100 events/s against a spawned node).
func Defaults() Config {
	return Config{
		Server:             ServerFraiseQL,
		Transport:          TransportWS,
		Spawn:              false,
		NodeDefaults:       true,
		Conns:              100,
		Subs:               1,
		Rooms:              1,
		Rate:               100,
		Payload:            128,
		PayloadKind:        PayloadX,
		Duration:           30 * time.Second,
		Warmup:             5 * time.Second,
		ConnectRate:        1000,
		ConnectConcurrency: 64,
		MaxConns:           20_000,
		MaxInflight:        4096,
		Drain:              2 * time.Second,
		Settle:             2 * time.Second,
		SatStartRate:       10,
		SatFactor:          1.25,
		SatStep:            10 * time.Second,
		SatMaxSteps:        40,
		SatMaxLossPct:      0.1,
		SatMaxP99:          500 * time.Millisecond,
		SampleEvery:        10 * time.Second,
		Tenant:             "public",
		Prefix:             "fraiseql",
	}
}

// LoadNodeEnv is what a spawned node gets unless NodeDefaults is off: the
// per-user and per-IP limits are for production traffic from many users
// and IPs, and all load comes from one anonymous user on 127.0.0.1. Each
// can be overridden with -node-env.
func LoadNodeEnv(subs int) []string {
	return []string{
		"FRAISEQL_LIMITS_CONN_RATE_PER_IP=-1",
		"FRAISEQL_LIMITS_MAX_PENDING_CONNS_PER_IP=-1", // up to -connect-concurrency (1024) handshakes at once
		"FRAISEQL_LIMITS_MAX_CONNS_PER_USER=-1",
		"FRAISEQL_LIMITS_SUBSCRIBE_RATE=-1",
		"FRAISEQL_LIMITS_EVENT_RATE=-1",
		fmt.Sprintf("FRAISEQL_LIMITS_MAX_SUBSCRIPTIONS_PER_CONN=%d", max(subs, 5)),
		"FRAISEQL_LOG_LEVEL=warn",
	}
}

// Validate checks c and names the flag of the first bad value.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag, format string, a ...any) {
		errs = append(errs, fmt.Errorf("-%s: "+format, append([]any{flag}, a...)...))
	}
	if c.Spawn == (c.Target != "") {
		bad("target", "give either -target (a running node) or -spawn")
	}
	switch c.Server {
	case ServerFraiseQL:
		if c.CentrifugoBin != "" || c.API != "" || c.APIKey != "" {
			bad("server", "-centrifugo-bin, -api and -api-key are for -server centrifugo")
		}
	case ServerCentrifugo:
		if c.NATSURL != "" || c.DataDir != "" || c.NodeBin != "" || c.RepoDir != "" || len(c.NodeEnv) > 0 {
			bad("server", "-nats, -data-dir, -node-bin, -repo and -node-env are for the node, not -server centrifugo")
		}
		if c.Spawn && (c.API != "" || c.APIKey != "") {
			bad("api", "-api and -api-key are for a running Centrifugo (-target); -spawn makes its own")
		}
		if c.Spawn && c.CentrifugoBin == "" {
			bad("centrifugo-bin", "-server centrifugo with -spawn needs the Centrifugo binary to run")
		}
		if c.Target != "" && (c.API == "" || c.APIKey == "") {
			bad("api", "with -server centrifugo and -target, give -api http://127.0.0.1:PORT/api and -api-key")
		}
		if c.API != "" {
			if err := checkLoopbackURL(c.API, "http"); err != nil {
				bad("api", "%v", err)
			}
		}
		if c.Subs != 1 {
			bad("subs", "-server centrifugo takes 1 subscription per connection (it refuses a second one to the same channel)")
		}
	default:
		bad("server", "%q: want %s or %s", c.Server, ServerFraiseQL, ServerCentrifugo)
	}
	targetScheme := "ws"
	switch c.Transport {
	case TransportWS:
		if c.Gzip {
			bad("gzip", "-gzip asks for gzip SSE bodies; with -transport ws use -compress (permessage-deflate)")
		}
	case TransportSSE:
		targetScheme = "http"
		if c.Server == ServerCentrifugo {
			bad("transport", "-transport sse is GraphQL over SSE, which only the node speaks (-server fraiseql)")
		}
		if c.Compress {
			bad("compress", "-compress is WebSocket permessage-deflate; it has no meaning with -transport sse")
		}
		if c.Conns*c.Subs > c.MaxConns {
			bad("subs", "-transport sse opens one connection per subscription: -conns × -subs (%d) is above -max-conns %d", c.Conns*c.Subs, c.MaxConns)
		}
	default:
		bad("transport", "%q: want %s or %s", c.Transport, TransportWS, TransportSSE)
	}
	if c.Target != "" {
		if err := checkLoopbackURL(c.Target, targetScheme); err != nil {
			bad("target", "%v (the endpoint for -transport %s)", err, c.Transport)
		}
	}
	if c.NATSURL != "" {
		if err := checkLoopbackURL(c.NATSURL, "nats"); err != nil {
			bad("nats", "%v", err)
		}
	}
	if c.Target != "" && c.Server == ServerFraiseQL && c.NATSURL == "" && c.DataDir == "" {
		bad("nats", "with -target, give -nats or -data-dir (the node writes nats.url there)")
	}
	if c.Conns < 1 {
		bad("conns", "must be at least 1")
	}
	if c.Conns > c.MaxConns {
		bad("conns", "%d is above -max-conns %d", c.Conns, c.MaxConns)
	}
	if c.Subs < 1 || c.Subs > 1000 {
		bad("subs", "must be 1..1000")
	}
	if c.Conns*c.Subs > 10*c.MaxConns {
		bad("subs", "%d subscriptions in all is above 10 × -max-conns", c.Conns*c.Subs)
	}
	if c.Rooms < 1 || c.Rooms > c.Conns {
		bad("rooms", "must be 1..conns")
	}
	if c.Rate <= 0 || c.Rate > 1e6 {
		bad("rate", "must be in (0, 1e6]")
	}
	if c.Payload < 0 || c.Payload > 900_000 {
		bad("payload", "must be 0..900000 bytes (the node drops events over 1 MiB)")
	}
	if c.PayloadKind != PayloadX && c.PayloadKind != PayloadText {
		bad("payload-kind", "%q: want %s or %s", c.PayloadKind, PayloadX, PayloadText)
	}
	if c.Duration <= 0 || c.Duration > 24*time.Hour {
		bad("duration", "must be in (0, 24h]")
	}
	if c.Warmup < 0 {
		bad("warmup", "must not be negative")
	}
	if c.ConnectRate <= 0 {
		bad("connect-rate", "must be positive")
	}
	if c.ConnectConcurrency < 1 || c.ConnectConcurrency > 1024 {
		bad("connect-concurrency", "must be 1..1024")
	}
	if c.MaxInflight < 1 {
		bad("max-inflight", "must be at least 1")
	}
	if c.MaxRuntime < 0 {
		bad("max-runtime", "must not be negative")
	}
	if c.Saturate && c.Soak {
		bad("saturate", "-saturate and -soak are separate runs")
	}
	if c.Saturate {
		if c.SatFactor <= 1 {
			bad("sat-factor", "must be above 1")
		}
		if c.SatStartRate <= 0 {
			bad("sat-start", "must be positive")
		}
		if c.SatStep <= 0 {
			bad("sat-step", "must be positive")
		}
		if c.SatMaxSteps < 1 || c.SatMaxSteps > 200 {
			bad("sat-max-steps", "must be 1..200")
		}
	}
	if c.Soak && c.SampleEvery <= 0 {
		bad("sample-every", "must be positive")
	}
	for _, kv := range c.NodeEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			bad("node-env", "%q is not KEY=VAL", kv)
		}
	}
	if !validToken(c.Tenant) || !validToken(c.Prefix) {
		bad("tenant", "tenant and prefix must be [A-Za-z0-9_-]+")
	}
	return errors.Join(errs...)
}

// maxRuntime is MaxRuntime, or the planned length of the run plus 10
// minutes when it is zero.
func (c *Config) maxRuntime() time.Duration {
	if c.MaxRuntime > 0 {
		return c.MaxRuntime
	}
	ramp := time.Duration(2 * float64(c.Conns) / c.ConnectRate * float64(time.Second))
	work := c.Duration + 40*time.Second
	if c.Saturate {
		work = time.Duration(c.SatMaxSteps) * (c.SatStep*11/10 + 45*time.Second)
	}
	return 2*ramp + 3*c.Settle + c.Warmup + work + 10*time.Minute
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// checkLoopbackURL accepts only URLs whose host is a loopback IP literal
// (127.0.0.0/8 or ::1) or "localhost": this tool opens thousands of
// connections and must never be pointed at another machine.
func checkLoopbackURL(raw, scheme string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != scheme {
		return fmt.Errorf("%q: scheme must be %s", raw, scheme)
	}
	if u.Port() == "" {
		return fmt.Errorf("%q: give the port", raw)
	}
	if !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("%q: only loopback addresses (127.0.0.1) are allowed", raw)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
