package redis

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "full", cfg: Config{URL: "redis://:pw@localhost:6380/2", Prefix: "app", Patterns: []string{"app:*"},
			LegacyChannels: []string{"fraiseql:events"}, Tenant: "acme", Streams: []string{"app:events:x"},
			StreamPattern: "app:events:*", Group: "g", Consumer: "c", ClaimMinIdle: time.Second,
			BlockTimeout: time.Second, BatchSize: 10, LeaseTTL: time.Second}},
		{name: "bad url", cfg: Config{URL: "http://x"}, want: "bridges.redis.url"},
		{name: "password not echoed", cfg: Config{URL: "redis://:s3cret@host:notaport"}, want: "bridges.redis.url"},
		{name: "prefix with colon", cfg: Config{Prefix: "a:b"}, want: "bridges.redis.prefix"},
		{name: "bad tenant", cfg: Config{Tenant: "a.b"}, want: "bridges.redis.tenant"},
		{name: "empty pattern", cfg: Config{Patterns: []string{""}}, want: "bridges.redis.patterns[0]"},
		{name: "bad pattern", cfg: Config{Patterns: []string{"a["}}, want: "bridges.redis.patterns[0]"},
		{name: "empty legacy channel", cfg: Config{LegacyChannels: []string{"x", ""}}, want: "bridges.redis.legacy_channels[1]"},
		{name: "empty stream", cfg: Config{Streams: []string{""}}, want: "bridges.redis.streams[0]"},
		{name: "dead-letter stream", cfg: Config{Streams: []string{"k:dead"}}, want: "bridges.redis.streams[0]"},
		{name: "both disabled", cfg: Config{DisablePubSub: true, DisableStreams: true}, want: "disable_pubsub"},
		{name: "negative batch", cfg: Config{BatchSize: -1}, want: "bridges.redis.batch_size"},
		{name: "huge batch", cfg: Config{BatchSize: 100_000}, want: "bridges.redis.batch_size"},
		{name: "negative claim idle", cfg: Config{ClaimMinIdle: -1}, want: "bridges.redis.claim_min_idle"},
		{name: "negative block", cfg: Config{BlockTimeout: -1}, want: "bridges.redis.block_timeout"},
		{name: "tiny block", cfg: Config{BlockTimeout: time.Microsecond}, want: "bridges.redis.block_timeout"},
		{name: "negative scan", cfg: Config{ScanInterval: -1}, want: "bridges.redis.scan_interval"},
		{name: "short lease", cfg: Config{LeaseTTL: time.Millisecond}, want: "bridges.redis.lease_ttl"},
		{name: "legacy sources", cfg: Config{LegacyChannels: []string{"a"}, Streams: []string{"k"}, Legacy: []LegacySource{
			{Channels: []string{"b"}, Streams: []string{"k", "fraiseql:events:x", "other:*"}, Tenant: "acme", Tenants: []string{"globex", "initech"}, Topics: []string{"chat.*", "orders.>", ">"}},
			{Streams: []string{"fraiseql:events:*"}, Tenants: []string{"*"}},
		}}},
		{name: "duplicate legacy channel", cfg: Config{LegacyChannels: []string{"a", "a"}}, want: "bridges.redis.legacy_channels[1]"},
		{name: "legacy channel declared twice", cfg: Config{LegacyChannels: []string{"a"}, Legacy: []LegacySource{{Channels: []string{"a"}}}}, want: "bridges.redis.legacy[0].channels[0]"},
		{name: "empty legacy source", cfg: Config{Legacy: []LegacySource{{Tenant: "acme"}}}, want: "bridges.redis.legacy[0]"},
		{name: "empty legacy source channel", cfg: Config{Legacy: []LegacySource{{Channels: []string{""}}}}, want: "bridges.redis.legacy[0].channels[0]"},
		{name: "empty legacy stream", cfg: Config{Legacy: []LegacySource{{Streams: []string{""}}}}, want: "bridges.redis.legacy[0].streams[0]"},
		{name: "bad legacy stream pattern", cfg: Config{Legacy: []LegacySource{{Streams: []string{"a["}}}}, want: "bridges.redis.legacy[0].streams[0]"},
		{name: "legacy stream not read", cfg: Config{Legacy: []LegacySource{{Streams: []string{"app:x"}}}}, want: "bridges.redis.legacy[0].streams[0]"},
		{name: "legacy stream not read without a pattern", cfg: Config{StreamPattern: "-", Legacy: []LegacySource{{Streams: []string{"fraiseql:events:x"}}}}, want: "bridges.redis.legacy[0].streams[0]"},
		{name: "bad legacy tenant", cfg: Config{Legacy: []LegacySource{{Channels: []string{"c"}, Tenant: "a.b"}}}, want: "bridges.redis.legacy[0].tenant"},
		{name: "bad legacy tenants", cfg: Config{Legacy: []LegacySource{{Channels: []string{"c"}, Tenants: []string{"ok", ">"}}}}, want: "bridges.redis.legacy[0].tenants[1]"},
		{name: "any tenant among others", cfg: Config{Legacy: []LegacySource{{Channels: []string{"c"}, Tenants: []string{"acme", "*"}}}}, want: "bridges.redis.legacy[0].tenants"},
		{name: "empty topic pattern", cfg: Config{Legacy: []LegacySource{{Channels: []string{"c"}, Topics: []string{""}}}}, want: "bridges.redis.legacy[0].topics[0]"},
		{name: "> not last", cfg: Config{Legacy: []LegacySource{{Channels: []string{"c"}, Topics: []string{"a.>.b"}}}}, want: "bridges.redis.legacy[0].topics[0]"},
		{name: "partial wildcard", cfg: Config{Legacy: []LegacySource{{Channels: []string{"c"}, Topics: []string{"chat.r*"}}}}, want: "bridges.redis.legacy[0].topics[0]"},
		{name: "empty topic token", cfg: Config{Legacy: []LegacySource{{Channels: []string{"c"}, Topics: []string{"chat..r"}}}}, want: "bridges.redis.legacy[0].topics[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error naming %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.URL != DefaultURL || c.Prefix != "fraiseql" || c.Tenant != "public" || c.Group != "fraiseql-bridge" ||
		c.StreamPattern != "fraiseql:events:*" || c.ClaimMinIdle != 30*time.Second || c.BatchSize != 100 ||
		c.BlockTimeout != 2*time.Second || c.ScanInterval != 10*time.Second || c.Consumer == "" {
		t.Fatalf("defaults: %+v", c)
	}
	if len(c.Patterns) != 1 || c.Patterns[0] != "fraiseql:*" {
		t.Fatalf("patterns: %v", c.Patterns)
	}
	if p := (Config{Prefix: "app"}).WithDefaults(); p.Patterns[0] != "app:*" || p.StreamPattern != "app:events:*" {
		t.Fatalf("prefix-derived defaults: %+v", p)
	}
}

