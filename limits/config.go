package limits

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults (DESIGN.md, "Defaults worth knowing"). Config.WithDefaults
// applies them to zero fields.
const (
	DefaultMaxQueryBytes           = 64 << 10  // 64 KiB
	DefaultMaxMessageBytes         = 256 << 10 // 256 KiB
	DefaultMaxEventBytes           = 1 << 20   // 1 MiB
	DefaultMaxFilterDepth          = 50
	DefaultMaxFilterOperands       = 100
	DefaultMaxComplexity           = 1000
	DefaultMaxDepth                = 12
	DefaultSubscribeRate           = Rate(50.0 / 60) // 50 per minute
	DefaultSubscribeBurst          = 50
	DefaultEventRate               = Rate(100) // per second
	DefaultEventBurst              = 100
	DefaultMaxSubscriptionsPerConn = 5
	DefaultMaxConns                = 100_000
	DefaultMaxConnsPerUser         = 100
	DefaultConnRatePerIP           = Rate(20) // per second
	DefaultConnBurstPerIP          = 40
	DefaultMaxPendingConns         = 4096
	DefaultMaxPendingConnsPerIP    = 64
	DefaultUpgradeTimeout          = Duration(5 * time.Second)
	DefaultInitTimeout             = Duration(3 * time.Second)
)

