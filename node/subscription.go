package node

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/limits"

	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// sink is where a subscription's messages go: a *ws.Subscription, or a
// fake in benchmarks.
type sink interface {
	Push(f *ws.Fanout, payload []byte) bool
	NextWait(ctx context.Context, payload []byte) bool
	Error(err error)
	Conn() *ws.Conn
}

var _ sink = (*ws.Subscription)(nil)

// subscription is one client subscription registered in the index.
type subscription struct {
	ws          sink
	log         *slog.Logger // the connection's, with the subscription id ("sub")
	plan        *query.Plan
	req         query.Request                  // what plan was compiled from, for a schema reload
	compiler    atomic.Pointer[query.Compiler] // the compiler plan was last checked against (reload.go)
	schemaEnded atomic.Bool                    // a schema reload ended it
	tenant      string
	subject     string
	cancel      context.CancelFunc // ends the replay, if any
	expiry      *time.Timer        // max_subscription_duration, if set
	drops       prometheus.Counter // events dropped by the event rate
	events      limits.Bucket      // event rate of this subscription

	group *group // guarded by index.mu
	pos   int    // guarded by index.mu

	mu        sync.Mutex
	lastSeq   uint64        // stream sequence of the last event sent; guarded by mu
	replaying bool          // live events are held back in pending; guarded by mu
	pending   []heldEvent   // guarded by mu
	overflow  bool          // pending outgrew its bound and was dropped; guarded by mu
	heldBytes int64         // payload bytes in pending; guarded by mu
	held      *atomic.Int64 // payload bytes held by all of the connection's subscriptions (nil: s's own bound)
	dropped   uint64        // events dropped by the event rate since the last sent; guarded by mu
	maxHeld   int           // bound of pending, in events
	maxBytes  int64         // bound of held, or of pending without it, in payload bytes (the connection's queue budget)
}

// heldEvent is a live event that arrived while the subscription replayed.
type heldEvent struct {
	seq     uint64
	payload []byte
}

// deliver queues one live event's shared payload for f's next write
// round (ws.Subscription.Push). Events at or below the last sent sequence
// are dropped, so replay and live never duplicate. It reports whether the
// event was queued.
func (s *subscription) deliver(f *ws.Fanout, seq uint64, payload []byte) bool {
	s.mu.Lock()
	if s.replaying {
		size := int64(len(payload))
		switch {
		case s.overflow:
			// Dropped: the next replay round reads it from the stream.
		case len(s.pending) < s.maxHeld && s.holdLocked(size):
			s.pending = append(s.pending, heldEvent{seq, payload})
		default:
			// More than the bound arrived during the replay: let go of
			// what is held (every event is in the stream) rather than
			// hold more; goLive then starts another replay round from
			// the last event sent (see Node.replay).
			s.overflow = true
			s.releaseHeldLocked()
		}
		s.mu.Unlock()
		return false
	}
	if seq <= s.lastSeq {
		s.mu.Unlock()
		return false
	}
	s.lastSeq = seq
	if !s.events.Allow() {
		s.dropped++
		s.mu.Unlock()
		s.drops.Inc()
		return false
	}
	if s.dropped > 0 {
		// The client learns how many it missed (it may resume from its
		// last cursor to get them): this subscriber's payload differs, so
		// it alone pays for a copy.
		payload = withDropped(payload, s.dropped)
		s.dropped = 0
	}
	s.mu.Unlock()
	return s.ws.Push(f, payload)
}

// holdLocked counts size more bytes held back, if the bound allows: the
// connection's, shared by its subscriptions (held), or, without one,
// this subscription's own. s.mu must be held.
func (s *subscription) holdLocked(size int64) bool {
	if s.held != nil {
		if s.held.Add(size) > s.maxBytes {
			s.held.Add(-size)
			return false
		}
	} else if s.heldBytes+size > s.maxBytes {
		return false
	}
	s.heldBytes += size
	return true
}

// releaseHeldLocked lets go of the held events and their count. s.mu must
// be held.
func (s *subscription) releaseHeldLocked() {
	if s.held != nil {
		s.held.Add(-s.heldBytes)
	}
	s.pending, s.heldBytes = nil, 0
}

// stopHolding releases what s holds and holds nothing more: s has ended,
// though a delivery may still be on its way.
func (s *subscription) stopHolding() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overflow = true
	s.releaseHeldLocked()
}

// withDropped returns a copy of an encodeNext payload with
// extensions.dropped set to n.
func withDropped(p []byte, n uint64) []byte {
	body := p[:len(p)-len("}}")] // up to the cursor's closing quote
	out := make([]byte, 0, len(p)+32)
	out = append(out, body...)
	out = append(out, `,"dropped":`...)
	out = strconv.AppendUint(out, n, 10)
	return append(out, "}}"...)
}

// sendReplayed sends one event read from the stream during replay. It
// waits for queue space (the client reads at its own pace) rather than
// treating a large backlog as a slow consumer, and never holds s.mu while
// waiting: live events meanwhile go to pending.
func (s *subscription) sendReplayed(ctx context.Context, seq uint64, payload []byte) bool {
	s.mu.Lock()
	if seq <= s.lastSeq {
		s.mu.Unlock()
		return true
	}
	s.lastSeq = seq
	s.mu.Unlock()
	return s.ws.NextWait(ctx, payload)
}

// goLive ends a replay round: it sends the held live events newer than both
// the last replayed one and the stream position the replay stopped at,
// then lets live events through. If the held events overflowed (and were
// dropped), it stays in replay, holding live events again from now on, and
// reports again with the sequence to replay after.
func (s *subscription) goLive(ctx context.Context, replayedUpTo uint64) (again bool, after uint64) {
	s.mu.Lock()
	if replayedUpTo > s.lastSeq {
		s.lastSeq = replayedUpTo
	}
	for {
		held, overflow := s.pending, s.overflow
		s.releaseHeldLocked()
		if overflow {
			// Reset before the next round reads the stream's end, so
			// that what arrives from now on is either held or replayed.
			s.overflow = false
			after = s.lastSeq
			s.mu.Unlock()
			return true, after
		}
		if len(held) == 0 {
			s.replaying = false // from here on, deliver sends live events
			s.mu.Unlock()
			return false, 0
		}
		s.mu.Unlock()
		for _, h := range held {
			if !s.sendReplayed(ctx, h.seq, h.payload) {
				s.mu.Lock()
				s.replaying = false
				s.mu.Unlock()
				return false, 0 // the subscription or connection ended
			}
		}
		s.mu.Lock()
	}
}

// lagging closes the subscription's connection with 1013: its subject's
// events arrived faster than the node could route them (see scheduler).
// The client reconnects and resumes from its last cursor.
func (s *subscription) lagging() {
	if c := s.ws.Conn(); c != nil {
		c.Close(ws.CloseTryAgainLater, "subscription fell behind its events; resume by cursor")
	}
}
