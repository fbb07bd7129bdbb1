package limits

import (
	"math"
	"sync/atomic"
	"time"
)

// Inf is the rate of a Bucket that admits everything.
var Inf = math.Inf(1)

// Never is the retry-after of a request that no amount of waiting will
// admit: the bucket admits nothing (rate ≤ 0, burst ≤ 0, the zero Bucket) or
// the request needs more tokens than the burst.
const Never = time.Duration(math.MaxInt64)

const (
	// fullTAT is the theoretical arrival time of a full bucket: far enough
	// in the past that max(tat, now) is now for any instant we will see.
	fullTAT = -1 << 62
	// maxTau bounds burst × interval so that tat arithmetic cannot overflow.
	maxTau = 1 << 61
	// maxBurst bounds the burst; larger values are clamped.
	maxBurst = 1 << 40
)

// epoch anchors bucket state: instants are kept as nanoseconds since epoch,
// measured on the monotonic clock when the instant carries a monotonic
// reading (time.Now does), on the wall clock otherwise (fake test clocks).
var epoch = time.Now()

func nanos(t time.Time) int64 { return int64(t.Sub(epoch)) }

// Per returns the rate, in tokens per second, of n tokens every d:
// Per(50, time.Minute) is 50 per minute. It returns 0 if d ≤ 0.
func Per(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Bucket is a token bucket: it holds at most burst tokens, gains rate tokens
// per second, and each admitted request takes tokens from it. A new bucket
// is full. It protects one stream of work from running faster than rate on
// average and burst at once; on the per-event path it is one subscription's
// event budget.
//
// A Bucket must be used by pointer only. Copying one copies its state, and
// every check against a copy sees the bucket as it was when copied (the old
// rate limiter's bug: a full bucket each time). The embedded noCopy guard
// makes `go vet` report copies. To avoid a separate allocation, embed a
// Bucket in a struct that is itself used by pointer and call Init.
//
// The zero Bucket admits nothing. All methods are safe for concurrent use
// once Init or NewBucket has returned; Allow does not allocate and does not
// lock (one compare-and-swap on a single word).
//
// The implementation is the generic cell rate algorithm, which is exactly a
// token bucket: the state is the instant at which the bucket will be full
// again (tat), held in nanoseconds, so refill is exact integer arithmetic
// with no drift from accumulating fractions.
type Bucket struct {
	_ noCopy

	// tat is the theoretical arrival time: the instant (ns since epoch) at
	// which the bucket will be full again. tat ≤ now means full.
	tat atomic.Int64

	// Set by Init, read-only afterwards.
	interval  int64 // ns per token
	tau       int64 // burst × interval: how far tat may run ahead of now
	burst     int64
	unlimited bool
}

// NewBucket returns a full bucket holding at most burst tokens and gaining
// rate tokens per second. A rate of Inf admits everything. A rate ≤ 0 (or
// NaN) or a burst ≤ 0 admits nothing. A rate above 1e9/s is treated as
// 1e9/s; a burst above 2^40 is clamped.
func NewBucket(rate float64, burst int) *Bucket {
	b := new(Bucket)
	b.Init(rate, burst)
	return b
}

// Init sets the bucket's rate and burst, as NewBucket does, and fills it.
// It lets a Bucket live inside another struct without its own allocation.
// Init must not run concurrently with any other method of b.
func (b *Bucket) Init(rate float64, burst int) {
	*b = Bucket{} // reset in place: a composite literal is not a copy of live state
	b.tat.Store(fullTAT)
	switch {
	case math.IsInf(rate, 1):
		b.unlimited = true
		return
	case !(rate > 0) || burst <= 0: // !(rate > 0) also catches NaN
		return // admits nothing
	}
	bur := min(int64(burst), maxBurst)
	iv := math.Round(1e9 / rate)
	iv = max(iv, 1)
	iv = min(iv, float64(maxTau/bur))
	b.interval = int64(iv)
	b.burst = bur
	b.tau = bur * b.interval
}

// Allow takes one token if one is available now and reports whether it did.
func (b *Bucket) Allow() bool {
	ok, _ := b.takeAt(nanos(time.Now()), 1)
	return ok
}

// AllowN takes n tokens if n are available now and reports whether it did.
// AllowN(0) is true; a negative n, or n above the burst, is always false.
func (b *Bucket) AllowN(n int) bool {
	ok, _ := b.takeAt(nanos(time.Now()), n)
	return ok
}

// RetryAfter returns how long until one token is available: 0 if one is
// available now, Never if the bucket admits nothing.
func (b *Bucket) RetryAfter() time.Duration {
	return b.retryAfterAt(nanos(time.Now()), 1)
}

// Tokens returns the number of tokens available now (for metrics and tests;
// it may be stale by the time it returns).
func (b *Bucket) Tokens() float64 {
	return b.tokensAt(nanos(time.Now()))
}

// Burst returns the bucket's capacity in tokens.
func (b *Bucket) Burst() int { return int(b.burst) }

// allowAt is Allow at the given instant, for tests with an injected clock.
func (b *Bucket) allowAt(now time.Time, n int) bool {
	ok, _ := b.takeAt(nanos(now), n)
	return ok
}

// takeAt takes n tokens at instant now (ns since epoch) if they are
// available. If not, it takes nothing and returns how long until n tokens
// will be available (Never if never).
func (b *Bucket) takeAt(now int64, n int) (ok bool, wait time.Duration) {
	if b.unlimited {
		return true, 0
	}
	if n <= 0 {
		return n == 0, 0
	}
	if int64(n) > b.burst {
		return false, Never
	}
	need := int64(n) * b.interval
	for {
		tat := b.tat.Load()
		newTAT := max(tat, now) + need
		if over := newTAT - now - b.tau; over > 0 {
			return false, time.Duration(over)
		}
		if b.tat.CompareAndSwap(tat, newTAT) {
			return true, 0
		}
	}
}

// retryAfterAt returns how long after now n tokens will be available.
func (b *Bucket) retryAfterAt(now int64, n int) time.Duration {
	if b.unlimited || n <= 0 {
		return 0
	}
	if int64(n) > b.burst {
		return Never
	}
	over := max(b.tat.Load(), now) + int64(n)*b.interval - now - b.tau
	return time.Duration(max(over, 0))
}

// tokensAt returns the tokens available at instant now.
func (b *Bucket) tokensAt(now int64) float64 {
	if b.unlimited {
		return Inf
	}
	if b.burst == 0 {
		return 0
	}
	debt := max(b.tat.Load(), now) - now
	return float64(b.tau-debt) / float64(b.interval)
}

// fullAt reports whether the bucket is full at instant now, so forgetting it
// loses no state.
func (b *Bucket) fullAt(now int64) bool { return b.tat.Load() <= now }

// noCopy makes `go vet` (copylocks) report copies of the struct that embeds
// it; see https://golang.org/issues/8005#issuecomment-190753527. It has no
// size and no run-time cost.
type noCopy struct{}

// Lock is a no-op used by the copylocks check.
func (*noCopy) Lock() {}

// Unlock is a no-op used by the copylocks check.
func (*noCopy) Unlock() {}