// Config holds every limit a node enforces. The node's YAML configuration
// embeds it under `limits:`. Each field documents its default, what zero and
// negative values mean, where it is enforced and what the client sees.
//
// Zero always means "the default" (except MaxSubscriptionDuration, whose
// default is off). For rate and count limits a negative value (write -1)
// means unlimited. Size, depth and complexity limits cannot be switched off:
// they protect the node itself, and Validate rejects negative values.
//
// Call WithDefaults, then Validate, once at startup; then For(tenant) per
// tenant. Config is a plain value, safe to copy.
type Config struct {
	// MaxQueryBytes bounds a subscription document, in bytes. Default
	// 64 KiB; must not be negative. Enforced by the session before parsing;
	// the client gets an error with QUERY_TOO_LARGE. It may not exceed
	// MaxMessageBytes (the document arrives inside one message).
	MaxQueryBytes int `yaml:"max_query_bytes"`
	// MaxMessageBytes bounds one WebSocket message from a client, in bytes.
	// Default 256 KiB; must not be negative. Enforced by ws as the read
	// limit; the connection is closed with 1009 (message too big).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxEventBytes bounds one event payload, in bytes. Default 1 MiB; must
	// not be negative. Enforced at ingest (node consumer and bridges): the
	// event is dropped and counted, never delivered; subscribers see nothing.
	MaxEventBytes int `yaml:"max_event_bytes"`
	// MaxFilterDepth bounds the nesting of a where filter (and/or/not).
	// Default 50; must not be negative. Enforced by query when compiling the
	// filter; the client gets FILTER_TOO_DEEP.
	MaxFilterDepth int `yaml:"max_filter_depth"`
	// MaxFilterOperands bounds the operands of a where filter: every
	// operator with a non-null value counts 1, except in and nin, which
	// count one per list item (an empty list counts 1), wherever they nest
	// under and, or, not and field paths. Default 100; must not be
	// negative. Enforced by query on the parsed document and variables,
	// before full validation; the client gets FILTER_TOO_COMPLEX. Not per
	// tenant: a node compiles (and shares) plans with one set of limits,
	// and filter work is paid for by every tenant on the routing path.
	MaxFilterOperands int `yaml:"max_filter_operands"`
	// MaxComplexity bounds a document's complexity score. Default 1000;
	// must not be negative. Enforced by query on the parsed document before
	// full validation; the client gets QUERY_TOO_COMPLEX.
	MaxComplexity int `yaml:"max_complexity"`
	// MaxDepth bounds the nesting of selection sets (fragments expanded).
	// Default 12; must not be negative. Enforced by query before full
	// validation (validation itself is a DoS surface); the client gets
	// QUERY_TOO_COMPLEX.
	MaxDepth int `yaml:"max_depth"`

	// SubscribeRate is the rate of new subscriptions per user (a Keyed
	// limiter keyed by tenant and user). Default 50 per minute ("50/m");
	// negative: unlimited. Enforced by the node before registering a
	// subscription; the client gets RATE_LIMITED with extensions.retryAfter.
	SubscribeRate Rate `yaml:"subscribe_rate"`
	// SubscribeBurst is how many subscriptions a user may start at once
	// before SubscribeRate applies. Default 50; must not be negative.
	SubscribeBurst int `yaml:"subscribe_burst"`
	// EventRate is the rate of events delivered to one subscription (a
	// Bucket per subscription). Default 100 per second; negative:
	// unlimited. Enforced by the node on fan-out: excess events are dropped
	// for that subscription only, and the next delivered `next` message
	// carries extensions.dropped (the count dropped since the last one).
	EventRate Rate `yaml:"event_rate"`
	// EventBurst is how many events a subscription may receive at once
	// before EventRate applies. Default 100; must not be negative.
	EventBurst int `yaml:"event_burst"`

	// MaxSubscriptionsPerConn caps active subscriptions on one connection
	// (a Cap per connection). Default 5; negative: unlimited. Enforced by
	// the node on subscribe; the client gets SUBSCRIPTION_LIMIT and the
	// connection stays open.
	MaxSubscriptionsPerConn int `yaml:"max_subscriptions_per_conn"`
	// MaxConns caps open WebSocket connections on the node (a Cap).
	// Default 100,000; negative: unlimited. Enforced before the upgrade:
	// HTTP 503 with Retry-After.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerUser caps one user's open connections on the node (a
	// KeyedCap keyed by tenant and user). Default 100; negative: unlimited.
	// Enforced by the node as soon as the user is known; before the
	// upgrade the client gets HTTP 429 with Retry-After.
	MaxConnsPerUser int `yaml:"max_conns_per_user"`
	// ConnRatePerIP is the rate of new connections per client IP (a Keyed
	// limiter). Default 20 per second; negative: unlimited. Enforced before
	// the upgrade: HTTP 429 with Retry-After.
	ConnRatePerIP Rate `yaml:"conn_rate_per_ip"`
	// ConnBurstPerIP is how many connections an IP may open at once before
	// ConnRatePerIP applies. Default 40; must not be negative.
	ConnBurstPerIP int `yaml:"conn_burst_per_ip"`
	// MaxPendingConns caps the node's TCP connections that are not (yet)
	// WebSockets: from accept until the upgrade, and plain HTTP connections
	// (/healthz, /metrics) while they stay open. Default 4,096; negative:
	// unlimited. Enforced at accept, before anything is read: a connection
	// over the cap is closed at once. It keeps idle sockets from taking
	// every file descriptor before any per-request limit can run.
	MaxPendingConns int `yaml:"max_pending_conns"`
	// MaxPendingConnsPerIP caps the pending connections of one client
	// address (an IPv4 address or an IPv6 /64). Default 64; negative:
	// unlimited. Enforced at accept, or behind a trusted proxy as soon as
	// its PROXY header names the client; over it the connection is closed.
	MaxPendingConnsPerIP int `yaml:"max_pending_conns_per_ip"`
	// UpgradeTimeout is how long a pending connection may stay pending:
	// from accept until the WebSocket upgrade (PROXY header and HTTP request
	// included), and, for a plain HTTP connection, from each request or
	// idle period. Default 5s; must not be negative. Past it the node closes
	// the connection.
	UpgradeTimeout Duration `yaml:"upgrade_timeout"`
	// MaxKeys bounds the keys each Keyed limiter tracks (users, IPs), and so
	// its memory. Default 100,000 (DefaultMaxKeys); must not be negative.
	MaxKeys int `yaml:"max_keys"`

	// InitTimeout is how long a new connection has to send connection_init.
	// Default 3s; must not be negative. Enforced by ws; the connection is
	// closed with 4408.
	InitTimeout Duration `yaml:"init_timeout"`
	// MaxSubscriptionDuration is the longest a subscription may live. Zero
	// (the default) means no limit; must not be negative. Enforced by the
	// node; the client gets an error with SUBSCRIPTION_EXPIRED and may
	// resubscribe with its cursor.
	MaxSubscriptionDuration Duration `yaml:"max_subscription_duration"`

	// Tenants overrides some limits per tenant; see For.
	Tenants map[string]TenantLimits `yaml:"tenants"`
}

