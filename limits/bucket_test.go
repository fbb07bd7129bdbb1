package limits

import (
	"math"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countAllowed calls allowAt n times at one instant and returns how many
// were admitted.
func countAllowed(b *Bucket, now time.Time, n int) int {
	got := 0
	for range n {
		if b.allowAt(now, 1) {
			got++
		}
	}
	return got
}

// The regression test for the old limiter: at a fixed instant, exactly burst
// checks pass however many are made.
func TestBucketFixedInstantAdmitsExactlyBurst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"burst 1", 100, 1},
		{"event default 100/s burst 100", 100, 100},
		{"subscribe default 50/min burst 50", Per(50, time.Minute), 50},
		{"slow 1/h burst 7", Per(1, time.Hour), 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBucket(tc.rate, tc.burst)
			if got := countAllowed(b, t0, tc.burst+150); got != tc.burst {
				t.Fatalf("admitted %d of %d rapid checks, want exactly burst %d", got, tc.burst+150, tc.burst)
			}
			if b.allowAt(t0, 1) {
				t.Fatal("admitted after the burst was spent")
			}
		})
	}
}

// allower is how a caller holding the limiter behind an interface sees it;
// the state must persist across calls through it.
type allower interface{ allowAt(time.Time, int) bool }

func checkThrough(a allower, now time.Time) bool { return a.allowAt(now, 1) }

func TestBucketStateSharedAcrossCalls(t *testing.T) {
	b := NewBucket(10, 3)
	var a allower = b
	holder := struct{ b *Bucket }{b}
	got := 0
	for i := range 200 {
		// Alternate paths: interface, struct field, direct pointer. A by-value
		// limiter would reset on every path; a shared one admits 3 in total.
		var ok bool
		switch i % 3 {
		case 0:
			ok = checkThrough(a, t0)
		case 1:
			ok = holder.b.allowAt(t0, 1)
		default:
			ok = b.allowAt(t0, 1)
		}
		if ok {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("admitted %d, want 3", got)
	}
}

// The never-copy rule is enforced by `go vet`: copying any limiter is a
// copylocks error. This keeps the noCopy guards from being removed.
func TestLimiterCopyIsVetError(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go vet")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to check that vet reports limiter copies: %v", err)
	}
	out, err := exec.Command(goBin, "vet", "./testdata/copycheck").CombinedOutput()
	if err == nil {
		t.Fatalf("go vet accepted limiters passed by value:\n%s", out)
	}
	for _, fn := range []string{"allowByValue", "capByValue", "keyedByValue"} {
		if !strings.Contains(string(out), fn+" passes lock by value") {
			t.Errorf("go vet did not report %s copying a limiter; output:\n%s", fn, out)
		}
	}
}

func TestBucketHasNoCopyGuard(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[Bucket](), reflect.TypeFor[Cap](), reflect.TypeFor[Ticket]()} {
		if f := typ.Field(0); f.Type != reflect.TypeFor[noCopy]() {
			t.Errorf("%v: first field is %v, want noCopy", typ, f.Type)
		}
	}
}

func TestBucketRefillIsExact(t *testing.T) {
	b := NewBucket(100, 10) // one token every 10ms
	if got := countAllowed(b, t0, 20); got != 10 {
		t.Fatalf("initial burst: admitted %d, want 10", got)
	}
	steps := []struct {
		at   time.Duration
		want int
	}{
		{10 * time.Millisecond, 1}, // exactly one more after one interval
		{10 * time.Millisecond, 0},
		{15 * time.Millisecond, 0}, // half a token
		{20 * time.Millisecond, 1}, // two halves make one
		{29*time.Millisecond + 999*time.Microsecond, 0},
		{30 * time.Millisecond, 1},
		{time.Hour, 10}, // refill stops at burst
	}
	for _, s := range steps {
		if got := countAllowed(b, at(s.at), 50); got != s.want {
			t.Fatalf("at +%v: admitted %d, want %d", s.at, got, s.want)
		}
	}
}

