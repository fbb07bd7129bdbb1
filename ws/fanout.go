package ws

import (
	"runtime"
	"sync"
	"time"
)

// Fanout is the write engine's API for a deliverer that sends each event
// to many subscriptions: it queues frames (Push) and decides when each
// connection is written (write rounds, coalescing), within the same byte
// budgets as every other frame. A deliverer pushes an event to all its
// subscribers, then calls Routed; when it has nothing more to push for now
// it calls Idle (and again after the duration Idle returns, unless it has
// pushed more meanwhile); when other work is waiting it calls Busy between
// two pieces of it.
//
// A round writes every connection pushed to since the last round once,
// whatever the number of events and subscriptions it got, with one
// non-blocking write(2) on the caller's goroutine (split over up to
// GOMAXPROCS goroutines for large rounds, which the round waits for);
// what a socket does not take goes to that connection's write goroutine.
// A round runs when the deliverer is idle, after flushEvery events (a
// quarter of Options.WriteQueue, at most 64), or when events have waited maxRoundHold while the deliverer is
// busy; Options.WriteDelay spaces rounds out.
//
// Coalescing (Options.CoalesceDelay): a connection written less than
// CoalesceDelay ago is not written in this round but held, and written
// once CoalesceDelay has passed since its last write, with every frame it
// got meanwhile. So a connection that receives events faster than one per
// CoalesceDelay gets several frames per write(2), and one that receives
// them more slowly is written at once, as without coalescing. A frame
// waits at most CoalesceDelay for a write (plus the deliverer's own delay
// in calling Idle or Busy), and a held connection's queue stays bounded by
// Options.WriteQueue and MaxQueuedBytes as always: past half of the queue
// its write goroutine writes at once.
//
// A Fanout is used by one goroutine at a time. Several Fanouts may push to
// the same connection: the first Push since a connection's last write
// makes that Fanout the one that writes it (or holds it).
type Fanout struct {
	opts       *Options
	stats      *flushStats  // the Server's
	now        func() int64 // monotonic nanoseconds; a test's clock
	flushEvery int          // a round runs at least every this many events

	dirty     []*Conn    // pushed to since the last round, not held
	held      []heldConn // waiting for their coalescing delay
	ready     []*Conn    // scratch: this round's connections to write
	events    int        // events routed since the last round
	first     int64      // when the first of them was routed (now)
	lastRound int64      // when the last round ran (now); kept when WriteDelay is set
	onWrite   func()     // after each write pass that wrote a connection (OnWrite)

	deflate deflateCache // the compressed bodies of the event being pushed (compress.go)
	sse     sseMetaCache // the sseMeta of the event's payloads pushed to SSE connections
	// zin, zout: bytes of the shared compressed messages pushed, before
	// and after, not yet added to stats (at the next write pass).
	zin, zout uint64
}

// heldConn is a connection whose write is held until due.
type heldConn struct {
	c   *Conn
	due int64
}

// Round bounds (see Fanout).
const (
	// maxRoundHold bounds how long a busy deliverer holds routed events
	// before writing them.
	maxRoundHold = 2 * time.Millisecond
	// flushShard is the least number of connections worth a goroutine of
	// their own in a round.
	flushShard = 128
)

// NewFanout returns a Fanout for one deliverer goroutine.
func (s *Server) NewFanout() *Fanout { return newFanout(&s.opts, &s.flushes) }

func newFanout(opts *Options, stats *flushStats) *Fanout {
	return &Fanout{
		opts:       opts,
		stats:      stats,
		now:        monotonic,
		flushEvery: max(1, min(64, opts.WriteQueue/4)),
	}
}

// OnWrite sets fn to run on f's goroutine after each write pass that
// wrote at least one connection (a round, or held connections becoming
// due): the deliverer's hook for what it measures at the socket write.
func (f *Fanout) OnWrite(fn func()) { f.onWrite = fn }

// Push queues a `next` frame whose payload is exactly payload (see
// Subscription.Next) for f's next write round. It never blocks, and
// reports what Next would: false if the subscription ended, the connection
// is closing, or its queue is full (which closes it as a slow consumer).
func (s *Subscription) Push(f *Fanout, payload []byte) bool {
	if s.state.Load() != subActive {
		return false
	}
	fr := frame{sub: s, payload: payload, kind: kindNext}
	switch {
	case s.conn.deflate == deflateShared:
		fr = f.sharedNext(s, payload)
	case s.conn.sseEvents:
		fr.sse = f.sse.meta(payload)
	}
	queued, first := s.conn.push(fr)
	if first {
		f.dirty = append(f.dirty, s.conn)
	}
	return queued
}

// sharedNext returns the `next` frame of payload for s, whose connection
// compresses without context takeover: its payload + "}" is compressed
// once per event for all such connections, and sent as it is below the
// threshold or when compressing does not pay.
func (f *Fanout) sharedNext(s *Subscription, payload []byte) frame {
	if len(s.prefix)+len(payload)+len(closingBrace) >= s.conn.opts.CompressionThreshold {
		if body := f.deflate.body(payload); body != nil {
			f.zin += uint64(len(s.prefix) + len(payload) + len(closingBrace))
			f.zout += uint64(storedLen(s.prefix) + len(body))
			return frame{sub: s, payload: body, kind: kindNextDeflated}
		}
	}
	return frame{sub: s, payload: payload, kind: kindNextPlain}
}