// TenantLimits overrides Config's limits for one tenant. A zero field
// inherits the Config's value; a negative rate or count means unlimited.
type TenantLimits struct {
	SubscribeRate           Rate `yaml:"subscribe_rate"`
	SubscribeBurst          int  `yaml:"subscribe_burst"`
	EventRate               Rate `yaml:"event_rate"`
	EventBurst              int  `yaml:"event_burst"`
	MaxSubscriptionsPerConn int  `yaml:"max_subscriptions_per_conn"`
	MaxConnsPerUser         int  `yaml:"max_conns_per_user"`
}

// DefaultConfig returns the Config with every default applied.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with each zero field set to its default. The
// Tenants map is shared, not copied.
func (c Config) WithDefaults() Config {
	def(&c.MaxQueryBytes, DefaultMaxQueryBytes)
	def(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	def(&c.MaxEventBytes, DefaultMaxEventBytes)
	def(&c.MaxFilterDepth, DefaultMaxFilterDepth)
	def(&c.MaxFilterOperands, DefaultMaxFilterOperands)
	def(&c.MaxComplexity, DefaultMaxComplexity)
	def(&c.MaxDepth, DefaultMaxDepth)
	def(&c.SubscribeRate, DefaultSubscribeRate)
	def(&c.SubscribeBurst, DefaultSubscribeBurst)
	def(&c.EventRate, DefaultEventRate)
	def(&c.EventBurst, DefaultEventBurst)
	def(&c.MaxSubscriptionsPerConn, DefaultMaxSubscriptionsPerConn)
	def(&c.MaxConns, DefaultMaxConns)
	def(&c.MaxConnsPerUser, DefaultMaxConnsPerUser)
	def(&c.ConnRatePerIP, DefaultConnRatePerIP)
	def(&c.ConnBurstPerIP, DefaultConnBurstPerIP)
	def(&c.MaxPendingConns, DefaultMaxPendingConns)
	def(&c.MaxPendingConnsPerIP, DefaultMaxPendingConnsPerIP)
	def(&c.UpgradeTimeout, DefaultUpgradeTimeout)
	def(&c.MaxKeys, DefaultMaxKeys)
	def(&c.InitTimeout, DefaultInitTimeout)
	return c
}

func def[T comparable](p *T, d T) {
	var zero T
	if *p == zero {
		*p = d
	}
}

// Validate reports every invalid field, each named by its YAML key under
// limits (e.g. "limits.subscribe_burst"). Zero fields are valid (they mean
// the default), so Validate may run before or after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("limits.%s: "+format, append([]any{key}, args...)...))
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"max_query_bytes", c.MaxQueryBytes},
		{"max_message_bytes", c.MaxMessageBytes},
		{"max_event_bytes", c.MaxEventBytes},
		{"max_filter_depth", c.MaxFilterDepth},
		{"max_filter_operands", c.MaxFilterOperands},
		{"max_complexity", c.MaxComplexity},
		{"max_depth", c.MaxDepth},
		{"subscribe_burst", c.SubscribeBurst},
		{"event_burst", c.EventBurst},
		{"conn_burst_per_ip", c.ConnBurstPerIP},
		{"max_keys", c.MaxKeys},
	} {
		if f.v < 0 {
			bad(f.key, "must not be negative (got %d)", f.v)
		}
	}
	for _, f := range []struct {
		key string
		v   Rate
	}{
		{"subscribe_rate", c.SubscribeRate},
		{"event_rate", c.EventRate},
		{"conn_rate_per_ip", c.ConnRatePerIP},
	} {
		if err := f.v.check(); err != nil {
			bad(f.key, "%v", err)
		}
	}
	for _, f := range []struct {
		key string
		v   Duration
	}{
		{"init_timeout", c.InitTimeout},
		{"upgrade_timeout", c.UpgradeTimeout},
		{"max_subscription_duration", c.MaxSubscriptionDuration},
	} {
		if f.v < 0 {
			bad(f.key, "must not be negative (got %s)", f.v)
		}
	}
	if q, m := eff(c.MaxQueryBytes, DefaultMaxQueryBytes), eff(c.MaxMessageBytes, DefaultMaxMessageBytes); q > 0 && m > 0 && q > m {
		errs = append(errs, fmt.Errorf("limits.max_query_bytes (%d) cannot be higher than limits.max_message_bytes (%d)", q, m))
	}
	names := make([]string, 0, len(c.Tenants))
	for name := range c.Tenants {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t := c.Tenants[name]
		key := func(field string) string { return "tenants." + strconv.Quote(name) + "." + field }
		if err := t.SubscribeRate.check(); err != nil {
			bad(key("subscribe_rate"), "%v", err)
		}
		if err := t.EventRate.check(); err != nil {
			bad(key("event_rate"), "%v", err)
		}
		if t.SubscribeBurst < 0 {
			bad(key("subscribe_burst"), "must not be negative (got %d)", t.SubscribeBurst)
		}
		if t.EventBurst < 0 {
			bad(key("event_burst"), "must not be negative (got %d)", t.EventBurst)
		}
	}
	return errors.Join(errs...)
}

