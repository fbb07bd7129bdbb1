package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket is the JetStream KV bucket that holds leases.
const LeaseBucket = "fraiseql_leases"

// Lease is a best-effort leader lease: at most one Lease per name is held
// across the cluster at a time, provided the holders' clocks run at about
// the same rate (the holder gives the lease up after 2/3 of ttl without a
// successful renewal, before the server would expire it).
type Lease struct {
	c     *Cluster
	kv    jetstream.KeyValue
	name  string
	ttl   time.Duration
	owner []byte // value stored under the key: node name and a random id

	held    atomic.Bool
	changes chan bool // latest state only; closed when the loop ends

	// abandon makes the loop stop without deleting the key, as a crashed
	// holder would (tests only, via export_test.go).
	abandon atomic.Bool

	once sync.Once
	stop chan struct{}
	done chan struct{}
}

// Lease starts competing for the lease called name (a KV key: letters,
// digits, '-', '_', '=', '/', '.'; at most 256 bytes) and returns at once.
// The holder renews every ttl/3; when a holder stops renewing (it died,
// or lost NATS), its key expires after ttl and another contender takes
// over within about ttl/3. Leases live in the bucket LeaseBucket, whose
// TTL is ttl: all leases share one ttl, and the last Lease call with a
// different ttl changes it for all of them. ctx bounds the setup only.
func (c *Cluster) Lease(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if !validLeaseName(name) {
		return nil, fmt.Errorf("lease: bad name %q", name)
	}
	if ttl < 300*time.Millisecond {
		return nil, fmt.Errorf("lease %s: ttl %v is below 300ms", name, ttl)
	}
	kv, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "FraiseQL leader leases (bridges)",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("lease %s: bucket %s: %w", name, LeaseBucket, err)
	}
	l := &Lease{
		c:       c,
		kv:      kv,
		name:    name,
		ttl:     ttl,
		owner:   fmt.Appendf(nil, "%s/%016x", c.cfg.Name, rand.Uint64()),
		changes: make(chan bool, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.leases[l] = struct{}{}
	c.mu.Unlock()
	go l.run() // owned by l: Release stops it and waits
	return l, nil
}

// Held reports whether this contender holds the lease now.
func (l *Lease) Held() bool { return l.held.Load() }

// Changes delivers the lease state each time it changes (true: acquired,
// false: lost). Only the latest state is kept for a slow reader. The
// channel is closed after Release.
func (l *Lease) Changes() <-chan bool { return l.changes }

// Release stops competing, gives the lease up if held (deleting the key
// so another contender can take over at once), and waits for the
// renewal goroutine. It is idempotent.
func (l *Lease) Release() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	l.c.mu.Lock()
	delete(l.c.leases, l)
	l.c.mu.Unlock()
}

func (l *Lease) run() {
	defer close(l.done)
	defer close(l.changes)
	tick := l.ttl / 3
	var (
		rev    uint64    // revision of our value while held
		lastOK time.Time // when the last successful create/renew was sent
	)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			if l.held.Load() && !l.abandon.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), tick)
				_ = l.kv.Delete(ctx, l.name, jetstream.LastRevision(rev))
				cancel()
			}
			l.set(false)
			return
		case <-t.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), tick)
		if l.held.Load() {
			r, err := l.kv.Update(ctx, l.name, l.owner, rev)
			switch {
			case err == nil:
				rev, lastOK = r, sent
			case wrongRevision(err):
				l.c.log.Warn("lease lost: taken over", "lease", l.name)
				l.set(false)
			case time.Since(lastOK) > l.ttl-tick:
				l.c.log.Warn("lease lost: cannot renew", "lease", l.name, "error", err)
				l.set(false)
			}
		} else {
			r, err := l.kv.Create(ctx, l.name, l.owner)
			switch {
			case err == nil:
				rev, lastOK = r, sent
				l.c.log.Info("lease acquired", "lease", l.name)
				l.set(true)
			case errors.Is(err, jetstream.ErrKeyExists):
			default:
				l.c.log.Debug("lease: acquire", "lease", l.name, "error", err)
			}
		}
		cancel()
		t.Reset(tick)
	}
}

// set records the state and publishes it on changes, keeping only the
// latest value if the reader is behind.
func (l *Lease) set(held bool) {
	if l.held.Swap(held) == held {
		return
	}
	select {
	case <-l.changes:
	default:
	}
	l.changes <- held // the buffer of one was just emptied; only run sends
}

// wrongRevision reports whether err says the key changed under us.
func wrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return true
	}
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

func validLeaseName(s string) bool {
	if s == "" || len(s) > 256 || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(tenantByte(b) || b == '=' || b == '/' || b == '.') {
			return false
		}
	}
	return true
}
