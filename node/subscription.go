package node

import (
	"context"
	"sync"

	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// sink is where a subscription's messages go: a *ws.Subscription, or a
// fake in benchmarks.
type sink interface {
	Next(payload []byte) bool
	Error(err error)
	Conn() *ws.Conn
}

var _ sink = (*ws.Subscription)(nil)

// subscription is one client subscription registered in the index.
type subscription struct {
	ws      sink
	plan    *query.Plan
	tenant  string
	subject string
	cancel  context.CancelFunc // ends the replay, if any

	group *group // guarded by index.mu
	pos   int    // guarded by index.mu

	mu        sync.Mutex
	lastSeq   uint64      // stream sequence of the last event sent; guarded by mu
	replaying bool        // live events are held back in pending; guarded by mu
	pending   []heldEvent // guarded by mu
	overflow  bool        // pending outgrew its bound; guarded by mu
	maxHeld   int         // bound of pending
}

// heldEvent is a live event that arrived while the subscription replayed.
type heldEvent struct {
	seq     uint64
	payload []byte
}

// deliver sends one live event's shared payload. Events at or below the last
// sent sequence are dropped, so replay and live never duplicate. It reports
// whether the event was queued.
func (s *subscription) deliver(seq uint64, payload []byte) bool {
	s.mu.Lock()
	if s.replaying {
		if len(s.pending) < s.maxHeld {
			s.pending = append(s.pending, heldEvent{seq, payload})
		} else {
			s.overflow = true
		}
		s.mu.Unlock()
		return false
	}
	if seq <= s.lastSeq {
		s.mu.Unlock()
		return false
	}
	s.lastSeq = seq
	s.mu.Unlock()
	return s.ws.Next(payload)
}

// sendReplayed sends one event read from the stream during replay.
func (s *subscription) sendReplayed(seq uint64, payload []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.lastSeq {
		return true
	}
	s.lastSeq = seq
	return s.ws.Next(payload)
}

// goLive ends the replay: it sends the held live events newer than both the
// last replayed one and the stream position the replay stopped at, then lets
// live events through. It reports false if the held events overflowed.
func (s *subscription) goLive(replayedUpTo uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replaying = false
	held := s.pending
	s.pending = nil
	if s.overflow {
		return false
	}
	if replayedUpTo > s.lastSeq {
		s.lastSeq = replayedUpTo
	}
	for _, h := range held {
		if h.seq <= s.lastSeq {
			continue
		}
		s.lastSeq = h.seq
		if !s.ws.Next(h.payload) {
			return true // the queue closed the connection; nothing more to do
		}
	}
	return true
}
