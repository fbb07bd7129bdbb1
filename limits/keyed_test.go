package limits

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func keyedCount[K comparable](k *Keyed[K], key K, now time.Time, n int) int {
	got := 0
	for range n {
		if ok, _ := k.allowAt(key, now, 1); ok {
			got++
		}
	}
	return got
}

// checkHeap verifies the heap invariant and that heap and map agree.
func checkHeap[K comparable](t *testing.T, k *Keyed[K]) {
	t.Helper()
	if len(k.heap) != len(k.m) {
		t.Fatalf("heap has %d entries, map %d", len(k.heap), len(k.m))
	}
	for i, n := range k.heap {
		if e := n.e; e.index != i || k.m[e.key] != e || n.tat != e.b.tat.Load() {
			t.Fatalf("entry %d misplaced or stale", i)
		}
		if i > 0 && n.tat < k.heap[(i-1)/2].tat {
			t.Fatalf("heap invariant broken at %d", i)
		}
	}
}

func TestKeyedFixedInstantAdmitsExactlyBurst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"burst 1", 1, 1},
		{"subscribe default", Per(50, time.Minute), 50},
		{"conn per IP default", 20, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &Keyed[string]{Rate: tc.rate, Burst: tc.burst}
			for _, key := range []string{"alice", "bob"} { // keys are independent
				if got := keyedCount(k, key, t0, tc.burst+150); got != tc.burst {
					t.Fatalf("%s: admitted %d, want %d", key, got, tc.burst)
				}
			}
			checkHeap(t, k)
		})
	}
}

func TestKeyedRetryAfter(t *testing.T) {
	k := &Keyed[string]{Rate: Per(50, time.Minute), Burst: 50}
	keyedCount(k, "u", t0, 50)
	ok, wait := k.allowAt("u", t0, 1)
	if ok || wait != 1200*time.Millisecond {
		t.Fatalf("51st subscribe = %v, retry after %v; want false, 1.2s", ok, wait)
	}
	if ok, wait = k.allowAt("u", at(wait), 1); !ok || wait != 0 {
		t.Fatalf("after waiting retryAfter = %v, %v; want true, 0", ok, wait)
	}
	if ok, wait = k.allowAt("v", t0, 51); ok || wait != Never {
		t.Fatalf("AllowN above burst = %v, %v; want false, Never", ok, wait)
	}
}

func TestKeyedRateFor(t *testing.T) {
	k := &Keyed[string]{
		Rate:  1,
		Burst: 5,
		RateFor: func(key string) (float64, int) {
			switch key {
			case "tight":
				return 1, 2
			case "wide":
				return 0, 20 // rate inherited
			case "unlimited":
				return Inf, 0
			case "blocked":
				return -1, 0
			}
			return 0, 0 // defaults
		},
	}
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"someone", 5},
		{"tight", 2},
		{"wide", 20},
		{"unlimited", 1000},
		{"blocked", 0},
	} {
		if got := keyedCount(k, tc.key, t0, 1000); got != tc.want {
			t.Errorf("%s: admitted %d, want %d", tc.key, got, tc.want)
		}
	}
	var zero Keyed[int]
	if ok, wait := zero.allowAt(1, t0, 1); ok || wait != Never {
		t.Errorf("zero Keyed admitted (%v, %v); want refused forever", ok, wait)
	}
}

