//go:build linux

package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestBucketsAreContiguous(t *testing.T) {
	// Every bucket starts right after the previous one ends, up to MaxInt64.
	prevHi := int64(-1)
	for i := 0; i < histBuckets; i++ {
		lo, hi := bucketBounds(i)
		if i < 1<<histSubBits {
			if lo != int64(i) || hi != int64(i) {
				t.Fatalf("bucket %d = [%d,%d]", i, lo, hi)
			}
		}
		if lo < 0 { // past MaxInt64
			if i < bucketOf(math.MaxInt64) {
				t.Fatalf("bucket %d overflows before the last bucket", i)
			}
			break
		}
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d,%d] but bucketOf gives %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
	}
	if b := bucketOf(math.MaxInt64); b >= histBuckets {
		t.Fatalf("bucketOf(MaxInt64) = %d, have %d buckets", b, histBuckets)
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values func() []int64
	}{
		{"uniform 1..100000", func() []int64 {
			v := make([]int64, 100000)
			for i := range v {
				v[i] = int64(i + 1)
			}
			return v
		}},
		{"exponential ns latencies", func() []int64 {
			r := rand.New(rand.NewPCG(1, 2))
			v := make([]int64, 50000)
			for i := range v {
				v[i] = int64(r.ExpFloat64() * 2e6) // mean 2 ms
			}
			return v
		}},
		{"small exact values", func() []int64 { return []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10} }},
		{"bimodal", func() []int64 {
			v := make([]int64, 0, 1000)
			for i := 0; i < 990; i++ {
				v = append(v, 1_000_000) // 1 ms
			}
			for i := 0; i < 10; i++ {
				v = append(v, 400_000_000) // 400 ms
			}
			return v
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vals := tc.values()
			h := NewHistogram()
			for i, v := range vals {
				h.Record(v, i)
			}
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			if h.Count() != uint64(len(vals)) {
				t.Fatalf("count %d, want %d", h.Count(), len(vals))
			}
			if h.Max() != sorted[len(sorted)-1] || h.Min() != sorted[0] {
				t.Fatalf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), sorted[0], sorted[len(sorted)-1])
			}
			for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				rank := int(math.Ceil(q*float64(len(sorted)))) - 1
				want := sorted[max(rank, 0)]
				got := h.Quantile(q)
				if got < want {
					t.Errorf("q%.3f = %d, below the exact %d", q, got, want)
				}
				if float64(got-want) > float64(want)/64+1 {
					t.Errorf("q%.3f = %d, exact %d: more than 1/64 off", q, got, want)
				}
			}
		})
	}
}

func TestHistogramEmptyAndNegative(t *testing.T) {
	h := NewHistogram()
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-5, 0)
	if h.Quantile(0.5) != 0 || h.Count() != 1 {
		t.Fatalf("negative value: q50=%d count=%d", h.Quantile(0.5), h.Count())
	}
}

func TestHistogramConcurrentAndMerge(t *testing.T) {
	h := NewHistogram()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Go(func() {
			for i := 1; i <= 1000; i++ {
				h.Record(int64(i), g)
			}
		})
	}
	wg.Wait()
	if h.Count() != 16000 {
		t.Fatalf("count %d", h.Count())
	}
	if got := h.Mean(); got != 500.5 {
		t.Fatalf("mean %v", got)
	}
	o := NewHistogram()
	o.Record(5000, 0)
	h.Merge(o)
	if h.Count() != 16001 || h.Max() != 5000 {
		t.Fatalf("after merge count %d max %d", h.Count(), h.Max())
	}
	s := h.Summarize()
	if s.Max != 0.005 || s.Count != 16001 {
		t.Fatalf("summary %+v", s)
	}
}
