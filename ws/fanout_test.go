package ws

import (
	"strings"
	"testing"
	"time"
)

// fanoutEnv is one subscribed client and a Fanout on a clock the test
// moves; every direct write to the connection is recorded.
type fanoutEnv struct {
	cl     *client
	sub    *Subscription
	f      *Fanout
	clock  int64   // the Fanout's now
	writes []write // the direct writes, in order
	pushed []int64 // when each frame was pushed, by frame number
}

// write is one direct write: when (the Fanout's clock) and how many frames.
type write struct {
	at     int64
	frames int
}

func newFanoutEnv(t *testing.T, delay time.Duration) *fanoutEnv {
	t.Helper()
	e := startEnv(t, Options{CoalesceDelay: delay}, nil)
	cl, _, sub := subscribed(t, e)
	waitNoWriter(t, sub.Conn()) // the ack's write goroutine: a round would hand off to it
	fe := &fanoutEnv{cl: cl, sub: sub, f: e.srv.NewFanout(), clock: int64(time.Second)}
	fe.f.now = func() int64 { return fe.clock }
	sub.Conn().onWrite = func(frames int) { fe.writes = append(fe.writes, write{fe.clock, frames}) }
	return fe
}

// event pushes the next numbered frame at time at (from the clock's start)
// and tells the Fanout it was routed and that nothing more waits (Idle);
// it returns what Idle returned.
func (fe *fanoutEnv) event(t *testing.T, at time.Duration) time.Duration {
	t.Helper()
	fe.clock = int64(time.Second + at)
	if !fe.sub.Push(fe.f, numbered(len(fe.pushed), 8)) {
		t.Fatalf("push at %v refused", at)
	}
	fe.pushed = append(fe.pushed, fe.clock)
	fe.f.Routed()
	return fe.f.Idle()
}

// checkBound checks that every frame was written, in order, within delay
// of its push, and that the client got them all.
func (fe *fanoutEnv) checkBound(t *testing.T, delay time.Duration) {
	t.Helper()
	frame := 0
	for _, w := range fe.writes {
		for range w.frames {
			if wait := time.Duration(w.at - fe.pushed[frame]); wait > delay {
				t.Fatalf("frame %d waited %v for its write, bound %v (writes %v)", frame, wait, delay, fe.writes)
			}
			frame++
		}
	}
	if frame != len(fe.pushed) {
		t.Fatalf("%d frames written of %d pushed (writes %v)", frame, len(fe.pushed), fe.writes)
	}
	expectNumbered(t, fe.cl, len(fe.pushed), 8)
}

// TestCoalescingAtHighRate: a connection that gets an event every
// millisecond with a 5 ms coalescing delay is written at once for the
// first, then once per 5 ms with every frame it got meanwhile; no frame
// waits longer than the delay.
func TestCoalescingAtHighRate(t *testing.T) {
	const delay = 5 * time.Millisecond
	fe := newFanoutEnv(t, delay)
	for i := range 11 {
		wait := fe.event(t, time.Duration(i)*time.Millisecond)
		if wait < 0 || wait > delay {
			t.Fatalf("event %d: Idle asks to be called again in %v, bound %v", i, wait, delay)
		}
	}
	// t=0: written at once; 1–5 ms: held, written at 5 ms; 6–10: at 10 ms.
	want := []write{
		{int64(time.Second), 1},
		{int64(time.Second + 5*time.Millisecond), 5},
		{int64(time.Second + 10*time.Millisecond), 5},
	}
	if len(fe.writes) != len(want) {
		t.Fatalf("writes %v, want %v", fe.writes, want)
	}
	for i := range want {
		if fe.writes[i] != want[i] {
			t.Fatalf("writes %v, want %v", fe.writes, want)
		}
	}
	fe.checkBound(t, delay)
	if holds := fe.sub.Conn().flushes.holds.Load(); holds != 2 {
		t.Fatalf("%d holds counted, want 2 (events 1 and 6 found it written less than the delay ago; 2–4 and 7–9 found it held)", holds)
	}
}

// TestCoalescingHeldUntilDue: a held connection is written when its delay
// has passed since its last write, not before, by Idle as by Busy (a
// deliverer that stays busy).
func TestCoalescingHeldUntilDue(t *testing.T) {
	const delay = 5 * time.Millisecond
	for _, busy := range []bool{false, true} {
		t.Run(map[bool]string{false: "idle", true: "busy"}[busy], func(t *testing.T) {
			fe := newFanoutEnv(t, delay)
			fe.event(t, 0) // written
			fe.clock = int64(time.Second + time.Millisecond)
			fe.sub.Push(fe.f, numbered(1, 8))
			fe.pushed = append(fe.pushed, fe.clock)
			fe.f.Routed()
			check := func(at time.Duration, writes int) {
				t.Helper()
				fe.clock = int64(time.Second + at)
				if busy {
					fe.f.Busy()
				} else {
					fe.f.Idle()
				}
				if len(fe.writes) != writes {
					t.Fatalf("at %v: %d writes, want %d (%v)", at, len(fe.writes), writes, fe.writes)
				}
			}
			check(2*time.Millisecond+time.Millisecond/2, 1) // routed, held (a busy deliverer's round after maxRoundHold)
			check(delay-time.Nanosecond, 1)                 // not due yet
			check(delay, 2)                                 // due: written
			fe.checkBound(t, delay)
		})
	}
}

