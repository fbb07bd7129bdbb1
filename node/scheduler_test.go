package node

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// roomEvent is event seq of room's subject, with body {"id":"<seq>",…}.
func roomEvent(n *Node, room string, seq uint64) *cluster.Event {
	return &cluster.Event{
		Subject: n.cl.Prefix() + ".public.chat." + room,
		Tenant:  "public",
		Topic:   "chat." + room,
		Seq:     seq,
		Data:    fmt.Appendf(nil, `{"id":"%d","room":%q,"text":"t","author":{"name":"a"}}`, seq, room),
		Cursor:  n.cl.Cursor("public", seq),
	}
}

// ids reads the event ids queued to s, in order.
func ids(t *testing.T, s *queueSink) []int {
	t.Helper()
	var out []int
	for len(s.q) > 0 {
		var m struct {
			Data struct {
				MessageAdded struct{ ID string } `json:"messageAdded"`
			} `json:"data"`
		}
		if err := json.Unmarshal(<-s.q, &m); err != nil {
			t.Fatal(err)
		}
		var id int
		fmt.Sscan(m.Data.MessageAdded.ID, &id)
		out = append(out, id)
	}
	return out
}

// Subjects route on several workers at once; each subject's events reach
// its subscribers complete and in order.
func TestSchedulerKeepsEachSubjectInOrder(t *testing.T) {
	n := testNode(t)
	n.sched = newScheduler(n, 4)
	const rooms, events = 8, 300
	sinks := make([][]*queueSink, rooms)
	for r := range rooms {
		sinks[r] = addRoomSubscribers(t, n, fmt.Sprint("r", r), 3, events)
	}
	n.sched.start()
	defer n.sched.shutdown()
	for i := range events {
		for r := range rooms {
			n.dispatch(roomEvent(n, fmt.Sprint("r", r), uint64(i+1)*1000+uint64(r)))
		}
	}
	waitUntil(t, "every event routed", func() bool {
		for r := range rooms {
			for _, s := range sinks[r] {
				if len(s.q) < events {
					return false
				}
			}
		}
		return true
	})
	for r := range rooms {
		for k, s := range sinks[r] {
			got := ids(t, s)
			for i, id := range got {
				if want := (i+1)*1000 + r; id != want {
					t.Fatalf("room %d sink %d: event %d is %d, want %d (order or completeness broken)", r, k, i, id, want)
				}
			}
		}
	}
	if q := n.sched.queued.Load(); q != 0 {
		t.Fatalf("backlog %d after everything was routed", q)
	}
}

// slowSink makes every delivery to it cost d: a subscription that is
// expensive to serve.
type slowSink struct {
	*queueSink
	d     time.Duration
	count atomic.Int64
}

func (s *slowSink) Push(f *ws.Fanout, p []byte) bool {
	time.Sleep(s.d)
	s.count.Add(1)
	return s.queueSink.Push(f, p)
}

// An expensive subject holds one worker at a time: another subject's
// events are routed while the expensive one still has a backlog, on one
// worker as on several.
func TestSchedulerExpensiveSubjectDelaysOnlyItself(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			n := testNode(t)
			n.sched = newScheduler(n, workers)
			// One expensive subject per worker, and one more.
			hot := []string{"hot0", "hot1", "hot2"}[:workers+1]
			var slows []*slowSink
			for _, room := range hot {
				p, err := n.compiler.Load().Compile(query.Request{Query: `subscription { messageAdded(room: "` + room + `") { id } }`})
				if err != nil {
					t.Fatal(err)
				}
				subject, _ := n.cl.Subject("public", p.Topic)
				s := &slowSink{queueSink: &queueSink{q: make(chan []byte, 1000)}, d: 2 * time.Millisecond}
				sub := testSub(s)
				sub.plan, sub.tenant, sub.subject = p, "public", subject
				n.idx.add(sub)
				slows = append(slows, s)
			}
			cold := addRoomSubscribers(t, n, "cold", 1, 100)[0]
			n.sched.start()
			defer n.sched.shutdown()
			const hotEvents = 200 // 400 ms of work per hot subject
			for i := range hotEvents {
				for _, room := range hot {
					n.dispatch(roomEvent(n, room, uint64(i+1)))
				}
			}
			for i := range 10 {
				n.dispatch(roomEvent(n, "cold", uint64(i+1)))
			}
			waitUntil(t, "the cold subject's events", func() bool { return len(cold.q) == 10 })
			var routed int64
			for _, s := range slows {
				routed += s.count.Load()
			}
			// Routed in turns, the cold events waited for at most one turn
			// (turnTime) of each hot subject: far from the whole backlog.
			if limit := int64(len(hot)) * hotEvents / 2; routed > limit {
				t.Fatalf("cold events arrived after %d of %d hot deliveries, want at most %d: they waited behind the hot subjects", routed, int64(len(hot))*hotEvents, limit)
			}
			t.Logf("cold subject done after %d of %d hot deliveries", routed, len(hot)*hotEvents)
		})
	}
}

