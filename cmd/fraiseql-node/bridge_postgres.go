package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/bridges/postgres"
	"github.com/fraiseql/subscriptions/cluster"
)

// startPostgresBridge starts the PostgreSQL bridge in a goroutine it owns
// and registers its metrics on reg (may be nil). status reports the
// bridge's sources for /readyz; stop cancels the bridge and waits for it
// (ingesters record their progress and release their leases). A bad
// configuration is an error before anything starts; PostgreSQL being
// down is not (the bridge reconnects with backoff and reports it in
// status).
func startPostgresBridge(ctx context.Context, cfg postgres.Config, cl *cluster.Cluster, reg *prometheus.Registry, log *slog.Logger) (status func() []bridges.Status, stop func(), err error) {
	b, err := postgres.New(cfg, cl, log)
	if err != nil {
		return nil, nil, err
	}
	if reg != nil {
		for _, c := range b.Collectors() {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, nil, err
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { // owned here: stop cancels and waits
		defer close(done)
		b.Run(ctx) //nolint:errcheck // nil on cancel
	}()
	var once sync.Once
	stop = func() {
		once.Do(cancel)
		<-done
	}
	return b.Status, stop, nil
}
