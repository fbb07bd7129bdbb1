//go:build linux

package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a log-linear histogram of non-negative int64 values (we
// record nanoseconds), in the spirit of HdrHistogram: values below 2^7 get
// one bucket each, and every power of two above is split into 64 buckets,
// so a reported quantile is within 1/64 (1.6%) of the true value. It is
// safe for concurrent Record calls: counts are atomic and spread over
// shards, so that thousands of reader goroutines do not fight over one
// cache line.
type Histogram struct {
	shards [histShards]histShard
	max    atomic.Int64
	min    atomic.Int64
}

const (
	histSubBits = 7
	histHalf    = 1 << (histSubBits - 1) // buckets per power of two
	histShards  = 8
	// histBuckets covers every int64: the largest index is bucketOf(MaxInt64).
	histBuckets = (63-histSubBits+1)*histHalf + 1<<histSubBits
)

type histShard struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	_      [64]byte // keep the next shard's hot counters off this cache line
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.min.Store(math.MaxInt64)
	return h
}

// bucketOf maps v ≥ 0 to its bucket index.
func bucketOf(v int64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits
	return shift*histHalf + int(uint64(v)>>shift)
}

// bucketBounds returns the lowest and highest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < 1<<histSubBits {
		return int64(i), int64(i)
	}
	shift := i/histHalf - 1
	top := int64(i - shift*histHalf)
	lo = top << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds v; negative values count as 0. shard spreads concurrent
// writers (any int, e.g. a connection number).
func (h *Histogram) Record(v int64, shard int) {
	if v < 0 {
		v = 0
	}
	s := &h.shards[uint(shard)%histShards]
	s.counts[bucketOf(v)].Add(1)
	s.n.Add(1)
	s.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if v >= m || h.min.CompareAndSwap(m, v) {
			break
		}
	}
}

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration, shard int) { h.Record(int64(d), shard) }

// Count returns how many values were recorded.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.shards {
		n += h.shards[i].n.Load()
	}
	return n
}

// Max returns the largest value recorded, or 0.
func (h *Histogram) Max() int64 {
	if h.Count() == 0 {
		return 0
	}
	return h.max.Load()
}

// Min returns the smallest value recorded, or 0.
func (h *Histogram) Min() int64 {
	if h.Count() == 0 {
		return 0
	}
	return h.min.Load()
}

// Mean returns the mean of the values recorded, or 0.
func (h *Histogram) Mean() float64 {
	var n, sum uint64
	for i := range h.shards {
		n += h.shards[i].n.Load()
		sum += h.shards[i].sum.Load()
	}
	if n == 0 {
		return 0
	}
	return float64(sum) / float64(n)
}

// Quantile returns the value at quantile q (0..1): the highest value of the
// bucket holding the q-th value, capped by Max, as HdrHistogram reports
// ("highest equivalent value"). It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	counts := h.merged()
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return min(hi, h.max.Load())
		}
	}
	return h.max.Load()
}

func (h *Histogram) merged() []uint64 {
	out := make([]uint64, histBuckets)
	for s := range h.shards {
		for i := range out {
			out[i] += h.shards[s].counts[i].Load()
		}
	}
	return out
}

// Merge adds o's counts into h. o must not be written concurrently.
func (h *Histogram) Merge(o *Histogram) {
	for s := range o.shards {
		src, dst := &o.shards[s], &h.shards[s]
		for i := range src.counts {
			if c := src.counts[i].Load(); c != 0 {
				dst.counts[i].Add(c)
			}
		}
		dst.n.Add(src.n.Load())
		dst.sum.Add(src.sum.Load())
	}
	if o.Count() > 0 {
		for v := o.max.Load(); ; {
			m := h.max.Load()
			if v <= m || h.max.CompareAndSwap(m, v) {
				break
			}
		}
		for v := o.min.Load(); ; {
			m := h.min.Load()
			if v >= m || h.min.CompareAndSwap(m, v) {
				break
			}
		}
	}
}

// Summary is a histogram of durations, in milliseconds, as reported.
type Summary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize returns h's summary, reading its values as nanoseconds.
func (h *Histogram) Summarize() Summary {
	ms := func(ns int64) float64 { return round3(float64(ns) / 1e6) }
	return Summary{
		Count: h.Count(),
		Min:   ms(h.Min()),
		Mean:  round3(h.Mean() / 1e6),
		P50:   ms(h.Quantile(0.50)),
		P95:   ms(h.Quantile(0.95)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