// For returns the limits for one tenant: c with the tenant's non-zero
// overrides applied, and defaults filled. A tenant without overrides gets c.
func (c Config) For(tenant string) Config {
	if t, ok := c.Tenants[tenant]; ok {
		over(&c.SubscribeRate, t.SubscribeRate)
		over(&c.SubscribeBurst, t.SubscribeBurst)
		over(&c.EventRate, t.EventRate)
		over(&c.EventBurst, t.EventBurst)
		over(&c.MaxSubscriptionsPerConn, t.MaxSubscriptionsPerConn)
		over(&c.MaxConnsPerUser, t.MaxConnsPerUser)
	}
	return c.WithDefaults()
}

func over[T comparable](p *T, v T) {
	var zero T
	if v != zero {
		*p = v
	}
}

// eff returns v, or d if v is zero.
func eff(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// SubscribeLimit returns the rate (tokens per second, Inf if unlimited) and
// burst of the per-user subscribe limiter, for a Keyed or its RateFor.
func (c Config) SubscribeLimit() (rate float64, burst int) {
	return rateOr(c.SubscribeRate, DefaultSubscribeRate), eff(c.SubscribeBurst, DefaultSubscribeBurst)
}

// EventLimit returns the rate and burst of each subscription's event Bucket.
func (c Config) EventLimit() (rate float64, burst int) {
	return rateOr(c.EventRate, DefaultEventRate), eff(c.EventBurst, DefaultEventBurst)
}

// ConnLimitPerIP returns the rate and burst of the per-IP connection limiter.
func (c Config) ConnLimitPerIP() (rate float64, burst int) {
	return rateOr(c.ConnRatePerIP, DefaultConnRatePerIP), eff(c.ConnBurstPerIP, DefaultConnBurstPerIP)
}

func rateOr(r, d Rate) float64 {
	if r == 0 {
		r = d
	}
	return r.PerSecond()
}

// CheckQueryBytes returns a QUERY_TOO_LARGE *Error if a document of n bytes
// exceeds MaxQueryBytes, else nil.
func (c Config) CheckQueryBytes(n int) error {
	if limit := eff(c.MaxQueryBytes, DefaultMaxQueryBytes); n > limit {
		return QueryTooLarge(n, limit)
	}
	return nil
}

// CheckComplexity returns a QUERY_TOO_COMPLEX *Error if complexity n exceeds
// MaxComplexity, else nil.
func (c Config) CheckComplexity(n int) error {
	if limit := eff(c.MaxComplexity, DefaultMaxComplexity); n > limit {
		return QueryTooComplex(n, limit)
	}
	return nil
}

// CheckDepth returns a QUERY_TOO_COMPLEX *Error if selection depth n exceeds
// MaxDepth, else nil.
func (c Config) CheckDepth(n int) error {
	if limit := eff(c.MaxDepth, DefaultMaxDepth); n > limit {
		return QueryTooDeep(n, limit)
	}
	return nil
}

// CheckFilterDepth returns a FILTER_TOO_DEEP *Error if filter depth n
// exceeds MaxFilterDepth, else nil.
func (c Config) CheckFilterDepth(n int) error {
	if limit := eff(c.MaxFilterDepth, DefaultMaxFilterDepth); n > limit {
		return FilterTooDeep(n, limit)
	}
	return nil
}

// CheckFilterOperands returns a FILTER_TOO_COMPLEX *Error if a where filter
// of n operands exceeds MaxFilterOperands, else nil.
func (c Config) CheckFilterOperands(n int) error {
	if limit := eff(c.MaxFilterOperands, DefaultMaxFilterOperands); n > limit {
		return FilterTooComplex(n, limit)
	}
	return nil
}

// Rate is a configured rate in events per second. Zero means "the default"
// and a negative value means unlimited.
//
// As text (YAML, flags, env) it is "N/unit" or "N": "50/m" or "50/min" is 50
// per minute, "100/s" or "100" is 100 per second, "5/10s" is 5 every ten
// seconds (unit: s, sec, second, m, min, minute, h, hour, or any Go
// duration), and "unlimited", "inf" or "-1" is unlimited.
type Rate float64

// PerSecond returns r in tokens per second, Inf if r is negative (unlimited).
func (r Rate) PerSecond() float64 {
	if r < 0 {
		return Inf
	}
	return float64(r)
}

func (r Rate) check() error {
	f := float64(r)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("must be a finite rate, or negative for unlimited (got %v)", f)
	}
	return nil
}