// A mailbox holds up to maxBytes, and its oldest event waits at most
// maxLag; past either the subject overflows: its backlog is dropped and
// counted. A burst within both is only waited for.
func TestSchedulerBoundsEachSubject(t *testing.T) {
	n := testNode(t)
	addRoomSubscribers(t, n, "a", 1, 1)
	size := eventBytes(roomEvent(n, "a", 1))
	const lag = time.Second
	for _, tc := range []struct {
		name      string
		maxBytes  int
		events    int
		waited    time.Duration // clock advance before the last event
		overflows uint64
	}{
		{"bytes limit-1", 3*size + 1, 3, 0, 0},
		{"bytes limit", 3 * size, 3, 0, 0},
		{"bytes limit+1", 3*size - 1, 3, 0, 1},
		{"lag limit-1", 1 << 30, 3, lag - 1, 0},
		{"lag limit", 1 << 30, 3, lag, 0},
		{"lag limit+1", 1 << 30, 3, lag + 1, 1},
		{"a burst of 20,000", 1 << 30, 20_000, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var clock int64
			n.sched = newScheduler(n, 1) // not started: nothing is taken
			n.sched.maxBytes, n.sched.maxLag = tc.maxBytes, lag
			n.sched.now = func() int64 { return clock }
			for i := range tc.events {
				if i == tc.events-1 {
					clock += int64(tc.waited)
				}
				n.dispatch(roomEvent(n, "a", uint64(i+1)))
			}
			if got := n.sched.overflows.Load(); got != tc.overflows {
				t.Fatalf("overflows %d, want %d", got, tc.overflows)
			}
			want := int64(tc.events)
			if tc.overflows > 0 {
				want = 0 // the backlog was dropped with the event that overflowed it
			}
			if got := n.sched.queued.Load(); got != want {
				t.Fatalf("queued %d, want %d", got, want)
			}
		})
	}
}

// With more busy subjects than workers something is always ready: the
// ready queue must stay as small as the number of subjects, however many
// turns go by.
func TestSchedulerReadyQueueStaysSmall(t *testing.T) {
	n := testNode(t)
	addRoomSubscribers(t, n, "a", 1, 1)
	addRoomSubscribers(t, n, "b", 1, 1)
	s := newScheduler(n, 1) // not started: this test plays the worker
	n.sched = s
	for _, room := range []string{"a", "b"} {
		n.dispatch(roomEvent(n, room, 1))
	}
	for i := range 10_000 {
		b := s.next()
		if ev := s.take(b); ev == nil {
			t.Fatalf("turn %d: nothing to take", i)
		}
		n.dispatch(roomEvent(n, b.subject[len(b.subject)-1:], uint64(i+2))) // more for the same subject
		s.release(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if live := len(s.ready) - s.readyHead; live != 2 || cap(s.ready) > 16 {
		t.Fatalf("after 10,000 turns: %d ready, capacity %d; want 2 in a small queue", live, cap(s.ready))
	}
}

// All mailboxes together hold at most maxTotalBytes: past it the subject
// with the largest backlog overflows, and the others keep theirs.
func TestSchedulerBoundsTheWholeBacklog(t *testing.T) {
	n := testNode(t)
	addRoomSubscribers(t, n, "bbb", 1, 1)
	addRoomSubscribers(t, n, "sss", 1, 1)
	size := eventBytes(roomEvent(n, "bbb", 1))
	n.sched = newScheduler(n, 1)
	n.sched.maxTotalBytes = 10 * size
	for i := range 8 {
		n.dispatch(roomEvent(n, "bbb", uint64(i+1)))
	}
	n.dispatch(roomEvent(n, "sss", 1))
	n.dispatch(roomEvent(n, "sss", 2))
	if got := n.sched.overflows.Load(); got != 0 {
		t.Fatalf("at the limit: %d overflows", got)
	}
	n.dispatch(roomEvent(n, "sss", 3)) // limit+1
	if got := n.sched.overflows.Load(); got != 1 {
		t.Fatalf("past the limit: %d overflows, want 1", got)
	}
	if got := n.sched.queued.Load(); got != 3 {
		t.Fatalf("queued %d, want the 3 events of the small subject", got)
	}
}

// waitUntil polls cond for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Handing an event to a worker allocates nothing once a subject's mailbox
// has been used: dispatch, take and release reuse mailboxes and slices.
func TestSchedulerHandOffAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race; make test-allocs runs this without it")
	}
	n := testNode(t)
	addRoomSubscribers(t, n, "a", 1, 1)
	s := newScheduler(n, 1) // not started: this test plays the worker
	n.sched = s
	ev := roomEvent(n, "a", 1)
	allocs := testing.AllocsPerRun(100, func() {
		n.dispatch(ev)
		b := s.next()
		if s.take(b) != ev {
			t.Fatal("took another event")
		}
		s.release(b)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per event handed off, want 0", allocs)
	}
}