func TestKeyedConcurrentOneKey(t *testing.T) {
	const burst = 50
	k := &Keyed[string]{Rate: 1, Burst: burst, MaxKeys: 64}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 1000 {
		wg.Go(func() {
			<-start
			for i := range 5 {
				if ok, _ := k.allowAt("hot", t0, 1); ok {
					admitted.Add(1)
				}
				// Churn other keys to exercise eviction concurrently; "hot"
				// holds the most state, so it is never the one evicted.
				k.allowAt("cold-"+strconv.Itoa(g*5+i), t0, 1)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != burst {
		t.Fatalf("admitted %d on one key, want exactly %d", got, burst)
	}
	if n := k.Len(); n > 64 {
		t.Fatalf("tracking %d keys, MaxKeys 64", n)
	}
	checkHeap(t, k)
}

func TestKeyedMaxKeysBoundaries(t *testing.T) {
	const limit = 3
	for _, tc := range []struct {
		keys      int
		wantLen   int
		wantLossy uint64
	}{
		{limit - 1, limit - 1, 0},
		{limit, limit, 0},
		{limit + 1, limit, 1},
	} {
		t.Run(strconv.Itoa(tc.keys)+" keys", func(t *testing.T) {
			k := &Keyed[int]{Rate: 1, Burst: 1, MaxKeys: limit}
			for i := range tc.keys {
				k.allowAt(i, t0, 1)
			}
			if got := len(k.m); got != tc.wantLen {
				t.Fatalf("Len = %d, want %d", got, tc.wantLen)
			}
			if _, lossy := k.Evictions(); lossy != tc.wantLossy {
				t.Fatalf("lossy evictions = %d, want %d", lossy, tc.wantLossy)
			}
			checkHeap(t, k)
		})
	}
	t.Run("default MaxKeys", func(t *testing.T) {
		k := &Keyed[int]{Rate: 1, Burst: 1}
		for i := range DefaultMaxKeys + 1 {
			k.allowAt(i, t0, 1)
		}
		if got := len(k.m); got != DefaultMaxKeys {
			t.Fatalf("Len = %d, want DefaultMaxKeys", got)
		}
	})
}

// Full buckets carry no state and go first, whatever their recency.
func TestKeyedEvictsFullFirst(t *testing.T) {
	k := &Keyed[string]{Rate: 1, Burst: 2, MaxKeys: 3}
	keyedCount(k, "hot", t0, 2) // empty: full again at +2s
	k.allowAt("x", at(time.Millisecond), 1)
	k.allowAt("y", at(2*time.Millisecond), 1)
	k.allowAt("hot", at(3*time.Millisecond), 0) // "hot" is now the most recent, x least
	// At +1.5s x and y are full again, hot is not.
	k.allowAt("z", at(1500*time.Millisecond), 1)
	k.allowAt("w", at(1500*time.Millisecond), 1)
	if _, ok := k.m["hot"]; !ok {
		t.Fatal("the only key with state was evicted")
	}
	if full, lossy := k.Evictions(); full != 2 || lossy != 0 {
		t.Fatalf("evictions full=%d lossy=%d, want 2 and 0", full, lossy)
	}
	if got := keyedCount(k, "hot", at(1500*time.Millisecond), 10); got != 1 {
		t.Fatalf("hot admitted %d at +1.5s, want 1 (state kept)", got)
	}
	checkHeap(t, k)
}

// The attack LRU eviction would lose: a throttled key pushed out by a flood
// of fresh keys comes back to a full bucket. Here it stays throttled.
func TestKeyedFloodDoesNotResetThrottledKey(t *testing.T) {
	const maxKeys = 1000
	k := &Keyed[string]{Rate: Per(1, time.Minute), Burst: 5, MaxKeys: maxKeys}
	if got := keyedCount(k, "attacker", t0, 100); got != 5 {
		t.Fatalf("attacker admitted %d, want 5", got)
	}
	now := t0
	for i := range 10 * maxKeys {
		now = now.Add(time.Microsecond)
		k.allowAt("flood-"+strconv.Itoa(i), now, 1)
		if len(k.m) > maxKeys {
			t.Fatalf("tracking %d keys, MaxKeys %d", len(k.m), maxKeys)
		}
	}
	if ok, wait := k.allowAt("attacker", now, 1); ok {
		t.Fatal("attacker's limit was reset by flooding fresh keys")
	} else if wait < 59*time.Second {
		t.Fatalf("attacker retry after %v, want about a minute", wait)
	}
	checkHeap(t, k)
}

// A flood of 1,000,000 distinct keys keeps the map at MaxKeys and the heap
// flat once the cap is reached.
func TestKeyedFloodMemoryBounded(t *testing.T) {
	const (
		keys    = 1_000_000
		maxKeys = 10_000 // the default cap is covered by TestKeyedMaxKeysBoundaries
	)
	for _, tc := range []struct {
		name      string
		keys      int
		step      time.Duration // clock advance per key
		wantLossy bool
	}{
		// Frozen clock: nothing refills, every eviction loses one token.
		{"frozen clock", keys, 0, true},
		// 10µs per key at 20/s: a key is full again 50ms (5,000 keys)
		// later, before the cap is reached, so evictions lose nothing.
		// (A quarter of the keys under -race, whose instrumentation makes
		// the O(log n) sift-downs of this case slow.)
		{"moving clock", keys / (1 + 3*btoi(raceEnabled)), 10 * time.Microsecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &Keyed[int]{Rate: 20, Burst: 40, MaxKeys: maxKeys}
			now := t0
			var base runtime.MemStats
			for i := range tc.keys {
				now = now.Add(tc.step)
				if ok, _ := k.allowAt(i, now, 1); !ok {
					t.Fatalf("fresh key %d refused", i)
				}
				if len(k.m) > maxKeys {
					t.Fatalf("after key %d: tracking %d keys, MaxKeys %d", i, len(k.m), maxKeys)
				}
				if i == maxKeys {
					runtime.GC()
					runtime.ReadMemStats(&base)
				}
			}
			var end runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&end)
			growth := int64(end.HeapInuse) - int64(base.HeapInuse)
			t.Logf("heap in use at cap %d KiB, after %d keys %d KiB", base.HeapInuse>>10, tc.keys, end.HeapInuse>>10)
			if growth > 4<<20 {
				t.Fatalf("heap grew %d KiB after the cap was reached, want ≤ 4 MiB", growth>>10)
			}
			full, lossy := k.Evictions()
			if want := uint64(tc.keys - maxKeys); full+lossy != want {
				t.Fatalf("evictions %d+%d, want %d", full, lossy, want)
			}
			if tc.wantLossy != (lossy > 0) {
				t.Fatalf("lossy evictions = %d, full = %d", lossy, full)
			}
			checkHeap(t, k)
		})
	}
}

func TestKeyedRealClock(t *testing.T) {
	k := &Keyed[string]{Rate: Per(1, time.Hour), Burst: 2, MaxKeys: 10}
	if ok, _ := k.Allow("a"); !ok {
		t.Fatal("first Allow refused")
	}
	if ok, _ := k.AllowN("a", 1); !ok {
		t.Fatal("second Allow refused")
	}
	if ok, wait := k.Allow("a"); ok || wait < 59*time.Minute {
		t.Fatalf("third Allow = %v, %v; want refused for about 1h", ok, wait)
	}
	if k.Len() != 1 {
		t.Fatalf("Len = %d, want 1", k.Len())
	}
}

func TestKeyedAllowDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race")
	}
	k := &Keyed[int]{Rate: 100, Burst: 100, MaxKeys: 1000}
	for i := range 1000 {
		k.Allow(i)
	}
	if n := testing.AllocsPerRun(1000, func() { k.Allow(7) }); n != 0 {
		t.Fatalf("Allow on a known key allocates %v times, want 0", n)
	}
	i := 1000
	if n := testing.AllocsPerRun(1000, func() { i++; k.allowAt(i, t0, 1) }); n != 0 {
		t.Fatalf("Allow on a new key at the cap allocates %v times, want 0 (entries are reused)", n)
	}
}

// BenchmarkKeyedAllow measures the per-subscribe path: a check against one
// of 10,000 known users.
func BenchmarkKeyedAllow(b *testing.B) {
	k := &Keyed[int]{Rate: Per(50, time.Minute), Burst: 50}
	for i := range 10_000 {
		k.Allow(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k.Allow(i % 10_000)
		i++
	}
}

// BenchmarkKeyedAllowFlood measures a flood of distinct keys at the cap:
// every call evicts one key and inserts another.
func BenchmarkKeyedAllowFlood(b *testing.B) {
	k := &Keyed[int]{Rate: 20, Burst: 40, MaxKeys: 10_000}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k.Allow(i)
		i++
	}
}

// BenchmarkKeyedAllowParallel measures the per-subscribe path contended by
// all procs, each on its own keys.
func BenchmarkKeyedAllowParallel(b *testing.B) {
	k := &Keyed[int]{Rate: Per(50, time.Minute), Burst: 50}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		base := int(next.Add(1)) * 1_000_000
		i := 0
		for pb.Next() {
			k.Allow(base + i%1000)
			i++
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
