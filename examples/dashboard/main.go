// Command dashboard is a live dashboard: a SQL loop writes a metric
// through fraiseql.publish() (the PostgreSQL outbox the node's bridge
// forwards), and a page charts it as it arrives.
//
//	FRAISEQL_BRIDGES_POSTGRES_ENABLED=true FRAISEQL_BRIDGES_POSTGRES_MIGRATE=true \
//	  FRAISEQL_BRIDGES_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//	  go run ./cmd/fraiseql-node                                   (terminal 1)
//	go run ./examples/dashboard --database-url postgres://postgres@127.0.0.1:5432/test   (terminal 2)
//
// then open http://127.0.0.1:8091/?metric=cpu.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed index.html
var page []byte

type config struct {
	listen, node, databaseURL, schema, tenant, metric string
	interval                                          time.Duration
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,47}$`)

func main() {
	var cfg config
	flag.StringVar(&cfg.listen, "listen", "127.0.0.1:8091", "where the page is served")
	flag.StringVar(&cfg.node, "node", "http://127.0.0.1:8080", "the node whose /graphql the page uses")
	flag.StringVar(&cfg.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL with the node's outbox (fraiseql-node migrate)")
	flag.StringVar(&cfg.schema, "schema", "fraiseql", "the outbox's schema")
	flag.StringVar(&cfg.tenant, "tenant", "public", "tenant to publish to")
	flag.StringVar(&cfg.metric, "metric", "cpu", "metric name")
	flag.DurationVar(&cfg.interval, "interval", 500*time.Millisecond, "time between two values")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", cfg.listen)
	if err == nil {
		fmt.Printf("dashboard at http://%s/?metric=%s\n", ln.Addr(), cfg.metric)
		err = run(ctx, cfg, ln)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

// run writes the metric and serves the page on ln until ctx ends.
func run(ctx context.Context, cfg config, ln net.Listener) error {
	if !schemaRE.MatchString(cfg.schema) {
		return fmt.Errorf("--schema %q: want a lower-case SQL identifier", cfg.schema)
	}
	conn, err := pgx.Connect(ctx, cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	defer conn.Close(context.Background())
	target, err := url.Parse(cfg.node)
	if err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	mux.Handle("/graphql", httputil.NewSingleHostReverseProxy(target))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }() // ends when srv is closed below
	defer func() { srv.Close(); <-served }()

	// The SQL loop: one value per interval, a random walk, each in its own
	// transaction, as an application would write it.
	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	v := 50.0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-served:
			return err
		case <-tick.C:
		}
		v = math.Max(0, math.Min(100, v+rand.NormFloat64()*5))
		body := fmt.Sprintf(`{"name":%q,"value":%.3f}`, cfg.metric, v)
		if _, err := conn.Exec(ctx, "SELECT "+cfg.schema+".publish($1, 'metrics', $2::jsonb)", cfg.tenant, body); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("publish: %w", err)
		}
	}
}
