package cluster

import (
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The ordering rules of the interest consumer that need no read from the
// stream: events held until the subject's base is known, duplicates, and
// an earlier previous sequence.
func TestInterestSequenceRules(t *testing.T) {
	c := &Cluster{metrics: newMetrics(), log: slog.New(slog.DiscardHandler), ingest: newIngest()}
	var got []uint64
	k := &Consumer{c: c, fn: func(e *Event) { got = append(got, e.Seq) }, stop: make(chan struct{})}
	const subj = "fq.acme.room"
	f := &feed{r: &replayer{c: c, subj: subj, tenant: "acme", topic: "room"}, refs: 1, ready: make(chan struct{})}
	c.ingest.feeds[subj] = f
	msg := func(seq, prev uint64) *nats.Msg { return liveMsg(subj, seq, prev, nil) }
	live := func(seq, prev uint64) {
		t.Helper()
		if k.onLive(msg(seq, prev)); f.repairing {
			t.Fatalf("event %d after %d: a repair was started", seq, prev)
		}
	}
	check := func(want ...uint64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	live(5, 3) // before the base is known: held
	live(7, 5)
	check()
	k.onStart(start{f, 5}) // 5 was stored before the interest started
	check(7)
	live(7, 5) // a duplicate
	check(7)
	live(8, 7)
	live(12, 6) // the subject's previous event was delivered already
	check(7, 8, 12)
	live(13, 12)
	check(7, 8, 12, 13)
	if n := len(f.held); n != 0 {
		t.Fatalf("%d events still held", n)
	}
	// A subject nobody wants any more: nothing is delivered.
	delete(c.ingest.feeds, subj)
	live(14, 13)
	check(7, 8, 12, 13)
}

// liveMsg is a republished message of subj with the given sequences.
func liveMsg(subj string, seq, prev uint64, data []byte) *nats.Msg {
	m := nats.NewMsg(liveSubject(subj))
	m.Header.Set(hdrSubject, subj)
	m.Header.Set(hdrSequence, strconv.FormatUint(seq, 10))
	m.Header.Set(hdrLastSequence, strconv.FormatUint(prev, 10))
	m.Header.Set(hdrTimeStamp, time.Now().UTC().Format(time.RFC3339Nano))
	m.Data = data
	return m
}

// The events a subject holds while it starts are bounded by their number
// (liveHeld) and by the sum of their bodies (liveHeldBytes): at each
// limit, one less and one more, the events within it are held, the next
// one is dropped and the subject is marked for a check against the
// stream (which reads the dropped ones back).
func TestInterestHeldBounds(t *testing.T) {
	defer func(n, b int) { liveHeld, liveHeldBytes = n, b }(liveHeld, liveHeldBytes)
	const subj = "fq.acme.room"
	for _, tc := range []struct {
		name         string
		count, bytes int // the bounds
		size         int // each event's body
		held         int // events held of 6
	}{
		{"count limit-1", 2, 1 << 20, 100, 2},
		{"count limit", 3, 1 << 20, 100, 3},
		{"count limit+1", 4, 1 << 20, 100, 4},
		{"bytes limit-1", 100, 299, 100, 2},
		{"bytes limit", 100, 300, 100, 3},
		{"bytes limit+1", 100, 301, 100, 3},
		{"one event over the bytes", 100, 99, 100, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			liveHeld, liveHeldBytes = tc.count, tc.bytes
			c := &Cluster{metrics: newMetrics(), log: slog.New(slog.DiscardHandler), ingest: newIngest()}
			k := &Consumer{c: c, fn: func(*Event) { t.Fatal("delivered before the start") }, stop: make(chan struct{})}
			f := &feed{r: &replayer{c: c, subj: subj, tenant: "acme", topic: "room"}, refs: 1, ready: make(chan struct{})}
			c.ingest.feeds[subj] = f
			for i := range 6 {
				k.onLive(liveMsg(subj, uint64(10+i), uint64(9+i), make([]byte, tc.size)))
			}
			if len(f.held) != tc.held || f.heldBytes != tc.held*tc.size {
				t.Fatalf("held %d events, %d bytes; want %d, %d", len(f.held), f.heldBytes, tc.held, tc.held*tc.size)
			}
			for i, m := range f.held { // the first ones, in order
				if got := m.Header.Get(hdrSequence); got != strconv.Itoa(10+i) {
					t.Fatalf("held[%d] is event %s, want %d", i, got, 10+i)
				}
			}
			if overflow := tc.held < 6; f.resync != overflow {
				t.Fatalf("resync = %v, want %v (dropped events are read from the stream)", f.resync, overflow)
			}
		})
	}
}
