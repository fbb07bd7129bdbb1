package node

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
)

// scheduler routes events on a pool of workers, one subject at a time per
// worker, so that subjects route in parallel while each stays in order.
//
// Every subject with events waiting has a mailbox. The consumer appends an
// event to its subject's mailbox; a mailbox that was not waiting or being
// routed joins the back of the ready queue. A worker takes the mailbox at
// the front, routes a turn of its events (at most turnEvents, or turnTime
// of routing), and puts it back at the end of the queue if events remain.
// So a subject whose subscriptions are expensive to filter and project
// holds at most one worker at a time and waits its turn like every other:
// it delays itself, not other subjects, not other tenants.
//
// A mailbox is bounded in memory (maxBytes) and in lag (maxLag: how long
// its oldest event has waited), and all of them together in memory
// (maxTotalBytes). A burst is absorbed (the workers catch up); a subject
// whose events keep arriving faster than its subscriptions can be routed
// overflows: its waiting events are dropped and its local subscriptions'
// connections are closed with 1013, to resume by cursor (replay reads the
// stream at the client's pace). Memory stays bounded and no subscription
// misses an event without knowing.
//
// Lock order: scheduler.mu is never held while taking index.mu or a
// subscription's mu (routing runs outside it).
type scheduler struct {
	n       *Node
	workers int

	maxBytes      int           // bound of one mailbox (eventBytes of its events)
	maxLag        time.Duration // bound of how long one mailbox's oldest event waits
	maxTotalBytes int           // bound of all mailboxes together
	now           func() int64  // monotonic nanoseconds; a test's clock

	mu         sync.Mutex
	boxes      map[string]*mailbox // subjects with events waiting or being routed; guarded by mu
	ready      []*mailbox          // the ready queue, from readyHead on; guarded by mu
	readyHead  int                 // guarded by mu
	spare      []*mailbox          // emptied mailboxes for reuse; guarded by mu
	totalBytes int                 // bytes of the events in every mailbox; guarded by mu

	queued    atomic.Int64  // events in every mailbox (gauge)
	overflows atomic.Uint64 // subjects that overflowed (counter)

	wake chan struct{} // a token per mailbox made ready; buffered to workers
	stop chan struct{} // closed by shutdown
	wg   sync.WaitGroup
}

// mailbox holds one subject's events that wait for routing.
type mailbox struct {
	subject string
	events  []*cluster.Event // waiting, from head on; guarded by scheduler.mu
	arrived []int64          // when each was queued (scheduler.now); guarded by scheduler.mu
	head    int              // guarded by scheduler.mu
	bytes   int              // of the waiting events; guarded by scheduler.mu
	// busy: in the ready queue or with a worker; guarded by scheduler.mu.
	busy bool
}

// Turn bounds. A worker routes up to turnEvents of a subject's events, or
// turnTime of work, before taking the next subject's. When it writes what
// it routed is its ws.Fanout's to decide: it tells it when it is idle and
// between turns.
const (
	turnEvents = 64
	turnTime   = time.Millisecond
)

// Default mailbox bounds.
const (
	defaultMailboxBytes = 64 << 20
	defaultMailboxLag   = 30 * time.Second
	defaultBacklogBytes = 256 << 20
)

// eventBytes is what a waiting event costs: its body and, roughly, the
// Event and its strings (subject, topic, cursor).
func eventBytes(ev *cluster.Event) int { return len(ev.Data) + 256 }

func newScheduler(n *Node, workers int) *scheduler {
	return &scheduler{
		n:             n,
		workers:       max(1, workers),
		maxBytes:      defaultMailboxBytes,
		maxLag:        defaultMailboxLag,
		maxTotalBytes: defaultBacklogBytes,
		now:           monotonic,
		boxes:         make(map[string]*mailbox),
		wake:          make(chan struct{}, max(1, workers)),
		stop:          make(chan struct{}),
	}
}

// start starts the workers; shutdown stops them.
func (s *scheduler) start() {
	for range s.workers {
		s.wg.Go(s.work) // owned by s: shutdown stops and waits for it
	}
}

// shutdown stops the workers and waits for them; events still waiting are
// dropped (the connections are closing).
func (s *scheduler) shutdown() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// dispatch queues ev for its subject's worker turn. It runs on the
// consumer's goroutine.
func (s *scheduler) dispatch(ev *cluster.Event) {
	var lagging []string
	s.mu.Lock()
	b := s.boxes[ev.Subject]
	if b == nil {
		b = s.newBox(ev.Subject)
	}
	size, now := eventBytes(ev), s.now()
	if b.bytes+size > s.maxBytes || b.head < len(b.events) && now-b.arrived[b.head] > int64(s.maxLag) {
		lagging = append(lagging, s.overflowLocked(b))
	} else {
		b.push(ev, size, now)
		s.totalBytes += size
		s.queued.Add(1)
		for s.totalBytes > s.maxTotalBytes {
			lagging = append(lagging, s.overflowLocked(s.largestLocked()))
		}
	}
	readied := false
	if !b.busy && len(b.events) > b.head {
		b.busy, readied = true, true
		s.ready = append(s.ready, b)
	} else if !b.busy {
		s.dropIfIdleLocked(b)
	}
	s.mu.Unlock()
	if readied {
		select {
		case s.wake <- struct{}{}:
		default: // every worker has a token to look for work already
		}
	}
	for _, subject := range lagging {
		s.n.lagging(subject)
	}
}

