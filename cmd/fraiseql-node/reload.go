package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/query"
)

// schemaLoader loads the configured schema file again, for the admin API's
// POST /admin/reload-schema and for SIGHUP.
func schemaLoader(path string) func() (*query.Schema, error) {
	return func() (*query.Schema, error) { return loadSchema(path) }
}

// reloadOnHUP reloads the schema file on every SIGHUP until the returned
// stop is called. A schema that does not load is logged (by the node) and
// changes nothing.
func reloadOnHUP(n *node.Node, log *slog.Logger) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP)
	done, ended := make(chan struct{}), make(chan struct{})
	go func() { // owned by stop
		defer close(ended)
		for {
			select {
			case <-sigs:
				if _, err := n.ReloadSchemaSource(); err != nil {
					log.Error("SIGHUP: schema not reloaded", "err", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done); <-ended }
}
