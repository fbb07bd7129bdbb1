// Package bridges holds what the Redis and PostgreSQL bridges share: the
// status they report to /readyz, reconnect backoff, and running an
// ingester only while this node holds the source's lease, so that at most
// one node ingests each source (dedup ids make a brief overlap harmless).
//
// The bridges themselves live in bridges/redis and bridges/postgres. Each
// publishes into the JetStream stream through cluster.Cluster and knows
// nothing of GraphQL or WebSockets.
package bridges

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
)

// Status is one source's state, as /readyz reports it.
type Status struct {
	Name      string `json:"name"`       // e.g. "redis", "postgres-outbox"
	Up        bool   `json:"up"`         // connected to its source (or standing by as a healthy follower)
	Leader    bool   `json:"leader"`     // this node holds the source's lease and ingests it
	LastError string `json:"last_error"` // the last connection error, "" when up
}

// StatusBox holds a Status for concurrent readers and one writer.
type StatusBox struct {
	mu sync.Mutex
	s  Status // guarded by mu
}

// Get returns a copy of the status.
func (b *StatusBox) Get() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.s
}

// Update applies f to the status.
func (b *StatusBox) Update(f func(*Status)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.s)
}

// Backoff is capped exponential backoff with full jitter. The zero value
// uses Min 100ms and Max 30s. Not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	attempt  int
}

// Next returns the delay before the next attempt and counts the attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	d := lo << min(b.attempt, 30)
	if d > hi || d <= 0 {
		d = hi
	}
	b.attempt++
	return lo/2 + rand.N(d-lo/2+1) // at least lo/2, so a flapping source is never hammered
}

// Reset starts the sequence again after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Sleep waits d or until ctx is done; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// DefaultLeaseTTL is how long a dead leader's lease outlives it.
const DefaultLeaseTTL = 10 * time.Second

// RunWhileLeader competes for the lease called name and runs fn while this
// node holds it; fn's context is cancelled as soon as the lease is lost, and
// fn is started again when it is won back. onLeader (may be nil) is told each
// change. It returns when ctx is done, after fn has returned and the lease
// was released. An error from fn is logged and fn restarted after a backoff
// while the lease is still held.
func RunWhileLeader(ctx context.Context, cl *cluster.Cluster, name string, ttl time.Duration, log *slog.Logger, onLeader func(bool), fn func(context.Context) error) error {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	var lease *cluster.Lease
	var bo Backoff
	for lease == nil {
		l, err := cl.Lease(ctx, name, ttl)
		if err == nil {
			lease = l
			break
		}
		log.Warn("lease unavailable; retrying", "lease", name, "err", err)
		if !Sleep(ctx, bo.Next()) {
			return ctx.Err()
		}
	}
	defer lease.Release()
	notify := func(held bool) {
		if onLeader != nil {
			onLeader(held)
		}
	}
	for {
		// Wait until held.
		for !lease.Held() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case _, ok := <-lease.Changes():
				if !ok {
					return ctx.Err()
				}
			}
		}
		notify(true)
		log.Info("lease acquired: ingesting", "lease", name)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { // owned here: cancelled on lease loss, waited below
			defer close(done)
			bo.Reset()
			for runCtx.Err() == nil {
				err := fn(runCtx)
				if runCtx.Err() != nil {
					return
				}
				log.Warn("ingester stopped; restarting", "lease", name, "err", err)
				Sleep(runCtx, bo.Next())
			}
		}()
		for lease.Held() && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case _, ok := <-lease.Changes():
				if !ok {
					cancel()
					<-done
					notify(false)
					return ctx.Err()
				}
			}
		}
		cancel()
		<-done
		notify(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("lease lost: stopped ingesting", "lease", name)
	}
}
