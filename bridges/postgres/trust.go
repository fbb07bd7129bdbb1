package postgres

import (
	"fmt"

	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/cluster"
)

// LegacySource declares NOTIFY channels that carry FraiseQL's legacy
// envelopes, and what those envelopes may name. An envelope names its own
// tenant and topic, and NOTIFY needs no privilege: any role that can
// connect to the database can send one. So each channel is bound to a
// tenant and may reach only the tenants and topics listed here. The yaml
// keys live under "bridges.postgres.legacy[i]".
type LegacySource struct {
	// Channels are the LISTEN channels, e.g. "fraiseql_orders". An
	// envelope's "channel" is its topic (empty: the channel's name minus
	// "fraiseql_").
	Channels []string `yaml:"channels"`

	// Tenant is the tenant of envelopes without "tenant_id" (or with
	// null). Zero value means Config.Tenant.
	Tenant string `yaml:"tenant"`

	// Tenants are the tenants an envelope's "tenant_id" may name besides
	// Tenant; an envelope naming another is refused (tenant_not_allowed).
	// Zero value means none: the channels are fixed to Tenant. ["*"]
	// means any valid tenant: any role that can connect to the database
	// can then write into every tenant.
	Tenants []string `yaml:"tenants"`

	// Topics are NATS-style patterns ("chat.*", "orders.>") that the topic
	// of every envelope must match, else it is refused (topic_not_allowed).
	// Zero value means any valid topic.
	Topics []string `yaml:"topics"`
}

// legacySource is a LegacySource (or the notify_channels shorthand) with
// its defaults applied, as the event path uses it.
type legacySource struct {
	name string // its config key, for errors and logs
	bridges.SourceTrust
}

// legacyConfigKey names the config key of source i: the shorthand
// notify_channels is index -1.
func legacyConfigKey(i int) string {
	if i < 0 {
		return "bridges.postgres.notify_channels"
	}
	return fmt.Sprintf("bridges.postgres.legacy[%d]", i)
}

// validateLegacy checks NotifyChannels and Legacy (c has its defaults
// applied), reporting each problem through bad with its key relative to
// "bridges.postgres.". A channel may be declared once only.
func (c Config) validateLegacy(bad func(key, format string, args ...any)) {
	seen := make(map[string]string)
	channel := func(key, ch string) {
		switch {
		case ch == "" || len(ch) > 63:
			bad(key, "%q is not 1 to 63 bytes", ch)
		case seen[ch] != "":
			bad(key, "%q is already declared in %s", ch, seen[ch])
		case cluster.ValidateTopic(channelTopic(ch)) != nil:
			bad(key, "%q does not make a valid topic", ch)
		}
		if seen[ch] == "" {
			seen[ch] = "bridges.postgres." + key
		}
	}
	for i, ch := range c.NotifyChannels {
		channel(fmt.Sprintf("notify_channels[%d]", i), ch)
	}
	for i, s := range c.Legacy {
		key := fmt.Sprintf("legacy[%d]", i)
		if len(s.Channels) == 0 {
			bad(key, "declares no channels")
		}
		for j, ch := range s.Channels {
			channel(fmt.Sprintf("%s.channels[%d]", key, j), ch)
		}
		if s.Tenant != "" {
			if err := cluster.ValidateTenant(s.Tenant); err != nil {
				bad(key+".tenant", "%q: %v", s.Tenant, err)
			}
		}
		for j, t := range s.Tenants {
			if t == "*" {
				if len(s.Tenants) != 1 {
					bad(key+".tenants", `"*" (any tenant) must be the only entry`)
				}
				continue
			}
			if err := cluster.ValidateTenant(t); err != nil {
				bad(fmt.Sprintf("%s.tenants[%d]", key, j), "%q: %v", t, err)
			}
		}
		for j, p := range s.Topics {
			if err := bridges.ValidateTopicPattern(p); err != nil {
				bad(fmt.Sprintf("%s.topics[%d]", key, j), "%q: %v", p, err)
			}
		}
	}
}

// resolveLegacy maps each NOTIFY channel to its source (c has its
// defaults applied).
func (c Config) resolveLegacy() map[string]*legacySource {
	out := make(map[string]*legacySource)
	if len(c.NotifyChannels) > 0 {
		s := &legacySource{name: legacyConfigKey(-1), SourceTrust: bridges.NewSourceTrust(c.Tenant, nil, nil)}
		for _, ch := range c.NotifyChannels {
			out[ch] = s
		}
	}
	for i, ls := range c.Legacy {
		tenant := ls.Tenant
		if tenant == "" {
			tenant = c.Tenant
		}
		s := &legacySource{name: legacyConfigKey(i), SourceTrust: bridges.NewSourceTrust(tenant, ls.Tenants, ls.Topics)}
		for _, ch := range ls.Channels {
			out[ch] = s
		}
	}
	return out
}

// notifyChannelList is every NOTIFY channel, in declaration order.
func (c Config) notifyChannelList() []string {
	out := append([]string(nil), c.NotifyChannels...)
	for _, s := range c.Legacy {
		out = append(out, s.Channels...)
	}
	return out
}

// tenantRule says which tenants s accepts, naming the setting.
func (s *legacySource) tenantRule() string {
	switch {
	case s.name == legacyConfigKey(-1):
		return fmt.Sprintf("%s accept only tenant %q (bridges.postgres.tenant); to allow more, declare the channel under bridges.postgres.legacy with tenants", s.name, s.Tenant)
	case len(s.Tenants) == 0:
		return fmt.Sprintf("%s accepts only tenant %q; list more in %s.tenants", s.name, s.Tenant, s.name)
	}
	return fmt.Sprintf("neither %q nor in %s.tenants", s.Tenant, s.name)
}
