package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/cluster"
)

// Defaults: the documented zero values of the Config fields.
const (
	DefaultURL          = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultSchema       = "fraiseql"
	DefaultTenant       = "public"
	DefaultPollInterval = time.Second
	DefaultBatchSize    = 500
	DefaultRetention    = 24 * time.Hour

	DefaultChangeLogTable         = "tb_entity_change_log"
	DefaultChangeLogIDColumn      = "pk_entity_change_log"
	DefaultChangeLogTenantColumn  = "fk_customer_org"
	DefaultChangeLogTypeColumn    = "object_type"
	DefaultChangeLogObjectColumn  = "object_id"
	DefaultChangeLogOpColumn      = "modification_type"
	DefaultChangeLogPayloadColumn = "object_data"
	DefaultChangeLogTopicTemplate = "{entity_type}.{entity_id}"
	DefaultChangeLogGapTimeout    = 30 * time.Second

	// maxBatchSize bounds one read (and so the memory a batch of 1 MiB
	// payloads can take).
	maxBatchSize = 10000
)

// Config configures the PostgreSQL bridge (key "bridges.postgres" in the
// node's configuration file). Every field's zero value is valid and
// documented.
type Config struct {
	// URL is the PostgreSQL connection string (URL or key=value form).
	// Zero value means DefaultURL.
	URL string `yaml:"url"`

	// Schema holds the outbox, dead_letter, checkpoint and schema_version
	// tables and the publish function. It is a lowercase SQL identifier
	// ([a-z_][a-z0-9_]*, at most 48 bytes, so that the NOTIFY channel
	// "<schema>_outbox" fits). Zero value means "fraiseql".
	Schema string `yaml:"schema"`

	// Migrate runs the embedded migration when the bridge starts (it is
	// idempotent and serialised by an advisory lock, so every node may run
	// it). Zero value means off: run `fraiseql-node migrate` instead.
	Migrate bool `yaml:"migrate"`

	// Tenant is the only tenant that envelopes on NotifyChannels may
	// name (and theirs when they name none), the default tenant of the
	// Legacy sources, and the tenant of change-log rows with a NULL
	// tenant. Zero value means "public".
	Tenant string `yaml:"tenant"`

	// PollInterval is how often the outbox is read without a NOTIFY
	// wake-up (the safety net for lost notifications) and how often the
	// change log is polled. Zero value means 1s.
	PollInterval time.Duration `yaml:"poll_interval"`

	// BatchSize is the most rows read at once. Zero value means 500; at
	// most 10000.
	BatchSize int `yaml:"batch_size"`

	// Retention is how long forwarded outbox rows are kept before they
	// are deleted. Zero value means 24h; -1ns (any negative) keeps them.
	Retention time.Duration `yaml:"retention"`

	// LeaseTTL is how long a dead leader holds a source before another
	// node takes over. Zero value means bridges.DefaultLeaseTTL (10s).
	LeaseTTL time.Duration `yaml:"lease_ttl"`

	// NotifyChannels are legacy LISTEN channels carrying FraiseQL JSON
	// envelopes, e.g. "fraiseql_orders": shorthand for one Legacy source
	// with these channels and no other settings, so their envelopes may
	// name only Tenant. Zero value means none.
	NotifyChannels []string `yaml:"notify_channels"`

	// Legacy declares NOTIFY channels each with the tenant, tenants and
	// topics its envelopes may name. Zero value means none besides
	// NotifyChannels.
	Legacy []LegacySource `yaml:"legacy"`

	// ChangeLog tails FraiseQL's entity change log.
	ChangeLog ChangeLogConfig `yaml:"change_log"`
}

