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
	c := Config{}.withDefaults()
	if c.Schema != "fraiseql" || c.BatchSize != 500 || c.PollInterval != time.Second || c.Retention != 24*time.Hour || c.Tenant != "public" {
		t.Fatalf("defaults: %+v", c)
	}
	cl := c.ChangeLog
	if cl.Table != "tb_entity_change_log" || cl.IDColumn != "pk_entity_change_log" || cl.TenantColumn != "fk_customer_org" ||
		cl.PayloadColumn != "object_data" || cl.TopicTemplate != "{entity_type}.{entity_id}" {
		t.Fatalf("change log defaults: %+v", cl)
	}
}
