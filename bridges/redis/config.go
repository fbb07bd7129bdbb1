package redis

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fraiseql/subscriptions/cluster"
)

// Defaults of the Config fields whose zero value is not "off".
const (
	DefaultURL          = "redis://127.0.0.1:6379/0"
	DefaultPrefix       = "fraiseql"
	DefaultTenant       = "public"
	DefaultGroup        = "fraiseql-bridge"
	DefaultClaimMinIdle = 30 * time.Second
	DefaultBlockTimeout = 2 * time.Second
	DefaultBatchSize    = 100
	DefaultScanInterval = 10 * time.Second
)

// Config configures a Bridge. Every field's zero value is valid and
// documented; the yaml keys live under "bridges.redis".
type Config struct {
	// URL is the Redis server ("redis://[:password@]host:port/db" or
	// "rediss://…" for TLS). Zero value means "redis://127.0.0.1:6379/0".
	// Every node of a cluster must spell it alike: it is part of the lease
	// names.
	URL string `yaml:"url"`

	// Prefix is the first part of pub/sub channels
	// ("<prefix>:<tenant>:<topic>") and of stream keys
	// ("<prefix>:events:<channel>"). Zero value means "fraiseql".
	Prefix string `yaml:"prefix"`

	// DisablePubSub turns the pub/sub source off.
	DisablePubSub bool `yaml:"disable_pubsub"`

	// Patterns are the PSUBSCRIBE patterns. Zero value means
	// ["<prefix>:*"].
	Patterns []string `yaml:"patterns"`

	// LegacyChannels are plain channels (SUBSCRIBE) on which FraiseQL
	// publishes envelopes, e.g. "fraiseql:events": shorthand for one
	// Legacy source with these channels and no other settings, so their
	// envelopes may name only Tenant. Zero value means none.
	LegacyChannels []string `yaml:"legacy_channels"`

	// Legacy declares the sources that carry FraiseQL envelopes, each
	// with the tenants and topics its envelopes may name. Only there does
	// a body choose its tenant (and, on pub/sub, its topic). Zero value
	// means none besides LegacyChannels.
	Legacy []LegacySource `yaml:"legacy"`

	// Tenant is the tenant of stream entries and the default tenant of
	// legacy sources. Zero value means "public".
	Tenant string `yaml:"tenant"`

	// DisableStreams turns the Streams source off.
	DisableStreams bool `yaml:"disable_streams"`

	// Streams are stream keys to consume, in addition to StreamPattern.
	// Zero value means none.
	Streams []string `yaml:"streams"`

	// StreamPattern is a SCAN MATCH pattern for stream keys, re-scanned
	// every ScanInterval; keys ending in ":dead" (dead letters) are never
	// consumed. Zero value means "<prefix>:events:*"; "-" means no pattern
	// (only Streams).
	StreamPattern string `yaml:"stream_pattern"`

	// ScanInterval is how often StreamPattern is re-scanned for new keys.
	// Zero value means 10s.
	ScanInterval time.Duration `yaml:"scan_interval"`

	// Group is the consumer group, created at id 0 (so entries written
	// before the bridge first ran are forwarded). Zero value means
	// "fraiseql-bridge".
	Group string `yaml:"group"`

	// Consumer is this node's consumer name in Group; it must differ
	// between nodes. Zero value means "<hostname>-<pid>".
	Consumer string `yaml:"consumer"`

	// ClaimMinIdle is how long an entry must have been pending with
	// another consumer before this one reclaims it (XAUTOCLAIM). Zero
	// value means 30s.
	ClaimMinIdle time.Duration `yaml:"claim_min_idle"`

	// BlockTimeout bounds one XREADGROUP BLOCK. Zero value means 2s.
	BlockTimeout time.Duration `yaml:"block_timeout"`

	// BatchSize is the COUNT of one XREADGROUP. Zero value means 100.
	BatchSize int `yaml:"batch_size"`

	// LeaseTTL is the leader lease's ttl: how long a dead leader's source
	// goes unread. Zero value means bridges.DefaultLeaseTTL (10s).
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// WithDefaults returns c with every zero field replaced by its default.
func (c Config) WithDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if len(c.Patterns) == 0 {
		c.Patterns = []string{c.Prefix + ":*"}
	}
	if c.Tenant == "" {
		c.Tenant = DefaultTenant
	}
	if c.StreamPattern == "" {
		c.StreamPattern = c.Prefix + ":events:*"
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = DefaultScanInterval
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Consumer == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "node"
		}
		c.Consumer = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.ClaimMinIdle == 0 {
		c.ClaimMinIdle = DefaultClaimMinIdle
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	return c
}

// Validate reports the first invalid field, named by its config key.
func (c Config) Validate() error {
	if c.URL != "" {
		if _, err := goredis.ParseURL(c.URL); err != nil {
			return fmt.Errorf("bridges.redis.url: %v", redactErr(err, c.URL))
		}
	}
	if c.Prefix != "" && (strings.ContainsAny(c.Prefix, ":*?[] \t\r\n") || c.Prefix != strings.TrimSpace(c.Prefix)) {
		return fmt.Errorf("bridges.redis.prefix %q must not hold ':', glob characters or whitespace", c.Prefix)
	}
	if c.Tenant != "" {
		if err := cluster.ValidateTenant(c.Tenant); err != nil {
			return fmt.Errorf("bridges.redis.tenant %q: %v", c.Tenant, err)
		}
	}
	for i, p := range c.Patterns {
		if p == "" {
			return fmt.Errorf("bridges.redis.patterns[%d] is empty", i)
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("bridges.redis.patterns[%d] %q: %v", i, p, err)
		}
	}
	for i, k := range c.Streams {
		if k == "" {
			return fmt.Errorf("bridges.redis.streams[%d] is empty", i)
		}
		if strings.HasSuffix(k, deadSuffix) {
			return fmt.Errorf("bridges.redis.streams[%d] %q: keys ending in %q are dead-letter streams", i, k, deadSuffix)
		}
	}
	if err := c.validateLegacy(); err != nil {
		return err
	}
	switch {
	case c.DisablePubSub && c.DisableStreams:
		return fmt.Errorf("bridges.redis: disable_pubsub and disable_streams are both set; remove the bridges.redis section instead")
	case c.ScanInterval < 0:
		return fmt.Errorf("bridges.redis.scan_interval (%v) must not be negative", c.ScanInterval)
	case c.ClaimMinIdle < 0:
		return fmt.Errorf("bridges.redis.claim_min_idle (%v) must not be negative", c.ClaimMinIdle)
	case c.BlockTimeout < 0:
		return fmt.Errorf("bridges.redis.block_timeout (%v) must not be negative", c.BlockTimeout)
	case c.BlockTimeout > 0 && c.BlockTimeout < time.Millisecond:
		return fmt.Errorf("bridges.redis.block_timeout (%v) must be at least 1ms", c.BlockTimeout)
	case c.BatchSize < 0:
		return fmt.Errorf("bridges.redis.batch_size (%d) must not be negative", c.BatchSize)
	case c.BatchSize > 10_000:
		return fmt.Errorf("bridges.redis.batch_size (%d) must be at most 10000", c.BatchSize)
	case c.LeaseTTL < 0:
		return fmt.Errorf("bridges.redis.lease_ttl (%v) must not be negative", c.LeaseTTL)
	case c.LeaseTTL > 0 && c.LeaseTTL < 300*time.Millisecond:
		return fmt.Errorf("bridges.redis.lease_ttl (%v) must be at least 300ms", c.LeaseTTL)
	}
	return nil
}

// deadSuffix ends a dead-letter stream's key.
const deadSuffix = ":dead"

// hasPattern reports whether StreamPattern is in use (after WithDefaults).
func (c Config) hasPattern() bool { return c.StreamPattern != "-" }

// leaseNames returns the lease names of the two sources. The hash covers
// the Redis address (without credentials) and what the source reads, so
// that nodes configured alike compete for one lease and differently
// configured bridges do not exclude each other.
func (c Config) leaseNames() (pubsub, streams string) {
	addr := redactURL(c.URL)
	ps := slices.Clone(c.Patterns)
	slices.Sort(ps)
	lc := c.legacyChannelList()
	pubsub = "redis-pubsub-" + shortHash(addr, "p", strings.Join(ps, "\x00"), "l", strings.Join(lc, "\x00"), c.Prefix, c.Tenant)
	ks := slices.Clone(c.Streams)
	slices.Sort(ks)
	streams = "redis-streams-" + shortHash(addr, "s", strings.Join(ks, "\x00"), "m", c.StreamPattern, c.Group, c.Prefix, c.Tenant)
	return pubsub, streams
}

func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// redactURL drops the user info of a Redis URL, for logs and lease names.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable url)"
	}
	u.User = nil
	return u.String()
}

// redactErr describes a URL parse error without echoing the URL, which
// may hold a password.
func redactErr(err error, rawURL string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}
