package limits

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCapBoundaries(t *testing.T) {
	const limit = 5
	for _, tc := range []struct {
		acquires int
		wantOK   int
	}{
		{limit - 1, limit - 1},
		{limit, limit},
		{limit + 1, limit},
	} {
		t.Run(strconv.Itoa(tc.acquires), func(t *testing.T) {
			c := NewCap(limit)
			ok := 0
			for range tc.acquires {
				if c.Acquire() {
					ok++
				}
			}
			if ok != tc.wantOK || c.InUse() != tc.wantOK {
				t.Fatalf("%d acquires: %d admitted, InUse %d; want %d", tc.acquires, ok, c.InUse(), tc.wantOK)
			}
			c.Release()
			if !c.Acquire() {
				t.Fatal("a released slot was not reusable")
			}
		})
	}
}

func TestCapSpecialValues(t *testing.T) {
	var zero Cap
	if zero.Acquire() {
		t.Fatal("zero Cap admitted")
	}
	unlimited := NewCap(-1)
	for range 1000 {
		if !unlimited.Acquire() {
			t.Fatal("unlimited Cap refused")
		}
	}
	if unlimited.InUse() != 1000 || unlimited.Max() != -1 {
		t.Fatalf("unlimited: InUse %d, Max %d", unlimited.InUse(), unlimited.Max())
	}
}

func TestCapNeverNegative(t *testing.T) {
	c := NewCap(2)
	c.Release() // no Acquire: a caller bug
	c.Release()
	if c.InUse() != 0 || c.Underflows() != 2 {
		t.Fatalf("InUse %d, Underflows %d; want 0 and 2", c.InUse(), c.Underflows())
	}
	// The bad Releases did not grant extra capacity.
	if first, second, third := c.Acquire(), c.Acquire(), c.Acquire(); !first || !second || third {
		t.Fatal("cap of 2 admitted other than 2 after bad Releases")
	}
}

func TestCapConcurrent(t *testing.T) {
	const limit = 10
	c := NewCap(limit)
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for range 1000 {
		wg.Go(func() {
			for range 20 {
				if !c.Acquire() {
					continue
				}
				n := held.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				if in := c.InUse(); in > limit || in < 1 {
					t.Errorf("InUse %d while holding a slot", in)
				}
				held.Add(-1)
				c.Release()
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("peak holders %d, cap %d", p, limit)
	}
	// Unmatched Releases racing each other on an empty cap: none may take
	// the count below zero. (With slots held, an unmatched Release cannot be
	// told from a matched one; it frees someone's slot.)
	for range 1000 {
		wg.Go(c.Release)
	}
	wg.Wait()
	if c.InUse() != 0 || c.Underflows() != 1000 {
		t.Fatalf("InUse %d, Underflows %d; want 0 and 1000", c.InUse(), c.Underflows())
	}
}

func TestCapInitInPlace(t *testing.T) {
	var conn struct {
		id   int
		subs Cap
	}
	conn.subs.Init(DefaultMaxSubscriptionsPerConn)
	n := 0
	for conn.subs.Acquire() {
		n++
	}
	if n != DefaultMaxSubscriptionsPerConn {
		t.Fatalf("admitted %d, want %d", n, DefaultMaxSubscriptionsPerConn)
	}
}

func TestKeyedCapBoundaries(t *testing.T) {
	const limit = 3
	for _, tc := range []struct {
		acquires int
		wantOK   int
	}{
		{limit - 1, limit - 1},
		{limit, limit},
		{limit + 1, limit},
	} {
		t.Run(strconv.Itoa(tc.acquires), func(t *testing.T) {
			c := &KeyedCap[string]{Max: limit}
			ok := 0
			for range tc.acquires {
				if c.Acquire("u") {
					ok++
				}
			}
			if ok != tc.wantOK || c.InUse("u") != tc.wantOK {
				t.Fatalf("%d acquires: %d admitted, InUse %d; want %d", tc.acquires, ok, c.InUse("u"), tc.wantOK)
			}
			if !c.Acquire("other") {
				t.Fatal("another key was refused")
			}
		})
	}
}

func TestKeyedCapDeletesZeroEntries(t *testing.T) {
	c := &KeyedCap[int]{Max: 2}
	for k := range 10_000 {
		if first, second := c.Acquire(k), c.Acquire(k); !first || !second {
			t.Fatalf("key %d refused", k)
		}
	}
	if c.Len() != 10_000 {
		t.Fatalf("Len %d, want 10000", c.Len())
	}
	for k := range 10_000 {
		c.Release(k)
		c.Release(k)
	}
	if c.Len() != 0 || len(c.m) != 0 {
		t.Fatalf("Len %d after releasing everything, want 0", c.Len())
	}
	c.Release(42) // unmatched
	if c.Len() != 0 || c.InUse(42) != 0 || c.Underflows() != 1 {
		t.Fatalf("unmatched Release: Len %d, InUse %d, Underflows %d", c.Len(), c.InUse(42), c.Underflows())
	}
}

func TestKeyedCapMaxFor(t *testing.T) {
	c := &KeyedCap[string]{
		Max: 2,
		MaxFor: func(k string) int {
			switch k {
			case "big":
				return 5
			case "unlimited":
				return -1
			}
			return 0
		},
	}
	for _, tc := range []struct {
		key  string
		want int
	}{{"normal", 2}, {"big", 5}, {"unlimited", 100}} {
		got := 0
		for range 100 {
			if c.Acquire(tc.key) {
				got++
			}
		}
		if got != tc.want {
			t.Errorf("%s: admitted %d, want %d", tc.key, got, tc.want)
		}
	}
	var zero KeyedCap[string]
	if zero.Acquire("x") || zero.Len() != 0 {
		t.Error("zero KeyedCap admitted")
	}
}

func TestKeyedCapConcurrent(t *testing.T) {
	const limit = 7
	c := &KeyedCap[int]{Max: limit}
	var admitted [4]atomic.Int64
	var wg sync.WaitGroup
	for g := range 1000 {
		wg.Go(func() {
			if c.Acquire(g % 4) {
				admitted[g%4].Add(1)
			}
		})
	}
	wg.Wait()
	for k := range admitted {
		if got := admitted[k].Load(); got != limit {
			t.Errorf("key %d: admitted %d, want %d", k, got, limit)
		}
	}
}

func TestTicketReleasesOnce(t *testing.T) {
	c := NewCap(1)
	tk, ok := c.AcquireTicket()
	if !ok {
		t.Fatal("AcquireTicket refused")
	}
	if _, ok := c.AcquireTicket(); ok {
		t.Fatal("second ticket on a cap of 1")
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(tk.Release)
	}
	wg.Wait()
	if c.InUse() != 0 || c.Underflows() != 0 {
		t.Fatalf("after 100 Releases of one ticket: InUse %d, Underflows %d; want 0 and 0", c.InUse(), c.Underflows())
	}

	kc := &KeyedCap[string]{Max: 1}
	kt, ok := kc.AcquireTicket("u")
	if !ok {
		t.Fatal("KeyedCap.AcquireTicket refused")
	}
	if _, ok := kc.AcquireTicket("u"); ok {
		t.Fatal("second ticket on a per-key cap of 1")
	}
	func() {
		defer kt.Release()
		kt.Release() // early release, then the deferred one is a no-op
	}()
	if kc.Len() != 0 || kc.Underflows() != 0 {
		t.Fatalf("Len %d, Underflows %d; want 0 and 0", kc.Len(), kc.Underflows())
	}

	var nilTicket *Ticket
	nilTicket.Release() // does not panic
}