// Routed tells f that one event was pushed to all its subscribers. After
// flushEvery events a round runs, whatever the write delay.
func (f *Fanout) Routed() {
	f.deflate.reset() // the event's payloads may be let go
	f.sse.reset()
	if f.events == 0 {
		f.first = f.now()
	}
	f.events++
	if f.events >= f.flushEvery {
		f.round(f.now())
	}
}

// Busy is called between two pieces of a busy deliverer's work: it writes
// the routed events if they have waited maxRoundHold (or WriteDelay, when
// longer), and the held connections that are due.
func (f *Fanout) Busy() {
	now := f.now()
	if f.events > 0 && time.Duration(now-f.first) >= max(maxRoundHold, f.opts.WriteDelay) {
		f.round(now)
		return
	}
	if len(f.held) > 0 && f.heldDue(now) {
		f.writeHeld(now)
	}
}

// Idle is called when the deliverer has nothing to push: it writes what is
// due and returns how long until something held is due (0: nothing is).
// The deliverer calls it again after that long, unless it pushes again
// first (then it calls Routed, and Idle once idle again).
func (f *Fanout) Idle() time.Duration {
	now := f.now()
	if f.events > 0 || len(f.dirty) > 0 {
		if wait := f.opts.WriteDelay - time.Duration(now-f.lastRound); wait > 0 {
			// The next round waits for the write delay; held connections
			// that are due meanwhile do not.
			if f.heldDue(now) {
				f.writeHeld(now)
			}
			if due := f.nextDue(now); due > 0 {
				return min(wait, due)
			}
			return wait
		}
		f.round(now)
	} else if len(f.held) > 0 {
		f.writeHeld(now)
	}
	return f.nextDue(now)
}

// nextDue returns how long until the first held connection is due (at
// least 1ns), or 0 if none is held.
func (f *Fanout) nextDue(now int64) time.Duration {
	if len(f.held) == 0 {
		return 0
	}
	first := f.held[0].due
	for _, h := range f.held[1:] {
		first = min(first, h.due)
	}
	return max(time.Duration(first-now), time.Nanosecond)
}

// heldDue reports whether a held connection is due at now.
func (f *Fanout) heldDue(now int64) bool {
	for _, h := range f.held {
		if h.due <= now {
			return true
		}
	}
	return false
}

// round writes the connections pushed to since the last round, except
// those it holds for coalescing, and the held ones that are due.
func (f *Fanout) round(now int64) {
	f.events = 0
	if f.opts.WriteDelay > 0 {
		f.lastRound = now
	}
	delay := int64(f.opts.CoalesceDelay)
	ready := f.ready[:0]
	for _, c := range f.dirty {
		last := c.lastWrite.Load()
		if delay > 0 && last != 0 && now-last < delay {
			f.held = append(f.held, heldConn{c: c, due: last + delay})
			f.stats.holds.Add(1)
			continue
		}
		ready = append(ready, c)
	}
	clear(f.dirty) // drop the references: connections come and go
	f.dirty = f.dirty[:0]
	f.ready = f.takeDue(ready, now)
	f.write(now)
}

// writeHeld writes the held connections that are due.
func (f *Fanout) writeHeld(now int64) {
	f.ready = f.takeDue(f.ready[:0], now)
	f.write(now)
}

// takeDue moves the held connections due at now to ready.
func (f *Fanout) takeDue(ready []*Conn, now int64) []*Conn {
	kept := f.held[:0]
	for _, h := range f.held {
		if h.due <= now {
			ready = append(ready, h.c)
		} else {
			kept = append(kept, h)
		}
	}
	clear(f.held[len(kept):])
	f.held = kept
	return ready
}

// write writes f.ready: once per connection, split among up to GOMAXPROCS
// goroutines, which it waits for. Writing is most of the cost of a
// delivery — a write(2) per connection — and meanwhile events accumulate,
// so that the next round writes more of them per syscall.
func (f *Fanout) write(now int64) {
	// Once written, a payload is the caller's again (Subscription.Next):
	// its compressed body and sseMeta must not outlive the pass.
	f.deflate.reset()
	f.sse.reset()
	if f.zin != 0 {
		f.stats.zin.Add(f.zin)
		f.stats.zout.Add(f.zout)
		f.zin, f.zout = 0, 0
	}
	ready := f.ready
	if len(ready) == 0 {
		return
	}
	f.stats.rounds.Add(1)
	f.stats.roundConns.Add(uint64(len(ready)))
	shards := min(runtime.GOMAXPROCS(0), len(ready)/flushShard)
	if shards > 1 {
		var wg sync.WaitGroup
		size := (len(ready) + shards - 1) / shards
		for i := size; i < len(ready); i += size {
			part := ready[i:min(i+size, len(ready))]
			wg.Go(func() { f.flushConns(part, now) }) // waited for below
		}
		f.flushConns(ready[:size], now)
		wg.Wait()
	} else {
		f.flushConns(ready, now)
	}
	clear(ready)
	f.ready = ready[:0]
	if f.onWrite != nil {
		f.onWrite()
	}
}

// flushConns writes conns, with io_uring where it may (Options.IOUring).
func (f *Fanout) flushConns(conns []*Conn, now int64) {
	if f.opts.IOUring != IOUringOff && flushConnsURing(conns, now, f.stats, f.opts.Logger) {
		return
	}
	for _, c := range conns {
		c.lastWrite.Store(now)
		c.flush()
	}
}
