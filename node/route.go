package node

import (
	"runtime"
	"sync"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/query"
)

// router is one routing worker's state (see scheduler): it queues events
// for the local subscriptions of their subject, and flush writes what it
// queued. Only its worker goroutine uses it.
type router struct {
	n         *Node
	scratch   []byte        // the projection buffer
	dirty     []sink        // subscriptions whose connection awaits a Flush
	unflushed int           // events routed since the last flush
	first     time.Time     // when the first of them was routed
	lastFlush time.Time     // kept when WriteDelay is set
	published []time.Time   // publish times of the events queued since the last flush, for the write latency
	traced    []tracedWrite // traced events queued since the last flush (Config.TracerProvider)
}

func newRouter(n *Node) *router { return &router{n: n} }

// route queues ev for every local subscription of its subject, and
// flushes after flushEvery events whatever the write delay.
func (r *router) route(ev *cluster.Event) {
	r.n.routeEvent(r, ev)
	if r.unflushed == 0 {
		r.first = time.Now()
	}
	r.unflushed++
	if r.unflushed >= r.n.flushEvery {
		r.flush()
	}
}

// idle runs when the worker has no event to route: it flushes, or, while
// WriteDelay has not passed since the last flush, returns how long until
// it has (the worker calls it again then, unless an event comes first).
func (r *router) idle() time.Duration {
	if r.unflushed == 0 {
		return 0
	}
	if d := r.n.cfg.WriteDelay; d > 0 {
		if wait := d - time.Since(r.lastFlush); wait > 0 {
			return wait
		}
	}
	r.flush()
	return 0
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
			queued, flush := s.deliver(ev.Seq, payload)
			if queued {
				delivered++
			}
			if flush {
				r.dirty = append(r.dirty, s.ws)
			}
		}
		n.met.delivered.Add(delivered)
		total += delivered
	}
	if total > 0 && !ev.Time.IsZero() {
		r.published = append(r.published, ev.Time) // at most flushEvery: flush empties it
	}
	if traced {
		r.endRoute(span, len(rt.groups), total)
	}
}

// flushShard is the least number of connections worth a flush goroutine
// of their own.
const flushShard = 128

// flush writes the frames route queued: once per connection, however many
// events and subscriptions it was queued since the last flush (see
// ws.Conn.Flush). Writing is most of the cost of a delivery — a write(2)
// per connection — so the connections are split among up to GOMAXPROCS
// goroutines, which flush waits for: meanwhile events accumulate, and the
// next flush writes more of them per syscall.
func (r *router) flush() {
	n := r.n
	r.unflushed = 0
	if n.cfg.WriteDelay > 0 {
		r.lastFlush = time.Now()
	}
	defer r.observeWritten()
	dirty := r.dirty
	if len(dirty) == 0 {
		return
	}
	shards := min(runtime.GOMAXPROCS(0), len(dirty)/flushShard)
	if shards > 1 {
		var wg sync.WaitGroup
		size := (len(dirty) + shards - 1) / shards
		for i := size; i < len(dirty); i += size {
			part := dirty[i:min(i+size, len(dirty))]
			wg.Go(func() { flushSinks(part) }) // waited for below
		}
		flushSinks(dirty[:size])
		wg.Wait()
	} else {
		flushSinks(dirty)
	}
	clear(dirty) // drop the references: connections come and go
	r.dirty = dirty[:0]
	n.met.flushes.Add(1)
	n.met.flushedConns.Add(uint64(len(dirty)))
}

// observeWritten records the write latency of the events the round just
// wrote: once per event, not per subscriber.
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

func flushSinks(sinks []sink) {
	for _, s := range sinks {
		s.Flush()
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