// TestCoalescingLowRateWritesAtOnce: at one event a second (slower than
// one per delay) every event is written in the round that routed it, as
// without coalescing, and nothing is held.
func TestCoalescingLowRateWritesAtOnce(t *testing.T) {
	fe := newFanoutEnv(t, DefaultCoalesceDelay)
	for i := range 5 {
		if wait := fe.event(t, time.Duration(i)*time.Second); wait != 0 {
			t.Fatalf("event %d: Idle asks to be called again in %v: something is held", i, wait)
		}
		if len(fe.writes) != i+1 || fe.writes[i].at != fe.pushed[i] {
			t.Fatalf("event %d not written at once: writes %v", i, fe.writes)
		}
	}
	fe.checkBound(t, 0)
}

// TestCoalescingOff: with coalescing off every round writes every
// connection it touched, however recently it was written.
func TestCoalescingOff(t *testing.T) {
	fe := newFanoutEnv(t, -1)
	for i := range 5 {
		fe.event(t, time.Duration(i)*time.Microsecond)
	}
	if len(fe.writes) != 5 {
		t.Fatalf("writes %v, want one per event", fe.writes)
	}
	fe.checkBound(t, 0)
}

// TestFanoutRoundWritesEachConnectionOnce: a round writes every connection
// pushed to since the last once, however many events and subscriptions it
// got; with WriteDelay, Idle puts the round off until the delay has
// passed; past flushEvery events a round runs without waiting for Idle.
func TestFanoutRoundWritesEachConnectionOnce(t *testing.T) {
	e := startEnv(t, Options{WriteDelay: time.Hour, WriteQueue: 64}, nil)
	cl, _, sub := subscribed(t, e)
	waitNoWriter(t, sub.Conn())
	writes := 0
	sub.Conn().onWrite = func(int) { writes++ }
	f := e.srv.NewFanout()
	clock := int64(time.Second)
	f.now = func() int64 { return clock }
	f.round(clock) // the last round was just now
	for i := range 3 {
		sub.Push(f, numbered(i, 8))
		f.Routed()
	}
	if wait := f.Idle(); wait <= 0 || wait > time.Hour || writes != 0 {
		t.Fatalf("Idle within the write delay: wait %v, %d writes; want (0, 1h], none", wait, writes)
	}
	clock += int64(time.Hour)
	if wait := f.Idle(); wait != 0 || writes != 1 {
		t.Fatalf("Idle after the write delay: wait %v, %d writes; want 0, 1", wait, writes)
	}
	for i := range f.flushEvery {
		sub.Push(f, numbered(3+i, 8))
		f.Routed()
	}
	if writes != 2 {
		t.Fatalf("after flushEvery (%d) events: %d writes, want 2", f.flushEvery, writes)
	}
	expectNumbered(t, cl, 3+f.flushEvery, 8)
	if rounds, conns, _ := e.srv.RoundStats(); rounds != 2 || conns != 2 {
		t.Fatalf("RoundStats: %d rounds, %d connection writes; want 2, 2", rounds, conns)
	}
}

// TestCoalesceDelayBounds: Options.CoalesceDelay up to MaxCoalesceDelay.
func TestCoalesceDelayBounds(t *testing.T) {
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{
		{MaxCoalesceDelay - time.Nanosecond, true},
		{MaxCoalesceDelay, true},
		{MaxCoalesceDelay + time.Nanosecond, false},
		{-1, true}, // off
	} {
		err := Options{CoalesceDelay: tc.d}.Validate()
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "ws.coalesce_delay") {
			t.Errorf("CoalesceDelay %v: %v, want ok %v", tc.d, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{
		{-time.Nanosecond, false},
		{MaxWriteDelay - time.Nanosecond, true},
		{MaxWriteDelay, true},
		{MaxWriteDelay + time.Nanosecond, false},
	} {
		err := Options{WriteDelay: tc.d}.Validate()
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "ws.write_delay") {
			t.Errorf("WriteDelay %v: %v, want ok %v", tc.d, err, tc.ok)
		}
	}
	if got := (Options{}).withDefaults().CoalesceDelay; got != DefaultCoalesceDelay {
		t.Errorf("default CoalesceDelay %v, want %v", got, DefaultCoalesceDelay)
	}
	if got := (Options{CoalesceDelay: -1}).withDefaults().CoalesceDelay; got != 0 {
		t.Errorf("CoalesceDelay -1 becomes %v, want 0 (off)", got)
	}
}

// TestFanoutAllocs: pushing an event to several connections and the write
// rounds that follow — held for coalescing, then written — allocate
// nothing once the Fanout's lists have grown to the round's size.
func TestFanoutAllocs(t *testing.T) {
	writeEngines(t, testFanoutAllocs)
}

func testFanoutAllocs(t *testing.T, engine IOUringMode) {
	e := startEnv(t, Options{CoalesceDelay: 5 * time.Millisecond, IOUring: engine}, nil)
	var subs []*Subscription
	for range 3 {
		_, _, sub := subscribed(t, e)
		waitNoWriter(t, sub.Conn())
		subs = append(subs, sub)
	}
	f := e.srv.NewFanout()
	clock := int64(time.Second)
	f.now = func() int64 { return clock }
	payload := numbered(0, 32)
	event := func() {
		clock += int64(time.Millisecond) // one event per ms: every 5th is written, the others held
		for _, s := range subs {
			s.Push(f, payload)
		}
		f.Routed()
		f.Idle()
	}
	for range 10 {
		event() // grow the lists, warm the batch pool
	}
	// 100 events of ~70 bytes to each: the socket buffers take them unread.
	if n := testing.AllocsPerRun(100, event); n != 0 {
		t.Fatalf("%v allocations per event routed to %d connections, want 0", n, len(subs))
	}
	if _, _, holds := e.srv.RoundStats(); holds == 0 {
		t.Fatal("nothing was held: the test did not exercise coalescing")
	}
	checkEngine(t, e, engine, uint64(len(subs))*100/5) // every 5th event written
}
