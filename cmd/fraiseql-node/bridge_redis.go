package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/bridges/redis"
	"github.com/fraiseql/subscriptions/cluster"
)

// startRedisBridge starts the Redis bridge (config section bridges.redis)
// on cl, registers its metrics on reg (nil: not registered) and runs it in
// a goroutine it owns. status reports the bridge's sources for /readyz;
// stop cancels the bridge and waits for it to return, and is idempotent.
// It fails only on a bad configuration or a metrics clash: Redis being
// down is retried in the background, never fatal.
func startRedisBridge(ctx context.Context, cfg redis.Config, cl *cluster.Cluster, reg *prometheus.Registry, log *slog.Logger) (status func() []bridges.Status, stop func(), err error) {
	if log == nil {
		log = slog.Default()
	}
	b, err := redis.New(cfg, cl, log)
	if err != nil {
		return nil, nil, err
	}
	if reg != nil {
		var done []prometheus.Collector
		for _, c := range b.Collectors() {
			if err := reg.Register(c); err != nil {
				for _, d := range done {
					reg.Unregister(d)
				}
				return nil, nil, fmt.Errorf("bridges.redis: metrics: %w", err)
			}
			done = append(done, c)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { // owned here: stop cancels it and waits
		defer close(done)
		if err := b.Run(ctx); err != nil {
			log.Error("redis bridge stopped", "err", err)
		}
	}()
	stop = func() {
		cancel()
		<-done
	}
	return b.Status, stop, nil
}
