package node

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// Config configures a Node. The zero value of each field means its default.
type Config struct {
	// Listen is the HTTP address of /graphql, /healthz and a bare /readyz.
	// Zero value means "127.0.0.1:8080".
	Listen string
	// OpsListen is the address of the operations listener: /metrics,
	// /readyz with its reasons, /healthz and /debug/pprof/ (OpsHandler).
	// Keep it on loopback or a private network. Zero value means none.
	OpsListen string
	// TrustedProxies are the load balancers whose word on a client's
	// address is taken (PROXY header, forwarding header); nobody else's
	// ever is. Zero value: none, every client is its socket's peer.
	TrustedProxies []netip.Prefix
	// ProxyProtocol is off, optional or required: whether connections from
	// TrustedProxies carry a PROXY protocol (v1 or v2) header. Zero value
	// means off. A header from any other peer closes the connection.
	ProxyProtocol string
	// ForwardedHeader is the request header a trusted proxy names the
	// client in: x-forwarded-for, forwarded (RFC 7239) or none. Zero value
	// means x-forwarded-for. Read only from TrustedProxies, right to left.
	ForwardedHeader string
	// Schema is the loaded SDL. Required.
	Schema *query.Schema
	// LoadSchema loads the schema again from its source, for the admin
	// API's POST /admin/reload-schema (Node.ReloadSchema). Nil: that
	// endpoint answers 501.
	LoadSchema func() (*query.Schema, error)
	// Limits are the node's limits (sizes, complexity, rates, caps); zero
	// fields take the defaults of DESIGN.md (limits.Config.WithDefaults).
	Limits limits.Config
	// PlanCache is the number of compiled plans kept. Zero value means 4096.
	PlanCache int
	// WS configures the WebSocket transport. Its InitTimeout and ReadLimit
	// come from Limits (init_timeout, max_message_bytes). A zero
	// MaxQueuedBytes means 4 MiB, or four events of Limits.MaxEventBytes
	// when that is more; it must hold at least one such event.
	WS ws.Options
	// Auth verifies connections' tokens. Nil (or mode none) means every
	// connection is anonymous, with tenant Tenant: development only.
	Auth *auth.Verifier
	// Tenant is the tenant of anonymous connections. Zero value means "public".
	Tenant string
	// ReplayBuffer is how many live events one resuming subscription may
	// hold back while it replays from its cursor; past it the connection is
	// closed as a slow consumer (the client resumes again). Zero value means 10,000.
	ReplayBuffer int
	// DrainDelay is how long Drain keeps serving and accepting connections
	// after /readyz turned 503, so that load balancers stop sending new
	// clients first. Zero value means none.
	DrainDelay time.Duration
	// DrainWindow is how long Drain takes to close the open connections,
	// spread out so that their clients do not all reconnect at once. Zero
	// value means all at once.
	DrainWindow time.Duration
	// MetricsTenants are the tenants whose open connections and
	// subscriptions /metrics reports one by one
	// (fraiseql_tenant_connections, fraiseql_tenant_subscriptions); every
	// other tenant is summed under "_other". At most MaxMetricsTenants, so
	// that the series stay bounded. Zero value means none: no per-tenant series.
	MetricsTenants []string
	// AdminToken turns the admin API on (docs/operations.md, *Admin API*):
	// /admin/ on the ops listener, for requests carrying "Authorization:
	// Bearer <AdminToken>". At least MinAdminTokenBytes. Zero value means
	// off: the routes do not exist.
	AdminToken string
	// RevocationTTL is how long the admin API's token revocations are kept
	// for every node (cluster.RevocationBucket): at least the lifetime of
	// the longest token. Zero value means 24h.
	RevocationTTL time.Duration
	// TracerProvider, when set, records spans for the live events whose
	// publisher sent a W3C traceparent header: ingest, route and
	// socket_write, continuing the publisher's trace (see trace.go).
	// Zero value means off.
	TracerProvider trace.TracerProvider
	// Logger receives the node's logs. Zero value means slog.Default().
	Logger *slog.Logger
}

// MaxMetricsTenants bounds Config.MetricsTenants: each listed tenant adds
// two series to every scrape of every node.
const MaxMetricsTenants = 100

