//go:build linux

package loadgen

// SeqTracker checks the order of one subscription's events. The publisher
// numbers each room's events 1, 2, 3, …; the node promises every
// subscriber of the room each event once, in order. A tracker is owned by
// one reader goroutine and holds 16 bytes, so that 100,000 subscriptions
// cost little.
//
// It remembers the highest sequence seen and which of the 64 below it
// arrived, which is enough to tell a duplicate from a late (reordered)
// event for any reordering shallower than 64.
type SeqTracker struct {
	last uint64 // highest sequence seen; 0 before the first event
	seen uint64 // bit i set: last-1-i arrived
}

// Outcome is what one event meant for its subscription.
type Outcome uint8

const (
	// InOrder: the next event, exactly last+1 (or the first event).
	InOrder Outcome = iota
	// Gap: ahead of last+1; Observe returns how many were skipped.
	Gap
	// Duplicate: this sequence arrived before.
	Duplicate
	// Reorder: below the highest seen, not seen before: it fills a gap
	// counted earlier.
	Reorder
	// TooLate: more than 64 below the highest seen: duplicate or
	// reorder cannot be told apart; counted as a reorder by callers.
	TooLate
)

// Observe records seq and reports its outcome; skipped is the number of
// sequences jumped over (Gap only). The first event sets the baseline
// whatever its number, because a subscription starts mid-stream.
func (t *SeqTracker) Observe(seq uint64) (o Outcome, skipped uint64) {
	switch {
	case t.last == 0:
		t.last = seq
		return InOrder, 0
	case seq == t.last+1:
		t.seen = t.seen<<1 | 1
		t.last = seq
		return InOrder, 0
	case seq > t.last+1:
		d := seq - t.last
		if d > 64 {
			t.seen = 0
		} else {
			t.seen = (t.seen<<1 | 1) << (d - 1)
		}
		skipped = d - 1
		t.last = seq
		return Gap, skipped
	case seq == t.last:
		return Duplicate, 0
	default: // seq < t.last
		back := t.last - seq // ≥ 1
		if back > 64 {
			return TooLate, 0
		}
		bit := uint64(1) << (back - 1)
		if t.seen&bit != 0 {
			return Duplicate, 0
		}
		t.seen |= bit
		return Reorder, 0
	}
}

// Last returns the highest sequence seen, 0 if none.
func (t *SeqTracker) Last() uint64 { return t.last }