// Many tiny steps accumulate exactly: no float drift.
func TestBucketFractionalAccumulation(t *testing.T) {
	b := NewBucket(100, 1)
	if !b.allowAt(t0, 1) {
		t.Fatal("first check refused")
	}
	now := t0
	admitted := 0
	for i := 1; i <= 100_000; i++ { // 100,000 steps of 1µs = 100ms = 10 tokens
		now = now.Add(time.Microsecond)
		if b.allowAt(now, 1) {
			admitted++
			if i%10_000 != 0 {
				t.Fatalf("token at step %d, want only at multiples of 10,000", i)
			}
		}
	}
	if admitted != 10 {
		t.Fatalf("admitted %d over 100ms at 100/s, want 10", admitted)
	}
}

func TestBucketPerMinuteIsExact(t *testing.T) {
	b := NewBucket(Per(50, time.Minute), 50)
	countAllowed(b, t0, 50)
	if b.allowAt(at(1199*time.Millisecond), 1) {
		t.Fatal("token before 1.2s")
	}
	if !b.allowAt(at(1200*time.Millisecond), 1) {
		t.Fatal("no token at 1.2s (50/min)")
	}
	if got := countAllowed(b, at(time.Minute+1200*time.Millisecond), 100); got != 50 {
		t.Fatalf("after one minute admitted %d, want 50", got)
	}
}

func TestBucketAllowNBoundaries(t *testing.T) {
	const burst = 10
	for _, tc := range []struct {
		name string
		n    int
		want bool
	}{
		{"zero", 0, true},
		{"negative", -1, false},
		{"burst-1", burst - 1, true},
		{"burst", burst, true},
		{"burst+1", burst + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBucket(1, burst)
			if got := b.allowAt(t0, tc.n); got != tc.want {
				t.Fatalf("AllowN(%d) on a full bucket of %d = %v, want %v", tc.n, burst, got, tc.want)
			}
		})
	}
	t.Run("takes nothing when refused", func(t *testing.T) {
		b := NewBucket(1, burst)
		b.allowAt(t0, burst-1)
		if b.allowAt(t0, 2) {
			t.Fatal("took 2 with 1 left")
		}
		if !b.allowAt(t0, 1) {
			t.Fatal("refused 1 with 1 left: a refused AllowN consumed tokens")
		}
	})
}

func TestBucketRetryAfter(t *testing.T) {
	b := NewBucket(100, 2)
	now := nanos(t0)
	if got := b.retryAfterAt(now, 1); got != 0 {
		t.Fatalf("full bucket: RetryAfter = %v, want 0", got)
	}
	b.allowAt(t0, 2)
	if got := b.retryAfterAt(now, 1); got != 10*time.Millisecond {
		t.Fatalf("empty: RetryAfter = %v, want 10ms", got)
	}
	if got := b.retryAfterAt(nanos(at(4*time.Millisecond)), 1); got != 6*time.Millisecond {
		t.Fatalf("after 4ms: RetryAfter = %v, want 6ms", got)
	}
	if got := b.retryAfterAt(now, 2); got != 20*time.Millisecond {
		t.Fatalf("2 tokens: RetryAfter = %v, want 20ms", got)
	}
	if got := b.retryAfterAt(now, 3); got != Never {
		t.Fatalf("more than burst: RetryAfter = %v, want Never", got)
	}
	if ok, wait := b.takeAt(now, 1); ok || wait != 10*time.Millisecond {
		t.Fatalf("takeAt on empty = %v, %v; want false, 10ms", ok, wait)
	}
}

func TestBucketTokens(t *testing.T) {
	b := NewBucket(100, 10)
	if got := b.tokensAt(nanos(t0)); got != 10 {
		t.Fatalf("new bucket has %v tokens, want 10", got)
	}
	b.allowAt(t0, 10)
	if got := b.tokensAt(nanos(at(25 * time.Millisecond))); got != 2.5 {
		t.Fatalf("after 25ms: %v tokens, want 2.5", got)
	}
}

func TestBucketSpecialValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     *Bucket
		allow bool
		retry time.Duration
	}{
		{"zero value", new(Bucket), false, Never},
		{"zero rate", NewBucket(0, 5), false, Never},
		{"negative rate", NewBucket(-1, 5), false, Never},
		{"NaN rate", NewBucket(math.NaN(), 5), false, Never},
		{"zero burst", NewBucket(100, 0), false, Never},
		{"unlimited", NewBucket(Inf, 0), true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 1000 {
				if got := tc.b.allowAt(t0, 1); got != tc.allow {
					t.Fatalf("allow = %v, want %v", got, tc.allow)
				}
			}
			if got := tc.b.retryAfterAt(nanos(t0), 1); got != tc.retry {
				t.Fatalf("RetryAfter = %v, want %v", got, tc.retry)
			}
		})
	}
	t.Run("huge rate and burst do not overflow", func(t *testing.T) {
		b := NewBucket(1e18, math.MaxInt)
		if !b.allowAt(t0, 1<<40) || b.allowAt(t0, 1) {
			t.Fatal("clamped bucket misbehaves")
		}
		b = NewBucket(1e-15, 3)
		if got := countAllowed(b, t0, 10); got != 3 {
			t.Fatalf("tiny rate admitted %d, want 3", got)
		}
	})
}

// Init resets a bucket in place: a Bucket embedded in another struct needs
// no allocation of its own.
func TestBucketInitInPlace(t *testing.T) {
	var sub struct {
		id     int
		events Bucket
	}
	sub.events.Init(100, 2)
	if got := countAllowed(&sub.events, t0, 5); got != 2 {
		t.Fatalf("admitted %d, want 2", got)
	}
	sub.events.Init(100, 3)
	if got := countAllowed(&sub.events, t0, 5); got != 3 {
		t.Fatalf("after re-Init admitted %d, want 3", got)
	}
}

// Real clock, through the exported methods.
func TestBucketRealClock(t *testing.T) {
	b := NewBucket(Per(1, time.Hour), 3)
	if !b.Allow() || !b.AllowN(2) || b.Allow() {
		t.Fatal("want exactly 3 tokens")
	}
	if d := b.RetryAfter(); d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("RetryAfter = %v, want about 1h", d)
	}
	if b.Tokens() >= 1 || b.Burst() != 3 {
		t.Fatalf("Tokens = %v, Burst = %d", b.Tokens(), b.Burst())
	}
}

// 1,000 goroutines at a frozen instant never get more than the burst.
func TestBucketConcurrentFrozenClock(t *testing.T) {
	const burst = 100
	b := NewBucket(1, burst)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 1000 {
		wg.Go(func() {
			<-start
			for range 5 {
				if b.allowAt(t0, 1) {
					admitted.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != burst {
		t.Fatalf("admitted %d, want exactly %d", got, burst)
	}
}

// Concurrent callers on a moving clock never exceed burst + rate × elapsed.
func TestBucketConcurrentMovingClock(t *testing.T) {
	b := NewBucket(1000, 10) // 1 token per ms
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Go(func() {
			for i := range 200 {
				// Instants spread over 0..100ms, interleaved across goroutines.
				now := at(time.Duration((i*50+g)%10_000) * 10 * time.Microsecond)
				if b.allowAt(now, 1) {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got > 10+100 {
		t.Fatalf("admitted %d over 100ms at 1000/s burst 10, want ≤ 110", got)
	}
}

func TestBucketAllowDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race")
	}
	b := NewBucket(100, 100)
	if n := testing.AllocsPerRun(1000, func() { b.Allow() }); n != 0 {
		t.Fatalf("Allow allocates %v times per call, want 0", n)
	}
}

func TestPer(t *testing.T) {
	for _, tc := range []struct {
		n    int
		d    time.Duration
		want float64
	}{
		{100, time.Second, 100},
		{50, time.Minute, 50.0 / 60},
		{5, 10 * time.Second, 0.5},
		{1, 0, 0},
		{1, -time.Second, 0},
	} {
		if got := Per(tc.n, tc.d); got != tc.want {
			t.Errorf("Per(%d, %v) = %v, want %v", tc.n, tc.d, got, tc.want)
		}
	}
}

// BenchmarkBucketAllow measures the per-event path: one subscription's
// bucket checked for each event, mostly refused (100/s, burst 100). It must
// report 0 allocs/op.
func BenchmarkBucketAllow(b *testing.B) {
	bk := NewBucket(100, 100)
	b.ReportAllocs()
	for b.Loop() {
		bk.Allow()
	}
}

// BenchmarkBucketAllowParallel measures one bucket contended by all procs
// (the worst case: normally each subscription has its own).
func BenchmarkBucketAllowParallel(b *testing.B) {
	bk := NewBucket(1e6, 1000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Allow()
		}
	})
}
