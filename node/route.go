package node

import (
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// router is one routing worker's state (see scheduler): it pushes events
// to the local subscriptions of their subject through the worker's
// ws.Fanout, which decides when each connection is written. Only its
// worker goroutine uses it.
type router struct {
	n       *Node
	fan     *ws.Fanout
	scratch []byte // the projection buffer
}

func newRouter(n *Node) *router { return &router{n: n, fan: n.wss.NewFanout()} }

// route pushes ev to every local subscription of its subject.
func (r *router) route(ev *cluster.Event) {
	r.n.routeEvent(r, ev)
	r.fan.Routed()
}

// dispatch is the consumer's handler: it drops what no local subscription
// wants and hands the rest to the routing workers, by subject.
func (n *Node) dispatch(ev *cluster.Event) {
	n.met.eventsReceived.Add(1)
	if len(ev.Data) > n.cfg.Limits.MaxEventBytes {
		n.met.eventsRejected.WithLabelValues("too_large").Inc()
		n.log.Warn("event rejected: payload too large", "subject", ev.Subject, "seq", ev.Seq, "bytes", len(ev.Data), "limit", n.cfg.Limits.MaxEventBytes)
		return
	}
	if !n.idx.has(ev.Subject) {
		return
	}
	n.sched.dispatch(ev)
}

func (n *Node) routeEvent(r *router, ev *cluster.Event) {
	n.idx.mu.RLock()
	defer n.idx.mu.RUnlock()
	rt := n.idx.subjects[ev.Subject]
	if rt == nil {
		return
	}
	if !ev.Time.IsZero() {
		n.met.latency.Observe(time.Since(ev.Time).Seconds())
	}
	for _, g := range rt.groups {
		payload, buf, ok := n.render(g.plan, ev, r.scratch[:0])
		r.scratch = buf[:0]
		if !ok {
			continue
		}
		var delivered uint64
		for _, s := range g.subs {
			if s.deliver(r.fan, ev.Seq, payload) {
				delivered++
			}
		}
		n.met.delivered.Add(delivered)
	}
}

// render filters and projects ev for plan and encodes the `next` payload
// {"data":…,"extensions":{"cursor":…}} once; the result is shared by every
// subscriber of the plan and never modified after. ok is false when the
// event does not match or is invalid. buf is scratch space for the
// projection; it is returned, possibly grown, for reuse.
func (n *Node) render(plan *query.Plan, ev *cluster.Event, buf []byte) (payload, scratch []byte, ok bool) {
	data, ok, replaced, err := plan.ExecuteCounted(buf, ev.Data)
	if replaced {
		n.met.textReplaced.Add(1)
	}
	if err != nil {
		n.met.eventsRejected.WithLabelValues("invalid").Inc()
		n.log.Debug("event rejected", "subject", ev.Subject, "seq", ev.Seq, "err", err)
		return nil, buf, false
	}
	if !ok {
		return nil, buf, false
	}
	n.met.encodes.Add(1)
	return encodeNext(data, ev.Cursor), data, true
}

const (
	nextHead   = `{"data":`
	nextCursor = `,"extensions":{"cursor":"`
	nextTail   = `"}}`
)

// encodeNext builds {"data":<data>,"extensions":{"cursor":"<cursor>"}}.
// The cursor is URL-safe base64 (cluster.Cursor), so it needs no escaping.
func encodeNext(data []byte, cursor string) []byte {
	p := make([]byte, 0, len(nextHead)+len(data)+len(nextCursor)+len(cursor)+len(nextTail))
	p = append(p, nextHead...)
	p = append(p, data...)
	p = append(p, nextCursor...)
	p = append(p, cursor...)
	return append(p, nextTail...)
}
