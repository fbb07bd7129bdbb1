package node

import (
	"runtime"
	"sync"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/query"
)

// route queues one event from the stream for every local subscription of
// its subject; flush then writes what was queued. Both run on the
// consumer's goroutine only: flush once the consumer has routed every
// event received so far (idle) and WriteDelay has passed since the last
// flush, or after flushEvery events whatever the delay.
func (n *Node) route(ev *cluster.Event) {
	n.routeEvent(ev)
	n.unflushed++
	if n.unflushed >= n.flushEvery {
		n.flush()
	}
}

// idle is the consumer's idle hook: it flushes, or, while WriteDelay has
// not passed since the last flush, asks to be called again when it has.
func (n *Node) idle() time.Duration {
	if n.unflushed == 0 {
		return 0
	}
	if n.cfg.WriteDelay > 0 {
		if wait := n.cfg.WriteDelay - time.Since(n.lastFlush); wait > 0 {
			return wait
		}
	}
	n.flush()
	return 0
}

func (n *Node) routeEvent(ev *cluster.Event) {
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
			queued, flush := s.deliver(ev.Seq, payload)
			if queued {
				delivered++
			}
			if flush {
				n.dirty = append(n.dirty, s.ws)
			}
		}
		n.met.delivered.Add(delivered)
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
func (n *Node) flush() {
	n.unflushed = 0
	if n.cfg.WriteDelay > 0 {
		n.lastFlush = time.Now()
	}
	dirty := n.dirty
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
	n.dirty = dirty[:0]
	n.met.flushes.Add(1)
	n.met.flushedConns.Add(uint64(len(dirty)))
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