func (s *scheduler) newBox(subject string) *mailbox {
	var b *mailbox
	if k := len(s.spare); k > 0 {
		b, s.spare = s.spare[k-1], s.spare[:k-1]
		b.subject = subject
	} else {
		b = &mailbox{subject: subject}
	}
	s.boxes[subject] = b
	return b
}

func (b *mailbox) push(ev *cluster.Event, size int, now int64) {
	if b.head > 0 && len(b.events) == cap(b.events) {
		n := copy(b.events, b.events[b.head:])
		clear(b.events[n:])
		copy(b.arrived, b.arrived[b.head:])
		b.events, b.arrived, b.head = b.events[:n], b.arrived[:n], 0
	}
	b.events = append(b.events, ev)
	b.arrived = append(b.arrived, now)
	b.bytes += size
}

// overflowLocked drops b's waiting events and returns its subject, whose
// subscriptions the caller closes (Node.lagging) once s.mu is released.
func (s *scheduler) overflowLocked(b *mailbox) string {
	dropped := len(b.events) - b.head
	clear(b.events)
	b.events, b.arrived, b.head = b.events[:0], b.arrived[:0], 0
	s.totalBytes -= b.bytes
	b.bytes = 0
	s.queued.Add(int64(-dropped))
	s.overflows.Add(1)
	return b.subject
}

// largestLocked returns the mailbox with the most bytes waiting.
func (s *scheduler) largestLocked() *mailbox {
	var big *mailbox
	for _, b := range s.boxes {
		if big == nil || b.bytes > big.bytes {
			big = b
		}
	}
	return big
}

// dropIfIdleLocked forgets b when nothing waits in it and no worker has it.
func (s *scheduler) dropIfIdleLocked(b *mailbox) {
	if b.busy || len(b.events) > b.head {
		return
	}
	delete(s.boxes, b.subject)
	if cap(b.events) > 1024 { // a burst's backlog: give the memory back
		b.events, b.arrived = nil, nil
	}
	b.events, b.arrived, b.head, b.subject = b.events[:0], b.arrived[:0], 0, ""
	s.spare = append(s.spare, b)
}

// next takes the mailbox at the front of the ready queue, or nil.
func (s *scheduler) next() *mailbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readyHead == len(s.ready) {
		return nil
	}
	b := s.ready[s.readyHead]
	s.ready[s.readyHead] = nil
	s.readyHead++
	switch {
	case s.readyHead == len(s.ready):
		s.ready, s.readyHead = s.ready[:0], 0
	case s.readyHead >= cap(s.ready)/2:
		// Always something ready (more busy subjects than workers): move
		// the live part to the front rather than grow past the dead one.
		n := copy(s.ready, s.ready[s.readyHead:])
		clear(s.ready[n:])
		s.ready, s.readyHead = s.ready[:n], 0
	}
	return b
}

// take removes the oldest waiting event of b, or returns nil.
func (s *scheduler) take(b *mailbox) *cluster.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.head == len(b.events) {
		return nil
	}
	ev := b.events[b.head]
	b.events[b.head] = nil
	b.head++
	b.bytes -= eventBytes(ev)
	s.totalBytes -= eventBytes(ev)
	s.queued.Add(-1)
	return ev
}

// release ends a worker's turn on b: back of the queue if events wait,
// else forgotten. It reports whether other work is ready.
func (s *scheduler) release(b *mailbox) (more bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(b.events) > b.head {
		s.ready = append(s.ready, b)
	} else {
		b.busy = false
		s.dropIfIdleLocked(b)
	}
	return s.readyHead < len(s.ready)
}

// work is one worker: it routes turns of ready subjects, and lets its
// Fanout write when nothing is ready (Idle, again when it asks to be) and
// between turns (Busy).
func (s *scheduler) work() {
	r := newRouter(s.n)
	wait := time.NewTimer(time.Hour) // the Fanout's call-me-again
	wait.Stop()
	defer wait.Stop()
	for {
		b := s.next()
		if b == nil {
			var waitC <-chan time.Time
			if d := r.idle(); d > 0 {
				wait.Reset(d)
				waitC = wait.C
			}
			select {
			case <-s.wake:
			case <-waitC:
			case <-s.stop:
				return
			}
			wait.Stop()
			continue
		}
		start := time.Now()
		for range turnEvents {
			ev := s.take(b)
			if ev == nil {
				break
			}
			r.route(ev)
			if time.Since(start) >= turnTime {
				break
			}
		}
		// Other subjects are ready: the Fanout writes if events have
		// waited long enough, else after their turns (Idle).
		if s.release(b) {
			r.fan.Busy()
		}
	}
}

// lagging closes the connections of subject's local subscriptions, whose
// events arrived faster than they could be routed (scheduler overflow):
// they resume by cursor and replay at their own pace.
func (n *Node) lagging(subject string) {
	n.log.Warn("subject overflowed its routing backlog: closing its subscriptions' connections (1013); they resume by cursor",
		"subject", subject, "limit_bytes", n.sched.maxBytes, "limit_lag", n.sched.maxLag)
	n.idx.mu.RLock()
	defer n.idx.mu.RUnlock()
	rt := n.idx.subjects[subject]
	if rt == nil {
		return
	}
	for _, g := range rt.groups {
		for _, sub := range g.subs {
			sub.lagging()
		}
	}
}

// epoch anchors monotonic.
var epoch = time.Now()

// monotonic returns nanoseconds on the monotonic clock.
func monotonic() int64 { return int64(time.Since(epoch)) }
