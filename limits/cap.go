package limits

import (
	"sync"
	"sync/atomic"
)

// Cap is a concurrency cap: at most Max holders at once (connections on the
// node, subscriptions on one connection). Acquire either takes a slot or
// refuses at once; it never waits.
//
// InUse is never negative: a Release without a matching Acquire is a bug in
// the caller, and Cap ignores it and counts it in Underflows (export that
// as a metric; it should stay zero) rather than panic in production or let
// the count drift so that the cap admits one holder too many forever. (An
// unmatched Release while slots are held cannot be told from a matched one
// and frees a slot early; Ticket makes double releases impossible.)
//
// The zero Cap admits nothing. Use it by pointer only (it holds a noCopy
// guard); embed it in a struct used by pointer and call Init to avoid an
// allocation. Its methods are safe for concurrent use after Init.
type Cap struct {
	_ noCopy

	max        int64 // < 0: unlimited; set by Init
	inUse      atomic.Int64
	underflows atomic.Uint64
}

// NewCap returns a cap admitting max holders at once. A negative max means
// unlimited (holders are still counted); zero admits nothing.
func NewCap(max int) *Cap {
	c := new(Cap)
	c.Init(max)
	return c
}

// Init sets the cap's maximum, as NewCap does, and empties it. It must not
// run concurrently with any other method of c.
func (c *Cap) Init(max int) {
	*c = Cap{} // reset in place: a composite literal is not a copy of live state
	c.max = int64(max)
}

// Acquire takes a slot if one is free and reports whether it did. Each true
// result must be matched by exactly one Release.
func (c *Cap) Acquire() bool {
	if c.max < 0 {
		c.inUse.Add(1)
		return true
	}
	for {
		n := c.inUse.Load()
		if n >= c.max {
			return false
		}
		if c.inUse.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release frees a slot taken by Acquire. A Release with no slot taken is
// ignored and counted in Underflows.
func (c *Cap) Release() {
	for {
		n := c.inUse.Load()
		if n <= 0 {
			c.underflows.Add(1)
			return
		}
		if c.inUse.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// AcquireTicket is Acquire returning a Ticket whose Release frees the slot
// exactly once, however many times it is called.
func (c *Cap) AcquireTicket() (*Ticket, bool) {
	if !c.Acquire() {
		return nil, false
	}
	return &Ticket{release: c.Release}, true
}

// InUse returns the number of slots taken; it is never negative.
func (c *Cap) InUse() int { return int(c.inUse.Load()) }

// Max returns the cap's maximum (negative: unlimited).
func (c *Cap) Max() int { return int(c.max) }

// Underflows returns how many Releases had no matching Acquire.
func (c *Cap) Underflows() uint64 { return c.underflows.Load() }

// KeyedCap is a concurrency cap per key, such as connections per user. A key
// is tracked only while it holds at least one slot: its entry is deleted
// when its count returns to zero, so memory is proportional to the slots
// held (which a global Cap bounds), not to the keys ever seen.
//
// Configure it through its fields before first use and do not change them
// afterwards. The zero KeyedCap admits nothing. It must not be copied after
// first use; its methods are safe for concurrent use. A Release without a
// matching Acquire is ignored and counted in Underflows, as with Cap.
type KeyedCap[K comparable] struct {
	// Max is the number of slots each key may hold at once, unless MaxFor
	// overrides it. Negative means unlimited; zero admits nothing.
	Max int
	// MaxFor, if not nil, returns the cap for a key (per-tenant overrides);
	// zero means Max. It is called with KeyedCap's lock held on every
	// Acquire, so it must be fast and must not call back into this KeyedCap.
	MaxFor func(K) int

	mu         sync.Mutex
	m          map[K]int
	underflows uint64
}

// Acquire takes a slot for key if it has one free and reports whether it
// did. Each true result must be matched by exactly one Release(key).
func (c *KeyedCap[K]) Acquire(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := c.Max
	if c.MaxFor != nil {
		if m := c.MaxFor(key); m != 0 {
			limit = m
		}
	}
	n := c.m[key]
	if limit >= 0 && n >= limit {
		return false
	}
	if c.m == nil {
		c.m = make(map[K]int)
	}
	c.m[key] = n + 1
	return true
}

// Release frees a slot key took with Acquire, and forgets key when it holds
// none. A Release with no slot taken is ignored and counted in Underflows.
func (c *KeyedCap[K]) Release(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch n := c.m[key]; {
	case n <= 0:
		c.underflows++
	case n == 1:
		delete(c.m, key)
	default:
		c.m[key] = n - 1
	}
}

// AcquireTicket is Acquire returning a Ticket whose Release frees the slot
// exactly once, however many times it is called.
func (c *KeyedCap[K]) AcquireTicket(key K) (*Ticket, bool) {
	if !c.Acquire(key) {
		return nil, false
	}
	return &Ticket{release: func() { c.Release(key) }}, true
}

// InUse returns the number of slots key holds.
func (c *KeyedCap[K]) InUse(key K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// Len returns the number of keys holding at least one slot.
func (c *KeyedCap[K]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Underflows returns how many Releases had no matching Acquire.
func (c *KeyedCap[K]) Underflows() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.underflows
}

// Ticket is one slot taken from a Cap or KeyedCap. Its Release frees the slot
// the first time it is called and does nothing afterwards, so both
// `defer t.Release()` and an early explicit Release are safe. A nil *Ticket's
// Release does nothing. Use it by pointer only.
type Ticket struct {
	_ noCopy

	released atomic.Bool
	release  func()
}

// Release frees the ticket's slot, once; later calls do nothing. It is safe
// for concurrent use.
func (t *Ticket) Release() {
	if t == nil || !t.released.CompareAndSwap(false, true) {
		return
	}
	t.release()
}
