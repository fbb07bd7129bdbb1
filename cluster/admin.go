package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// adminPrefix is the first token of the subjects cluster-wide admin
// actions travel on: "_admin.<prefix>.<kind>" never overlaps the event
// stream's "<prefix>.>".
const adminPrefix = "_admin"

// RevocationBucket is the JetStream KV bucket that holds token
// revocations, so that every node, including one started later, refuses
// the same tokens. Its keys are "<prefix>.<tenant>.<user>", each part
// base64url-encoded; an entry expires after the bucket's TTL.
const RevocationBucket = "fraiseql_revocations"

// adminSubject is the subject of one kind of admin action.
func (c *Cluster) adminSubject(kind string) string {
	return adminPrefix + "." + c.cfg.Prefix + "." + kind
}

// PublishAdmin sends an admin action of kind (one subject token) to every
// node of the deployment subscribed with SubscribeAdmin, at most once
// (core NATS: a node disconnected from NATS at that moment misses it).
func (c *Cluster) PublishAdmin(kind string, data []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.nc.Publish(c.adminSubject(kind), data); err != nil {
		return err
	}
	return c.nc.Flush()
}

// SubscribeAdmin calls fn, on one goroutine of the NATS connection, with
// every admin action of kind published by any node (this one included).
// stop ends the subscription; the Cluster's Close ends it too.
func (c *Cluster) SubscribeAdmin(kind string, fn func(data []byte)) (stop func(), err error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	sub, err := c.nc.Subscribe(c.adminSubject(kind), func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("admin subscription %s: %w", kind, err)
	}
	if err := c.nc.Flush(); err != nil { // the server has the interest on return
		sub.Unsubscribe()
		return nil, fmt.Errorf("admin subscription %s: %w", kind, err)
	}
	return func() { sub.Unsubscribe() }, nil
}

// Revocations is the deployment's revocation store (RevocationBucket).
type Revocations struct {
	kv     jetstream.KeyValue
	prefix string // this deployment's key prefix: base64url(Config.Prefix)
}

// Revocations opens (creating it if needed) the revocation bucket with
// entries expiring after ttl. All deployments on a NATS share the bucket
// and its TTL: the last call with another ttl changes it for every entry.
func (c *Cluster) Revocations(ctx context.Context, ttl time.Duration) (*Revocations, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("revocations: ttl %v is below 1s", ttl)
	}
	kv, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      RevocationBucket,
		Description: "FraiseQL token revocations (admin API)",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("revocations: bucket %s: %w", RevocationBucket, err)
	}
	return &Revocations{kv: kv, prefix: b64(c.cfg.Prefix)}, nil
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Put stores the revocation of user of tenant, value being what Watch
// hands back.
func (r *Revocations) Put(ctx context.Context, tenant, user string, value []byte) error {
	_, err := r.kv.Put(ctx, r.prefix+"."+b64(tenant)+"."+b64(user), value)
	return err
}

// Watch calls fn with every revocation of the deployment stored now, then
// with each one stored later, until stop is called or ctx ends; it
// returns once the stored ones have been handed to fn. fn runs on one
// goroutine, which stop waits for.
func (r *Revocations) Watch(ctx context.Context, fn func(tenant, user string, value []byte)) (stop func(), err error) {
	wctx, cancel := context.WithCancel(ctx)
	w, err := r.kv.Watch(wctx, r.prefix+".>", jetstream.IgnoreDeletes())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("revocations: watch: %w", err)
	}
	apply := func(e jetstream.KeyValueEntry) {
		parts := strings.Split(e.Key(), ".")
		if len(parts) != 3 {
			return
		}
		tenant, err1 := base64.RawURLEncoding.DecodeString(parts[1])
		user, err2 := base64.RawURLEncoding.DecodeString(parts[2])
		if err1 == nil && err2 == nil {
			fn(string(tenant), string(user), e.Value())
		}
	}
	// The stored entries first, up to the nil that marks their end.
	for initial := true; initial; {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				cancel()
				return nil, errors.New("revocations: watch ended")
			case e == nil:
				initial = false
			default:
				apply(e)
			}
		case <-ctx.Done():
			w.Stop()
			cancel()
			return nil, ctx.Err()
		}
	}
	done := make(chan struct{})
	go func() { // owned by stop
		defer close(done)
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					apply(e)
				}
			case <-wctx.Done():
				return
			}
		}
	}()
	return func() { cancel(); w.Stop(); <-done }, nil
}
