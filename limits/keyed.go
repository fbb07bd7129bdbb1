package limits

import (
	"sync"
	"time"
)

// DefaultMaxKeys is the number of keys a Keyed tracks when MaxKeys is zero.
const DefaultMaxKeys = 100_000

// Keyed is a rate limiter with one token bucket per key: new subscriptions
// per user, new connections per IP. It protects the node from any one key
// running faster than its rate, while keeping memory bounded however many
// distinct keys it sees (an attacker can mint keys faster than it can be
// refused).
//
// Memory: at most MaxKeys buckets are tracked. When a new key arrives at the
// cap, Keyed forgets the key whose bucket holds the least state, that is the
// one that will be full again soonest. Keys whose bucket is already full go
// first: they carry no state at all, since a new bucket for the same key
// would also be full. If none is full, the key forgotten loses the least
// (its next request sees a full bucket, gaining at most the tokens it had
// spent). This is deliberately not least-recently-used: under LRU an
// attacker throttled on one key could flood MaxKeys fresh keys to push its
// own out and come back to a full bucket; here the flood keys, each with one
// token spent, are forgotten before any throttled key. Limits are exact for
// any set of at most MaxKeys keys. Finding the key to forget costs
// O(log MaxKeys) (a min-heap ordered by refill time), as does each Allow.
// Each tracked key costs about 140 bytes plus the key itself: 100,000 int
// keys take about 14 MiB.
//
// Configure Keyed through its fields before first use and do not change them
// afterwards. The zero Keyed admits nothing (zero rate). Keyed must not be
// copied after first use; its methods are safe for concurrent use.
type Keyed[K comparable] struct {
	// Rate is each key's refill rate in tokens per second (Inf: unlimited;
	// ≤ 0: admits nothing), unless RateFor overrides it.
	Rate float64
	// Burst is each key's bucket capacity, unless RateFor overrides it.
	Burst int
	// MaxKeys bounds the number of keys tracked. Zero or negative means
	// DefaultMaxKeys.
	MaxKeys int
	// RateFor, if not nil, returns the rate and burst for a key seen for the
	// first time (per-tenant overrides). A zero rate or burst means Rate or
	// Burst. It is called with Keyed's lock held, so it must be fast and
	// must not call back into this Keyed.
	RateFor func(K) (rate float64, burst int)

	mu sync.Mutex
	m  map[K]*keyedEntry[K]
	// heap holds the entries of m as a min-heap ordered by tat: heap[0] is
	// the bucket that will be full soonest (or already is). Each node keeps
	// a copy of its bucket's tat, refreshed under mu after every take, so
	// comparisons read the slice instead of chasing pointers.
	heap       []heapNode[K]
	fullEvicts uint64
	lossEvicts uint64
}

type heapNode[K comparable] struct {
	tat int64
	e   *keyedEntry[K]
}

type keyedEntry[K comparable] struct {
	b     Bucket
	key   K
	index int // position in Keyed.heap
}

// Allow takes one token from key's bucket. If it cannot, ok is false and
// retryAfter is how long until a token will be available (Never if the
// key's bucket admits nothing).
func (k *Keyed[K]) Allow(key K) (ok bool, retryAfter time.Duration) {
	return k.allowAt(key, time.Now(), 1)
}

// AllowN takes n tokens from key's bucket, as Allow takes one; retryAfter
// is how long until n tokens will be available.
func (k *Keyed[K]) AllowN(key K, n int) (ok bool, retryAfter time.Duration) {
	return k.allowAt(key, time.Now(), n)
}

// Len returns the number of keys tracked.
func (k *Keyed[K]) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// Evictions returns how many keys were forgotten at the cap: full ones
// (harmless) and ones that still had state (each a key whose limit was
// partly reset; a steady rise means MaxKeys is too small for the live keys
// or the node is under a key flood).
func (k *Keyed[K]) Evictions() (full, lossy uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fullEvicts, k.lossEvicts
}

func (k *Keyed[K]) allowAt(key K, now time.Time, n int) (bool, time.Duration) {
	t := nanos(now)
	k.mu.Lock()
	defer k.mu.Unlock()
	if e := k.m[key]; e != nil {
		ok, wait := e.b.takeAt(t, n)
		if ok {
			k.heap[e.index].tat = e.b.tat.Load()
			k.downLocked(e.index) // tat grew
		}
		return ok, wait
	}
	e := k.newEntryLocked(key, t)
	ok, wait := e.b.takeAt(t, n)
	k.pushLocked(e)
	return ok, wait
}

// newEntryLocked returns a full bucket for key, not yet in m or the heap,
// forgetting other keys first if at the cap.
func (k *Keyed[K]) newEntryLocked(key K, now int64) *keyedEntry[K] {
	if k.m == nil {
		k.m = make(map[K]*keyedEntry[K])
	}
	limit := k.MaxKeys
	if limit <= 0 {
		limit = DefaultMaxKeys
	}
	var e *keyedEntry[K]
	for len(k.m) >= limit {
		e = k.popLocked()
		if e.b.fullAt(now) {
			k.fullEvicts++
		} else {
			k.lossEvicts++
		}
		delete(k.m, e.key)
	}
	if e == nil {
		e = new(keyedEntry[K])
	}
	rate, burst := k.Rate, k.Burst
	if k.RateFor != nil {
		r, b := k.RateFor(key)
		if r != 0 {
			rate = r
		}
		if b != 0 {
			burst = b
		}
	}
	e.b.Init(rate, burst)
	e.key = key
	return e
}

func (k *Keyed[K]) pushLocked(e *keyedEntry[K]) {
	k.m[e.key] = e
	e.index = len(k.heap)
	k.heap = append(k.heap, heapNode[K]{tat: e.b.tat.Load(), e: e})
	k.upLocked(e.index)
}

func (k *Keyed[K]) popLocked() *keyedEntry[K] {
	h := k.heap
	last := len(h) - 1
	e := h[0].e
	h[0] = h[last]
	h[0].e.index = 0
	h[last] = heapNode[K]{}
	k.heap = h[:last]
	k.downLocked(0)
	return e
}

// upLocked moves heap[i] up to its place, shifting parents down into the
// hole rather than swapping (half the writes).
func (k *Keyed[K]) upLocked(i int) {
	h := k.heap
	n := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if h[p].tat <= n.tat {
			break
		}
		h[i] = h[p]
		h[i].e.index = i
		i = p
	}
	h[i] = n
	n.e.index = i
}

// downLocked moves heap[i] down to its place, shifting children up into the
// hole.
func (k *Keyed[K]) downLocked(i int) {
	h := k.heap
	if i >= len(h) {
		return
	}
	n := h[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && h[r].tat < h[c].tat {
			c = r
		}
		if n.tat <= h[c].tat {
			break
		}
		h[i] = h[c]
		h[i].e.index = i
		i = c
	}
	h[i] = n
	n.e.index = i
}
