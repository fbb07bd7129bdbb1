package redis

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/cluster"
)

// LegacySource declares where FraiseQL's legacy envelopes are accepted
// and what they may name. Only on such a source does a message's body
// choose its own tenant (and, on pub/sub, its topic); everywhere else the
// channel or key decides. The yaml keys live under "bridges.redis.legacy[i]".
type LegacySource struct {
	// Channels are plain pub/sub channels (SUBSCRIBE, not PSUBSCRIBE)
	// that carry envelopes only, e.g. "fraiseql:events". An envelope's
	// "channel" is its topic.
	Channels []string `yaml:"channels"`

	// Streams are stream keys, or glob patterns over keys, whose entries'
	// "data" may be an envelope. They select among the keys the bridge
	// reads (Config.Streams and Config.StreamPattern) and add none. The
	// key still decides the topic; an envelope's "channel" is ignored.
	Streams []string `yaml:"streams"`

	// Tenant is the tenant of envelopes without "tenant_id" and of the
	// source's plain (not enveloped) stream entries. Zero value means
	// Config.Tenant.
	Tenant string `yaml:"tenant"`

	// Tenants are the tenants an envelope's "tenant_id" may name besides
	// Tenant; an envelope naming another is rejected (tenant_not_allowed).
	// Zero value means none: the source is fixed to Tenant. ["*"] means
	// any valid tenant: whoever can write to the source can write into
	// every tenant.
	Tenants []string `yaml:"tenants"`

	// Topics are NATS-style patterns ("chat.*", "orders.>") that the topic
	// of every event from this source must match, else it is rejected
	// (topic_not_allowed). Zero value means any valid topic.
	Topics []string `yaml:"topics"`
}

// legacySource is a LegacySource with its defaults applied, as the event
// path uses it.
type legacySource struct {
	name string // its config key, for errors and logs
	bridges.SourceTrust
	streamPats []string
}

// legacyConfigKey names the config key of source i: the shorthand
// legacy_channels is index -1.
func legacyConfigKey(i int) string {
	if i < 0 {
		return "bridges.redis.legacy_channels"
	}
	return fmt.Sprintf("bridges.redis.legacy[%d]", i)
}

// validateLegacy checks LegacyChannels and Legacy; seen collects every
// legacy channel, which may be declared once only.
func (c Config) validateLegacy() error {
	seen := make(map[string]string)
	for i, ch := range c.LegacyChannels {
		if ch == "" {
			return fmt.Errorf("bridges.redis.legacy_channels[%d] is empty", i)
		}
		if prev, ok := seen[ch]; ok {
			return fmt.Errorf("bridges.redis.legacy_channels[%d] %q is already declared in %s", i, ch, prev)
		}
		seen[ch] = legacyConfigKey(-1)
	}
	for i, s := range c.Legacy {
		key := legacyConfigKey(i)
		if len(s.Channels) == 0 && len(s.Streams) == 0 {
			return fmt.Errorf("%s: declares no channels and no streams", key)
		}
		for j, ch := range s.Channels {
			if ch == "" {
				return fmt.Errorf("%s.channels[%d] is empty", key, j)
			}
			if prev, ok := seen[ch]; ok {
				return fmt.Errorf("%s.channels[%d] %q is already declared in %s", key, j, ch, prev)
			}
			seen[ch] = key
		}
		for j, k := range s.Streams {
			if k == "" {
				return fmt.Errorf("%s.streams[%d] is empty", key, j)
			}
			if _, err := path.Match(k, ""); err != nil {
				return fmt.Errorf("%s.streams[%d] %q: %v", key, j, k, err)
			}
			if !hasGlob(k) && !c.reads(k) {
				return fmt.Errorf("%s.streams[%d] %q is not read by the bridge: add it to bridges.redis.streams or make bridges.redis.stream_pattern match it", key, j, k)
			}
		}
		if s.Tenant != "" {
			if err := cluster.ValidateTenant(s.Tenant); err != nil {
				return fmt.Errorf("%s.tenant %q: %v", key, s.Tenant, err)
			}
		}
		for j, t := range s.Tenants {
			if t == "*" {
				if len(s.Tenants) != 1 {
					return fmt.Errorf("%s.tenants: \"*\" (any tenant) must be the only entry", key)
				}
				continue
			}
			if err := cluster.ValidateTenant(t); err != nil {
				return fmt.Errorf("%s.tenants[%d] %q: %v", key, j, t, err)
			}
		}
		for j, p := range s.Topics {
			if err := bridges.ValidateTopicPattern(p); err != nil {
				return fmt.Errorf("%s.topics[%d] %q: %v", key, j, p, err)
			}
		}
	}
	return nil
}

// reads reports whether the bridge reads stream key k (c not defaulted):
// it is in Streams or matches StreamPattern (default "<prefix>:events:*").
func (c Config) reads(k string) bool {
	if slices.Contains(c.Streams, k) {
		return true
	}
	d := c.WithDefaults()
	if !d.hasPattern() {
		return false
	}
	ok, _ := path.Match(d.StreamPattern, k)
	return ok
}

func hasGlob(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// resolveLegacy builds the event path's view of the legacy sources (c has
// its defaults applied): the source of each legacy channel, and the
// stream sources in declaration order.
func (c Config) resolveLegacy() (channels map[string]*legacySource, streams []*legacySource) {
	channels = make(map[string]*legacySource)
	if len(c.LegacyChannels) > 0 {
		s := &legacySource{name: legacyConfigKey(-1), SourceTrust: bridges.NewSourceTrust(c.Tenant, nil, nil)}
		for _, ch := range c.LegacyChannels {
			channels[ch] = s
		}
	}
	for i, ls := range c.Legacy {
		tenant := ls.Tenant
		if tenant == "" {
			tenant = c.Tenant
		}
		s := &legacySource{name: legacyConfigKey(i), SourceTrust: bridges.NewSourceTrust(tenant, ls.Tenants, ls.Topics), streamPats: ls.Streams}
		for _, ch := range ls.Channels {
			channels[ch] = s
		}
		if len(ls.Streams) > 0 {
			streams = append(streams, s)
		}
	}
	return channels, streams
}

// legacyChannelList is every legacy channel, sorted.
func (c Config) legacyChannelList() []string {
	out := slices.Clone(c.LegacyChannels)
	for _, s := range c.Legacy {
		out = append(out, s.Channels...)
	}
	slices.Sort(out)
	return out
}

// streamSource returns the legacy source that declares stream key k, the
// first in declaration order, or nil: the key is not legacy.
func streamSource(sources []*legacySource, k string) *legacySource {
	for _, s := range sources {
		for _, p := range s.streamPats {
			if ok, _ := path.Match(p, k); ok {
				return s
			}
		}
	}
	return nil
}
