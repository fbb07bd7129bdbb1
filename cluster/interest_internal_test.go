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
	msg := func(seq, prev uint64) *nats.Msg {
		m := nats.NewMsg(liveSubject(subj))
		m.Header.Set(hdrSubject, subj)
		m.Header.Set(hdrSequence, strconv.FormatUint(seq, 10))
		m.Header.Set(hdrLastSequence, strconv.FormatUint(prev, 10))
		m.Header.Set(hdrTimeStamp, time.Now().UTC().Format(time.RFC3339Nano))
		return m
	}
	live := func(seq, prev uint64) {
		t.Helper()
		if _, ok := k.onLive(msg(seq, prev)); !ok {
			t.Fatalf("event %d after %d: a repair was attempted", seq, prev)
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
