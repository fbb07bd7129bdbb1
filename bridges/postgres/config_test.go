package postgres

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring; "" means valid
	}{
		{"zero value is valid", func(*Config) {}, ""},
		{"test schema", func(c *Config) { c.Schema = "fraiseql_t0a1b" }, ""},
		{"schema upper case", func(c *Config) { c.Schema = "Fraiseql" }, "bridges.postgres.schema"},
		{"schema injection", func(c *Config) { c.Schema = `x"; drop table y; --` }, "bridges.postgres.schema"},
		{"schema too long", func(c *Config) { c.Schema = strings.Repeat("a", 49) }, "bridges.postgres.schema"},
		{"bad url", func(c *Config) { c.URL = "postgres://u:secret@[::1" }, "bridges.postgres.url"},
		{"batch too big", func(c *Config) { c.BatchSize = maxBatchSize + 1 }, "bridges.postgres.batch_size"},
		{"batch negative", func(c *Config) { c.BatchSize = -1 }, "bridges.postgres.batch_size"},
		{"poll too fast", func(c *Config) { c.PollInterval = time.Millisecond }, "bridges.postgres.poll_interval"},
		{"retention short", func(c *Config) { c.Retention = time.Second }, "bridges.postgres.retention"},
		{"retention forever", func(c *Config) { c.Retention = -1 }, ""},
		{"lease short", func(c *Config) { c.LeaseTTL = 100 * time.Millisecond }, "bridges.postgres.lease_ttl"},
		{"tenant with dot", func(c *Config) { c.Tenant = "a.b" }, "bridges.postgres.tenant"},
		{"channels", func(c *Config) { c.NotifyChannels = []string{"fraiseql_orders", "fraiseql_chat"} }, ""},
		{"channel twice", func(c *Config) { c.NotifyChannels = []string{"a", "a"} }, "bridges.postgres.notify_channels[1]"},
		{"channel empty", func(c *Config) { c.NotifyChannels = []string{""} }, "bridges.postgres.notify_channels[0]"},
		{"legacy sources", func(c *Config) {
			c.NotifyChannels = []string{"fraiseql_orders"}
			c.Legacy = []LegacySource{
				{Channels: []string{"fraiseql_billing", "billing"}, Tenant: "acme", Tenants: []string{"globex", "initech"}, Topics: []string{"chat.*", "orders.>", ">"}},
				{Channels: []string{"fraiseql_any"}, Tenants: []string{"*"}},
			}
		}, ""},
		{"channel in both", func(c *Config) {
			c.NotifyChannels = []string{"a"}
			c.Legacy = []LegacySource{{Channels: []string{"a"}}}
		}, "bridges.postgres.legacy[0].channels[0]: \"a\" is already declared in bridges.postgres.notify_channels[0]"},
		{"channel in two sources", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"a"}}, {Channels: []string{"a"}}} }, "bridges.postgres.legacy[1].channels[0]"},
		{"legacy without channels", func(c *Config) { c.Legacy = []LegacySource{{Tenant: "acme"}} }, "bridges.postgres.legacy[0]: declares no channels"},
		{"legacy channel empty", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{""}}} }, "bridges.postgres.legacy[0].channels[0]"},
		{"legacy channel 63 bytes", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{strings.Repeat("c", 63)}}} }, ""},
		{"legacy channel 64 bytes", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{strings.Repeat("c", 64)}}} }, "bridges.postgres.legacy[0].channels[0]"},
		{"legacy channel bad topic", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"a b"}}} }, "bridges.postgres.legacy[0].channels[0]"},
		{"legacy bad tenant", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"c"}, Tenant: "a.b"}} }, "bridges.postgres.legacy[0].tenant"},
		{"legacy bad tenants", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"c"}, Tenants: []string{"ok", ">"}}} }, "bridges.postgres.legacy[0].tenants[1]"},
		{"legacy empty tenants entry", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"c"}, Tenants: []string{""}}} }, "bridges.postgres.legacy[0].tenants[0]"},
		{"any tenant among others", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"c"}, Tenants: []string{"acme", "*"}}} }, "bridges.postgres.legacy[0].tenants: \"*\""},
		{"empty topic pattern", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"c"}, Topics: []string{""}}} }, "bridges.postgres.legacy[0].topics[0]"},
		{"> not last", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"c"}, Topics: []string{"a.>.b"}}} }, "bridges.postgres.legacy[0].topics[0]"},
		{"partial wildcard", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"c"}, Topics: []string{"chat.r*"}}} }, "bridges.postgres.legacy[0].topics[0]"},
		{"empty topic token", func(c *Config) { c.Legacy = []LegacySource{{Channels: []string{"c"}, Topics: []string{"chat..r"}}} }, "bridges.postgres.legacy[0].topics[0]"},
		{"change log defaults", func(c *Config) { c.ChangeLog.Enabled = true }, ""},
		{"change log table qualified", func(c *Config) { c.ChangeLog = ChangeLogConfig{Enabled: true, Table: "app.tb_entity_change_log"} }, ""},
		{"change log table 3 parts", func(c *Config) { c.ChangeLog = ChangeLogConfig{Enabled: true, Table: "a.b.c"} }, "bridges.postgres.change_log.table"},
		{"change log template unknown", func(c *Config) {
			c.ChangeLog = ChangeLogConfig{Enabled: true, TopicTemplate: "{entity}.x"}
		}, "bridges.postgres.change_log.topic_template"},
		{"change log template unclosed", func(c *Config) {
			c.ChangeLog = ChangeLogConfig{Enabled: true, TopicTemplate: "{entity_type"}
		}, "bridges.postgres.change_log.topic_template"},
		{"disabled change log is not checked", func(c *Config) { c.ChangeLog.TopicTemplate = "{nope}" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Validate: nil, want error naming %s", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Validate: %v, want it to name %s", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Schema != "fraiseql" || c.BatchSize != 500 || c.PollInterval != time.Second || c.Retention != 24*time.Hour || c.Tenant != "public" {
		t.Fatalf("defaults: %+v", c)
	}
	cl := c.ChangeLog
	if cl.Table != "tb_entity_change_log" || cl.IDColumn != "pk_entity_change_log" || cl.TenantColumn != "fk_customer_org" ||
		cl.PayloadColumn != "object_data" || cl.TopicTemplate != "{entity_type}.{entity_id}" {
		t.Fatalf("change log defaults: %+v", cl)
	}
}

// TestNotifySources: notify_channels are fixed to tenant; each legacy
// source keeps its own settings; the channels are listened to in
// declaration order.
func TestNotifySources(t *testing.T) {
	c := Config{Tenant: "acme", NotifyChannels: []string{"n1", "n2"}, Legacy: []LegacySource{
		{Channels: []string{"l1"}, Tenants: []string{"globex"}},
		{Channels: []string{"l2"}, Tenant: "initech", Tenants: []string{"*"}, Topics: []string{"a.*"}},
	}}.WithDefaults()
	if got := c.notifyChannelList(); strings.Join(got, ",") != "n1,n2,l1,l2" {
		t.Fatalf("channels %v", got)
	}
	srcs := c.resolveLegacy()
	if len(srcs) != 4 || srcs["n1"] != srcs["n2"] {
		t.Fatalf("sources %v", srcs)
	}
	for _, tc := range []struct {
		ch, tenant string
		want       bool
	}{
		{"n1", "acme", true}, {"n1", "globex", false}, {"n1", "public", false},
		{"l1", "acme", true}, {"l1", "globex", true}, {"l1", "initech", false},
		{"l2", "initech", true}, {"l2", "acme", true}, {"l2", "anyone", true},
	} {
		if got := srcs[tc.ch].AllowTenant(tc.tenant); got != tc.want {
			t.Errorf("%s allows %s: %v, want %v", tc.ch, tc.tenant, got, tc.want)
		}
	}
	if srcs["n1"].AllowTopic("any.thing") != true || srcs["l2"].AllowTopic("b.x") || !srcs["l2"].AllowTopic("a.x") {
		t.Error("topics")
	}
}