// String returns r in the text form UnmarshalText accepts, in the largest
// unit of s, m and h in which it is a whole number.
func (r Rate) String() string {
	if r < 0 {
		return "unlimited"
	}
	f := float64(r)
	for _, u := range []struct {
		name string
		secs float64
	}{{"s", 1}, {"m", 60}, {"h", 3600}} {
		if n := f * u.secs; math.Abs(n-math.Round(n)) < 1e-9*max(1, n) {
			return strconv.FormatFloat(math.Round(n), 'f', -1, 64) + "/" + u.name
		}
	}
	return strconv.FormatFloat(f, 'g', -1, 64) + "/s"
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (and so YAML decoding).
func (r *Rate) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	switch strings.ToLower(s) {
	case "":
		*r = 0
		return nil
	case "unlimited", "inf", "-1":
		*r = -1
		return nil
	}
	num, unit, hasUnit := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return fmt.Errorf("invalid rate %q: want N/unit such as 50/m or 100/s", s)
	}
	if n < 0 {
		*r = -1
		return nil
	}
	per := time.Second
	if hasUnit {
		switch u := strings.ToLower(strings.TrimSpace(unit)); u {
		case "s", "sec", "second":
			per = time.Second
		case "m", "min", "minute":
			per = time.Minute
		case "h", "hour":
			per = time.Hour
		default:
			d, err := time.ParseDuration(u)
			if err != nil || d <= 0 {
				return fmt.Errorf("invalid rate %q: unknown unit %q", s, unit)
			}
			per = d
		}
	}
	*r = Rate(n / per.Seconds())
	return nil
}

// Duration is a time.Duration that reads and writes as text such as "3s",
// "1m30s" or "0", so that YAML and env configuration can spell it.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String returns d as time.Duration formats it.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (and so YAML decoding).
// It accepts what time.ParseDuration accepts; an empty string is zero.
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a value such as 3s or 1m", s)
	}
	*d = Duration(v)
	return nil
}
