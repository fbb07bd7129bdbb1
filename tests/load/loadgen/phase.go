//go:build linux

package loadgen

import (
	"math"
	"sync/atomic"
	"time"
)

// counter is an atomic counter spread over cache lines, because every
// reader goroutine adds to it for every event.
type counter struct {
	shards [16]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (c *counter) add(shard int, n uint64) { c.shards[uint(shard)%16].n.Add(n) }

func (c *counter) load() uint64 {
	var n uint64
	for i := range c.shards {
		n += c.shards[i].n.Load()
	}
	return n
}

// unset marks a room that published nothing in a phase (yet).
const unset = math.MaxUint64

// phase is one measured window: the events each room published in it are
// the sequence range [start, end], and every event a subscriber receives
// is counted in the phase its sequence belongs to, whenever it arrives.
// So an event published at the end of a window and delivered after it
// still counts for that window, and the drain that follows decides what
// was lost.
type phase struct {
	name    string
	offered float64 // events/s asked for

	start []atomic.Uint64 // per room: first sequence in the phase, or unset
	end   []atomic.Uint64 // per room: last sequence, or unset while open
	// pubFailed per room: publishes that JetStream did not acknowledge;
	// they are left out of the expected count.
	pubFailed []atomic.Uint64

	latency   *Histogram
	delivered counter // unique in-phase events received
	dups      counter
	reorders  counter
	skipped   counter // sequences jumped over (a gap's size), seen by subscribers
	dropped   counter // extensions.dropped reported by the node

	published, pubErrors atomic.Uint64
	pubUnconfirmed       atomic.Uint64 // publishes with no answer, still expected
	began                time.Time
}

func newPhase(name string, offered float64, rooms int) *phase {
	p := &phase{
		name:      name,
		offered:   offered,
		start:     make([]atomic.Uint64, rooms),
		end:       make([]atomic.Uint64, rooms),
		pubFailed: make([]atomic.Uint64, rooms),
		latency:   NewHistogram(),
	}
	for i := range p.start {
		p.start[i].Store(unset)
		p.end[i].Store(unset)
	}
	return p
}

// holds reports whether seq of room belongs to p.
func (p *phase) holds(room int, seq uint64) (in, before bool) {
	s := p.start[room].Load()
	if seq < s {
		return false, true
	}
	return seq <= p.end[room].Load(), false
}

// expected is the number of deliveries a complete phase owes: each room's
// acknowledged events times the subscriptions on that room.
func (p *phase) expected(subsPerRoom []int64) uint64 {
	var n uint64
	for r := range p.start {
		s, e := p.start[r].Load(), p.end[r].Load()
		if s == unset || e == unset || e < s {
			continue
		}
		ok := e - s + 1 - min(p.pubFailed[r].Load(), e-s+1)
		n += ok * uint64(subsPerRoom[r])
	}
	return n
}

// phases is the list clients classify events against, newest last. It is
// replaced, never changed in place, so readers load it without a lock.
type phases struct{ list atomic.Pointer[[]*phase] }

func (ps *phases) add(p *phase) {
	old := ps.list.Load()
	var next []*phase
	if old != nil {
		next = append(next, (*old)...)
	}
	next = append(next, p)
	ps.list.Store(&next)
}

// find returns the phase holding seq of room, or nil (warm-up gaps,
// events between phases).
func (ps *phases) find(room int, seq uint64) *phase {
	l := ps.list.Load()
	if l == nil {
		return nil
	}
	for i := len(*l) - 1; i >= 0; i-- {
		p := (*l)[i]
		in, before := p.holds(room, seq)
		if in {
			return p
		}
		if !before {
			return nil // after this phase's end: between phases
		}
	}
	return nil
}
