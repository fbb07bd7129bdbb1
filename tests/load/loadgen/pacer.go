//go:build linux

package loadgen

import (
	"context"
	"math"
	"time"
)

// Pacer schedules Total events evenly at Rate per second from Start: event
// i is due at Start + i/Rate. It counts from the start, not from the last
// tick, so timer jitter and slow publishes never accumulate into drift: a
// late loop gets a bigger batch on its next Take. It is not safe for
// concurrent use.
type Pacer struct {
	rate  float64
	start time.Time
	total uint64
	sent  uint64
	// maxBatch caps one Take, so that a publisher that fell far behind
	// (a stall) catches up in slices and stays responsive to its deadline.
	maxBatch uint64
}

// minSleep is the shortest wait the publish loop takes. Go timers are not
// precise below about a millisecond, so at high rates the loop wakes every
// millisecond and publishes the batch that fell due meanwhile.
const minSleep = time.Millisecond

// NewPacer returns a Pacer for total events at rate per second from start.
// rate must be positive.
func NewPacer(rate float64, total uint64, start time.Time) *Pacer {
	// A batch is at most 50 ms of events, at least 1.
	mb := uint64(math.Max(1, math.Ceil(rate/20)))
	return &Pacer{rate: rate, start: start, total: total, maxBatch: mb}
}

// EventsFor is the number of events a rate puts into d.
func EventsFor(rate float64, d time.Duration) uint64 {
	return uint64(math.Round(rate * d.Seconds()))
}

// Take returns how many events are due at now and not yet taken, and
// counts them as taken.
func (p *Pacer) Take(now time.Time) uint64 {
	el := now.Sub(p.start)
	if el < 0 || p.sent >= p.total {
		return 0
	}
	due := uint64(math.Floor(el.Seconds()*p.rate)) + 1 // event 0 is due at start
	due = min(due, p.total)
	if due <= p.sent {
		return 0
	}
	n := min(due-p.sent, p.maxBatch)
	p.sent += n
	return n
}

// Until returns how long from now until the next event is due (0 if one
// is due already). Done pacers return 0.
func (p *Pacer) Until(now time.Time) time.Duration {
	if p.sent >= p.total {
		return 0
	}
	at := p.start.Add(time.Duration(float64(p.sent) / p.rate * float64(time.Second)))
	return max(at.Sub(now), 0)
}

// Lag is how far behind schedule the pacer is at now: now minus the due
// time of the next untaken event, or 0 when on time.
func (p *Pacer) Lag(now time.Time) time.Duration {
	if p.sent >= p.total {
		return 0
	}
	at := p.start.Add(time.Duration(float64(p.sent) / p.rate * float64(time.Second)))
	return max(now.Sub(at), 0)
}

// Sent returns the events taken so far.
func (p *Pacer) Sent() uint64 { return p.sent }

// Done reports whether every event was taken.
func (p *Pacer) Done() bool { return p.sent >= p.total }

// Run calls emit for each event as it falls due, in batches, until all
// Total events were emitted or deadline passed or ctx ended; it returns
// how many were emitted and the largest lag seen. emit returning false
// stops the run.
func (p *Pacer) Run(ctx context.Context, deadline time.Time, emit func(n uint64) bool) (uint64, time.Duration) {
	var maxLag time.Duration
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for !p.Done() {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		maxLag = max(maxLag, p.Lag(now))
		if n := p.Take(now); n > 0 {
			if !emit(n) {
				break
			}
			continue
		}
		d := max(p.Until(now), minSleep)
		d = min(d, deadline.Sub(now))
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return p.sent, maxLag
		case <-timer.C:
		}
	}
	return p.sent, maxLag
}