// TestLegacyLeaseUnchanged: legacy channels declared with either key lead
// to the same lease name as the same legacy_channels did before, so nodes
// of two versions never both ingest during a rolling upgrade.
func TestLegacyLeaseUnchanged(t *testing.T) {
	a := Config{LegacyChannels: []string{"x", "y"}}.WithDefaults()
	b := Config{LegacyChannels: []string{"y"}, Legacy: []LegacySource{{Channels: []string{"x"}, Tenants: []string{"*"}}}}.WithDefaults()
	ap, as := a.leaseNames()
	bp, bs := b.leaseNames()
	if ap != bp || as != bs {
		t.Errorf("leases differ: %s %s / %s %s", ap, as, bp, bs)
	}
	if ap != "redis-pubsub-"+shortHash(redactURL(a.URL), "p", "fraiseql:*", "l", "x\x00y", "fraiseql", "public") {
		t.Errorf("lease %s is not the one of earlier versions", ap)
	}
}

func TestLeaseNames(t *testing.T) {
	a := Config{URL: "redis://:pw1@h:6379/0", Patterns: []string{"x:*", "y:*"}}.WithDefaults()
	b := Config{URL: "redis://:pw2@h:6379/0", Patterns: []string{"y:*", "x:*"}}.WithDefaults()
	ap, as := a.leaseNames()
	bp, bs := b.leaseNames()
	if ap != bp || as != bs {
		t.Errorf("same source, different leases: %s %s / %s %s", ap, as, bp, bs)
	}
	if !strings.HasPrefix(ap, "redis-pubsub-") || !strings.HasPrefix(as, "redis-streams-") {
		t.Errorf("names %s %s", ap, as)
	}
	c := Config{URL: "redis://h:6380/0", Patterns: []string{"x:*", "y:*"}}.WithDefaults()
	if cp, _ := c.leaseNames(); cp == ap {
		t.Error("another Redis shares the lease")
	}
	d := Config{URL: "redis://h:6379/0", StreamPattern: "other:*"}.WithDefaults()
	if _, ds := d.leaseNames(); ds == as {
		t.Error("other streams share the lease")
	}
}
