package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

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

// MaxAdminConcurrency bounds the requests of one kind a node works on at
// once (ServeAdmin); more wait for one of them to end.
const MaxAdminConcurrency = 16

// ServeAdmin answers the requests of kind (RequestAdmin) with fn's reply.
// fn runs on its own goroutine for each request, at most
// MaxAdminConcurrency at once, so that a request whose work takes long
// (one tenant's) does not hold up the others; past the bound, requests
// wait in the subscription's queue. stop ends it and waits for the
// requests at work; the Cluster's Close ends the subscription too.
func (c *Cluster) ServeAdmin(kind string, fn func(data []byte) []byte) (stop func(), err error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	slots := make(chan struct{}, MaxAdminConcurrency)
	var (
		mu      sync.Mutex // orders working.Go against stop's Wait
		stopped bool
		working sync.WaitGroup
	)
	sub, err := c.nc.Subscribe(c.adminSubject(kind), func(m *nats.Msg) {
		slots <- struct{}{} // the NATS callback waits here while all slots work
		mu.Lock()
		defer mu.Unlock()
		if stopped { // a request delivered as stop ran: its requester times out
			<-slots
			return
		}
		working.Go(func() { // owned by ServeAdmin: stop waits for it
			defer func() { <-slots }()
			_ = m.Respond(fn(m.Data))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("admin requests %s: %w", kind, err)
	}
	if err := c.nc.Flush(); err != nil { // the server has the interest on return
		sub.Unsubscribe()
		return nil, fmt.Errorf("admin requests %s: %w", kind, err)
	}
	return func() {
		_ = sub.Unsubscribe()
		mu.Lock()
		stopped = true
		mu.Unlock()
		working.Wait()
	}, nil
}