// ChangeLogConfig maps rows of FraiseQL's tb_entity_change_log (or a
// table shaped like it) to events. Each row becomes one event:
//
//	tenant  = TenantColumn (NULL or empty: Config.Tenant)
//	topic   = TopicTemplate with {entity_type}, {entity_id}, {operation}
//	          replaced by EntityTypeColumn, EntityIDColumn and
//	          OperationColumn (lowercased), each made one subject token
//	payload = PayloadColumn when it is a JSON object, else {"id": entity_id}
//	msg id  = "pgcl-<IDColumn>"
type ChangeLogConfig struct {
	// Enabled turns the source on. Zero value means off.
	Enabled bool `yaml:"enabled"`
	// Table is the table, optionally schema-qualified ("app.tb_x"). Zero
	// value means "tb_entity_change_log".
	Table string `yaml:"table"`
	// IDColumn is the bigint primary key rows are tailed by. Zero value
	// means "pk_entity_change_log".
	IDColumn string `yaml:"id_column"`
	// TenantColumn holds the tenant. Zero value means "fk_customer_org".
	TenantColumn string `yaml:"tenant_column"`
	// EntityTypeColumn is {entity_type}. Zero value means "object_type".
	EntityTypeColumn string `yaml:"entity_type_column"`
	// EntityIDColumn is {entity_id}. Zero value means "object_id".
	EntityIDColumn string `yaml:"entity_id_column"`
	// OperationColumn is {operation}. Zero value means "modification_type".
	OperationColumn string `yaml:"operation_column"`
	// PayloadColumn is the event body. Zero value means "object_data".
	PayloadColumn string `yaml:"payload_column"`
	// TopicTemplate builds the topic. Zero value means
	// "{entity_type}.{entity_id}".
	TopicTemplate string `yaml:"topic_template"`
	// FromStart forwards the rows already in the table on the very first
	// run (no checkpoint yet). Zero value means start at the table's end.
	FromStart bool `yaml:"from_start"`
	// GapTimeout is the longest the tail waits at a missing id (a
	// transaction that took an id but has not committed) before it
	// treats the id as rolled back. The wait normally ends sooner, as
	// soon as every transaction that could hold the id has finished.
	// Zero value means 30s.
	GapTimeout time.Duration `yaml:"gap_timeout"`
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

// WithDefaults returns c with every zero field replaced by its default.
func (c Config) WithDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Schema == "" {
		c.Schema = DefaultSchema
	}
	if c.Tenant == "" {
		c.Tenant = DefaultTenant
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = bridges.DefaultLeaseTTL
	}
	cl := &c.ChangeLog
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&cl.Table, DefaultChangeLogTable)
	def(&cl.IDColumn, DefaultChangeLogIDColumn)
	def(&cl.TenantColumn, DefaultChangeLogTenantColumn)
	def(&cl.EntityTypeColumn, DefaultChangeLogTypeColumn)
	def(&cl.EntityIDColumn, DefaultChangeLogObjectColumn)
	def(&cl.OperationColumn, DefaultChangeLogOpColumn)
	def(&cl.PayloadColumn, DefaultChangeLogPayloadColumn)
	def(&cl.TopicTemplate, DefaultChangeLogTopicTemplate)
	if cl.GapTimeout == 0 {
		cl.GapTimeout = DefaultChangeLogGapTimeout
	}
	return c
}

// Validate reports every invalid field, named as in the configuration
// file ("bridges.postgres.batch_size"). It checks c after defaults.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("bridges.postgres.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, err := pgx.ParseConfig(c.URL); err != nil {
		bad("url", "%v", redactErr(err))
	}
	if !schemaRE.MatchString(c.Schema) {
		bad("schema", "%q is not a lowercase SQL identifier of at most 48 bytes ([a-z_][a-z0-9_]*)", c.Schema)
	}
	if err := cluster.ValidateTenant(c.Tenant); err != nil {
		bad("tenant", "%q: %v", c.Tenant, err)
	}
	if c.PollInterval < 10*time.Millisecond {
		bad("poll_interval", "%v is below 10ms", c.PollInterval)
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		bad("batch_size", "%d is not between 1 and %d", c.BatchSize, maxBatchSize)
	}
	if c.Retention > 0 && c.Retention < time.Minute {
		bad("retention", "%v is below 1m (negative keeps rows forever)", c.Retention)
	}
	if c.LeaseTTL < 300*time.Millisecond {
		bad("lease_ttl", "%v is below 300ms", c.LeaseTTL)
	}
	c.validateLegacy(bad)
	if cl := c.ChangeLog; cl.Enabled {
		if _, err := tableIdent(cl.Table); err != nil {
			bad("change_log.table", "%v", err)
		}
		for _, col := range []struct{ key, v string }{
			{"id_column", cl.IDColumn}, {"tenant_column", cl.TenantColumn},
			{"entity_type_column", cl.EntityTypeColumn}, {"entity_id_column", cl.EntityIDColumn},
			{"operation_column", cl.OperationColumn}, {"payload_column", cl.PayloadColumn},
		} {
			if col.v == "" || len(col.v) > 63 || strings.ContainsRune(col.v, 0) {
				bad("change_log."+col.key, "%q is not a column name", col.v)
			}
		}
		if err := checkTemplate(cl.TopicTemplate); err != nil {
			bad("change_log.topic_template", "%v", err)
		}
		if cl.GapTimeout < 0 {
			bad("change_log.gap_timeout", "%v is negative", cl.GapTimeout)
		}
	}
	return errors.Join(errs...)
}

// tableIdent quotes a possibly schema-qualified table name.
func tableIdent(name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", fmt.Errorf("%q: at most schema.table", name)
	}
	for _, p := range parts {
		if p == "" || len(p) > 63 || strings.ContainsRune(p, 0) {
			return "", fmt.Errorf("%q is not a table name", name)
		}
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

// redactErr hides a password that a connection-string parse error may quote.
func redactErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.Index(s[i:], "@"); j >= 0 {
			return s[:i+3] + "…" + s[i+j:]
		}
	}
	return s
}
