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
	n         *Node
	fan       *ws.Fanout
	scratch   []byte        // the projection buffer
	published []time.Time   // publish times of the events pushed since the last write pass, for the write latency
	traced    []tracedWrite // traced events pushed since the last write pass (Config.TracerProvider)
}

// maxPublished bounds router.published: past it, further events of the
// same pass are not observed (a pass comes at least every flushEvery
// events or ws.coalesce_delay, so this is only reached in bursts).
const maxPublished = 1024

func newRouter(n *Node) *router {
	r := &router{n: n, fan: n.wss.NewFanout()}
	r.fan.OnWrite(r.observeWritten)
	return r
}

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
	_, span, traced := n.traceRoute(ev) // false unless tracing is on and ev carries a traceparent
	var total uint64
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
		total += delivered
	}
	if total > 0 && !ev.Time.IsZero() && len(r.published) < maxPublished {
		r.published = append(r.published, ev.Time)
	}
	if traced {
		r.endRoute(span, len(rt.groups), total)
	}
}

// idle is the worker's call when it has nothing to route (see
// ws.Fanout.Idle). When its Fanout holds nothing either, the events it
// routed since its last write pass went out in other workers' passes: a
// subject moves between workers from turn to turn, and the first Fanout
// to push to a connection writes it. Their latency is observed now, when
// that write has happened or is at most ws.coalesce_delay away.
func (r *router) idle() time.Duration {
	d := r.fan.Idle()
	if d == 0 {
		r.observeWritten()
	}
	return d
}

// observeWritten runs after each of the Fanout's write passes: it records
// the write latency of the events pushed since the previous pass, once per
// event, not per subscriber. A connection held for coalescing is written
// in a later pass, so an event's latency is to the first write that
// carries it.
func (r *router) observeWritten() {
	if len(r.published) == 0 && len(r.traced) == 0 {
		return
	}
	now := time.Now()
	if len(r.traced) > 0 {
		r.traceWritten(now)
	}
	for _, t := range r.published {
		r.n.om.writeLatency.Observe(now.Sub(t).Seconds())
	}
	r.published = r.published[:0]
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
