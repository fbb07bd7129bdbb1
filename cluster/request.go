package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ErrNoResponder means no node serves the admin request's kind: the node
// it names is gone (or never was).
var ErrNoResponder = errors.New("cluster: no node serves this request")

// RequestAdmin sends a request of kind (subject tokens under
// "_admin.<prefix>.", e.g. "sse.<node>") to the node serving it
// (ServeAdmin) and returns that node's reply, waiting until ctx ends (core
// NATS request-reply: at most once). ErrNoResponder: nobody serves kind.
func (c *Cluster) RequestAdmin(ctx context.Context, kind string, data []byte) ([]byte, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	m, err := c.nc.RequestWithContext(ctx, c.adminSubject(kind), data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, ErrNoResponder
	}
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// ServeAdmin answers the requests of kind (RequestAdmin) with fn's reply.
// fn runs on one goroutine of the NATS connection, one request at a time.
// stop ends it; the Cluster's Close ends it too.
func (c *Cluster) ServeAdmin(kind string, fn func(data []byte) []byte) (stop func(), err error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	sub, err := c.nc.Subscribe(c.adminSubject(kind), func(m *nats.Msg) { _ = m.Respond(fn(m.Data)) })
	if err != nil {
		return nil, fmt.Errorf("admin requests %s: %w", kind, err)
	}
	if err := c.nc.Flush(); err != nil { // the server has the interest on return
		sub.Unsubscribe()
		return nil, fmt.Errorf("admin requests %s: %w", kind, err)
	}
	return func() { sub.Unsubscribe() }, nil
}
