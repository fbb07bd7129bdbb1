package node

import (
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/query"
)

// route delivers one event from the stream to every local subscription of
// its subject. It runs on the consumer's goroutine only.
func (n *Node) route(ev *cluster.Event) {
	n.met.eventsReceived.Add(1)
	if len(ev.Data) > n.cfg.Limits.MaxEventBytes {
		n.met.eventsRejected.WithLabelValues("too_large").Inc()
		n.log.Warn("event rejected: payload too large", "subject", ev.Subject, "seq", ev.Seq, "bytes", len(ev.Data), "limit", n.cfg.Limits.MaxEventBytes)
		return
	}
	n.idx.mu.RLock()
	defer n.idx.mu.RUnlock()
	r := n.idx.subjects[ev.Subject]
	if r == nil {
		return
	}
	if !ev.Time.IsZero() {
		n.met.latency.Observe(time.Since(ev.Time).Seconds())
	}
	for _, g := range r.groups {
		payload, buf, ok := n.render(g.plan, ev, n.scratch[:0])
		n.scratch = buf[:0]
		if !ok {
			continue
		}
		var delivered uint64
		for _, s := range g.subs {
			if s.deliver(ev.Seq, payload) {
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
	data, ok, err := plan.Execute(buf, ev.Data)
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