func (c Config) withDefaults() Config {
	if c.RevocationTTL == 0 {
		c.RevocationTTL = DefaultRevocationTTL
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.PlanCache == 0 {
		c.PlanCache = 4096
	}
	if c.Tenant == "" {
		c.Tenant = "public"
	}
	if c.ProxyProtocol == "" {
		c.ProxyProtocol = ProxyProtocolOff
	}
	if c.ForwardedHeader == "" {
		c.ForwardedHeader = ForwardedXFF
	}
	c.Limits = c.Limits.WithDefaults()
	c.WS.InitTimeout = time.Duration(c.Limits.InitTimeout)
	c.WS.ReadLimit = int64(c.Limits.MaxMessageBytes)
	if c.WS.MaxQueuedBytes == 0 {
		c.WS.MaxQueuedBytes = max(ws.DefaultMaxQueuedBytes, 4*int64(c.Limits.MaxEventBytes))
	}
	if c.ReplayBuffer == 0 {
		c.ReplayBuffer = 10_000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WS.Logger == nil {
		c.WS.Logger = c.Logger
	}
	return c
}

// Validate reports the first invalid field, named as in the config file.
func (c Config) Validate() error {
	switch {
	case c.Schema == nil:
		return fmt.Errorf("schema: no schema loaded")
	case c.PlanCache < 0:
		return fmt.Errorf("plan_cache (%d) must not be negative", c.PlanCache)
	case c.DrainDelay < 0:
		return fmt.Errorf("shutdown.drain_delay (%v) must not be negative", c.DrainDelay)
	case c.DrainWindow < 0:
		return fmt.Errorf("shutdown.drain_window (%v) must not be negative", c.DrainWindow)
	case c.ReplayBuffer < 0:
		return fmt.Errorf("replay_buffer (%d) must not be negative", c.ReplayBuffer)
	case c.RevocationTTL != 0 && c.RevocationTTL < time.Second:
		return fmt.Errorf("admin.revocation_ttl: %v; at least 1s", c.RevocationTTL)
	case c.AdminToken != "" && len(c.AdminToken) < MinAdminTokenBytes:
		return fmt.Errorf("admin.token_file: the admin token is %d bytes; at least %d", len(c.AdminToken), MinAdminTokenBytes)
	case len(c.MetricsTenants) > MaxMetricsTenants:
		return fmt.Errorf("metrics.tenants lists %d tenants; at most %d (each adds series to every scrape)", len(c.MetricsTenants), MaxMetricsTenants)
	}
	seen := make(map[string]bool, len(c.MetricsTenants))
	for _, t := range c.MetricsTenants {
		if err := cluster.ValidateTenant(t); err != nil {
			return fmt.Errorf("metrics.tenants: %q: %w", t, err)
		}
		if seen[t] || t == tenantOther {
			return fmt.Errorf("metrics.tenants: %q is listed twice or is the reserved %q", t, tenantOther)
		}
		seen[t] = true
	}
	cookie := c.Auth != nil && c.Auth.Mode() == auth.ModeJWT && c.Auth.Cookie() != ""
	if err := CheckOriginPatterns(c.WS.OriginPatterns, cookie); err != nil {
		return err
	}
	if err := ValidateProxies(c); err != nil {
		return err
	}
	if err := c.WS.Validate(); err != nil {
		return err
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	// A queue must hold the largest event, or every such event would close
	// its subscribers' connections.
	if ev := int64(c.Limits.WithDefaults().MaxEventBytes); c.WS.MaxQueuedBytes > 0 && c.WS.MaxQueuedBytes < ev {
		return fmt.Errorf("ws.max_queued_bytes (%d) must be at least limits.max_event_bytes (%d)", c.WS.MaxQueuedBytes, ev)
	}
	return nil
}

// shutdownGrace bounds how long Shutdown waits for the HTTP server when the
// caller's context has no deadline.
const shutdownGrace = 10 * time.Second

// queryOptions are the compile-time limits of Limits.
func (c Config) queryOptions() query.Options {
	return query.Options{
		MaxQueryBytes:  c.Limits.MaxQueryBytes,
		MaxDepth:       c.Limits.MaxDepth,
		MaxComplexity:  c.Limits.MaxComplexity,
		MaxFilterDepth: c.Limits.MaxFilterDepth,

		MaxFilterOperands: c.Limits.MaxFilterOperands,
	}
}
