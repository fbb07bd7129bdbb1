package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one numbered SQL file, "NNN_name.sql".
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name is not NNN_name.sql", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Beginner is what Migrate needs: *pgx.Conn, *pgxpool.Pool and pgx.Tx
// all have it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// LatestVersion is the schema version this package's migrations reach.
func LatestVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate creates or upgrades the bridge's tables and the publish function
// in schema (DefaultSchema when empty), recording each applied version in
// <schema>.schema_version. It is idempotent and safe to run from several
// nodes at once: one transaction, serialised by an advisory lock.
func Migrate(ctx context.Context, db Beginner, schema string) (err error) {
	if schema == "" {
		schema = DefaultSchema
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("migrate schema %s: %w", schema, err)
		}
	}()
	if !schemaRE.MatchString(schema) {
		return fmt.Errorf("%q is not a lowercase SQL identifier of at most 48 bytes", schema)
	}
	ms, err := migrations()
	if err != nil {
		return err
	}
	q := quoteIdent(schema)
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('fraiseql.migrate.' || $1::text))`, schema); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+q); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+q+`.schema_version (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+q+`.schema_version`).Scan(&current); err != nil {
		return err
	}
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("database is at version %d, newer than this binary's %d", current, latest)
	}
	r := strings.NewReplacer("__SCHEMA__", q, "__CHANNEL__", quoteLiteral(outboxChannel(schema)))
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		if _, err := tx.Exec(ctx, r.Replace(m.sql)); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+q+`.schema_version (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// outboxChannel is the NOTIFY channel publish() wakes the bridge on.
func outboxChannel(schema string) string { return schema + "_outbox" }

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
