//go:build linux

package loadgen

import (
	"context"
	"testing"
	"time"
)

func TestPacerFakeClock(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		d     time.Duration
		tick  time.Duration
		total uint64
	}{
		{"1000/s ticked each ms", 1000, time.Second, time.Millisecond, 1000},
		{"100k/s ticked each ms", 100_000, time.Second, time.Millisecond, 100_000},
		{"3/s ticked each 7ms", 3, 5 * time.Second, 7 * time.Millisecond, 15},
		{"late ticks (50ms)", 2000, 2 * time.Second, 50 * time.Millisecond, 4000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			if got := EventsFor(tc.rate, tc.d); got != tc.total {
				t.Fatalf("EventsFor = %d, want %d", got, tc.total)
			}
			p := NewPacer(tc.rate, tc.total, start)
			var got uint64
			// Bounded: a few ticks past the end so that capped batches drain.
			for now := start; now.Before(start.Add(tc.d + time.Second)); now = now.Add(tc.tick) {
				n := p.Take(now)
				got += n
				// Never ahead of schedule.
				if due := uint64(now.Sub(start).Seconds()*tc.rate) + 1; got > due {
					t.Fatalf("at %v took %d, only %d due", now.Sub(start), got, due)
				}
			}
			if got != tc.total || !p.Done() {
				t.Fatalf("took %d, want %d", got, tc.total)
			}
		})
	}
}

func TestPacerUntilAndLag(t *testing.T) {
	start := time.Unix(1000, 0)
	p := NewPacer(10, 100, start) // one event per 100 ms
	if n := p.Take(start); n != 1 {
		t.Fatalf("at start: %d due, want 1", n)
	}
	if d := p.Until(start); d != 100*time.Millisecond {
		t.Fatalf("Until = %v", d)
	}
	if n := p.Take(start.Add(99 * time.Millisecond)); n != 0 {
		t.Fatalf("early take %d", n)
	}
	if l := p.Lag(start.Add(350 * time.Millisecond)); l != 250*time.Millisecond {
		t.Fatalf("Lag = %v", l)
	}
	if n := p.Take(start.Add(350 * time.Millisecond)); n != 1 { // maxBatch is 1 at 10/s
		t.Fatalf("late take %d, want the cap 1", n)
	}
}

func TestPacerRunBounded(t *testing.T) {
	const rate, d = 500.0, 300 * time.Millisecond
	total := EventsFor(rate, d)
	start := time.Now()
	p := NewPacer(rate, total, start)
	var emitted uint64
	n, _ := p.Run(context.Background(), start.Add(d+2*time.Second), func(k uint64) bool {
		emitted += k
		return true
	})
	el := time.Since(start)
	if n != total || emitted != total {
		t.Fatalf("emitted %d (returned %d), want %d", emitted, n, total)
	}
	if el < d-10*time.Millisecond || el > d+time.Second {
		t.Fatalf("took %v for a %v schedule", el, d)
	}
	// A deadline before the schedule ends stops it early.
	p = NewPacer(rate, 1_000_000, time.Now())
	n, _ = p.Run(context.Background(), time.Now().Add(50*time.Millisecond), func(uint64) bool { return true })
	if n == 0 || n > 60 {
		t.Fatalf("deadline run emitted %d", n)
	}
}
