package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/subscriptions/bridges/postgres"
)

// migrateTimeout bounds connecting and migrating.
const migrateTimeout = time.Minute

// migrate creates or upgrades the PostgreSQL bridge's schema:
//
//	fraiseql-node migrate --database-url URL [--schema fraiseql]
//
// The URL defaults to $DATABASE_URL. It is idempotent.
func migrate(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("database-url", "", "PostgreSQL connection string (default $DATABASE_URL)")
	schema := fs.String("schema", postgres.DefaultSchema, "schema for the outbox tables and publish()")
	if err := fs.Parse(args); err != nil {
		return usageErrorOrHelp(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("migrate takes no arguments, got %q", fs.Args())}
	}
	if *url == "" {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok {
				*url = v
			}
		}
	}
	if *url == "" {
		return usageError{errors.New("migrate: --database-url (or DATABASE_URL) is required")}
	}
	if err := (postgres.Config{URL: *url, Schema: *schema}).Validate(); err != nil {
		return usageError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, *url)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := postgres.Migrate(ctx, conn, *schema); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema %s is at version %d\n", *schema, postgres.LatestVersion())
	return nil
}
