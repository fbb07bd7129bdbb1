package ws

import (
	"context"
	"errors"
	"sync/atomic"
)

// Subscription states. A subscription moves forward only:
// active → ending → cancelled, or active → cancelled.
const (
	// subActive: Next queues frames.
	subActive int32 = iota
	// subEnding: the server ended it (Complete, Error, or Subscribe refused
	// it); its end frame is queued behind the frames queued before it, which
	// are still delivered. Next refuses.
	subEnding
	// subCancelled: the client completed it (legacy: stop) or the connection
	// is closing. Frames still queued for it are dropped, so the client never
	// sees a `next` after its `complete`.
	subCancelled
)

// Subscription is one operation the client subscribed to. Its methods are
// safe for concurrent use.
type Subscription struct {
	id   string
	conn *Conn
	// prefix is the encoded frame up to the payload, e.g.
	// {"id":"1","type":"next","payload": — computed once, so that delivering
	// a result only appends the shared payload and a closing brace.
	prefix []byte
	// idJSON is id as a JSON string, for the frames built off the hot path.
	idJSON []byte

	state atomic.Int32
	done  chan struct{} // closed when the state leaves subActive

	// ended: its end frame (complete or error) was written; `next` frames
	// queued behind it are dropped. Guarded by conn.wmu.
	ended bool

	// Guarded by conn.sessMu.
	accepted     bool // Subscribe returned nil
	unsubscribed bool // Session.Unsubscribe was called
}

func newSubscription(c *Conn, id string) *Subscription {
	idJSON := jsonString(id)
	return &Subscription{
		id:     id,
		conn:   c,
		prefix: c.proto.nextPrefix(idJSON),
		idJSON: idJSON,
		done:   make(chan struct{}),
	}
}

// ID returns the client-chosen operation id.
func (s *Subscription) ID() string { return s.id }

// Conn returns the connection the subscription belongs to.
func (s *Subscription) Conn() *Conn { return s.conn }

// Done is closed when the subscription stops taking results: it was
// completed by either side or failed, or its connection has closed (for
// the moment closing starts, watch Conn().Context(); Next refuses from
// then on).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Next queues a `next` frame (legacy graphql-ws: `data`) whose payload is
// exactly payload: an encoded ExecutionResult object such as
// {"data":{...},"extensions":{"cursor":"..."}}. It never blocks.
//
// payload may be shared by many subscriptions: it is never modified, and it
// is not retained once written (or once the connection ended).
//
// Next returns false if the subscription has ended, if the connection is
// closing, or if the connection's write queue is full — in which case the
// connection is closed as a slow consumer (1013) and the client resumes by
// cursor after reconnecting.
func (s *Subscription) Next(payload []byte) bool {
	if s.state.Load() != subActive {
		return false
	}
	return s.conn.enqueue(frame{sub: s, payload: payload, kind: kindNext})
}

// NextWait is Next for bulk senders such as a replay from a cursor: when
// the connection's queue is full it waits for space (the client reads at
// its own pace) instead of closing the connection, until ctx is done or
// the connection closes. It reports whether the frame was queued.
func (s *Subscription) NextWait(ctx context.Context, payload []byte) bool {
	if s.state.Load() != subActive {
		return false
	}
	return s.conn.enqueueWait(ctx, frame{sub: s, payload: payload, kind: kindNext})
}

// Complete ends the subscription from the server side: frames already
// queued for it are delivered, then `complete`, and Session.Unsubscribe is
// called. It does nothing if the subscription already ended.
func (s *Subscription) Complete() {
	if !s.stop(subEnding) {
		return
	}
	s.conn.enqueue(frame{sub: s, payload: s.conn.proto.completeFrame(s.idJSON), kind: kindEnd})
}

// Error ends the subscription with an `error` message, built as for errors
// returned by Session.Subscribe: gqlerror.List and *gqlerror.Error are sent
// as they are, anything else as a generic INTERNAL_SERVER_ERROR (its text
// is logged, never sent). Frames already queued are delivered first;
// Session.Unsubscribe is called. A *CloseError instead closes the whole
// connection (which ends the subscription). It does nothing if the
// subscription already ended.
func (s *Subscription) Error(err error) {
	if ce, ok := errors.AsType[*CloseError](err); ok {
		s.conn.closeWithError(ce)
		return
	}
	if !s.stop(subEnding) {
		return
	}
	s.conn.enqueue(frame{sub: s, payload: s.conn.errorFrame(s.idJSON, err), kind: kindEnd})
}

// Expire ends the subscription because it outlived its allowed lifetime:
// it sends `error` with err (built as for Error), then `complete`, so that
// clients of either protocol see both why it ended and that it ended.
// Frames already queued are delivered first; Session.Unsubscribe is
// called. It does nothing if the subscription already ended.
func (s *Subscription) Expire(err error) {
	if !s.stop(subEnding) {
		return
	}
	s.conn.enqueue(frame{sub: s, payload: s.conn.errorFrame(s.idJSON, err), kind: kindRaw})
	s.conn.enqueue(frame{sub: s, payload: s.conn.proto.completeFrame(s.idJSON), kind: kindEnd})
}

// dropsNext reports whether a queued `next` frame of s must not be written:
// the client completed s, or its end frame was written already. Called
// with conn.wmu held.
func (s *Subscription) dropsNext() bool {
	return s.ended || s.state.Load() == subCancelled
}

// stop moves s to state to (subEnding or subCancelled). It reports whether
// s was active, in which case the caller owns ending it.
func (s *Subscription) stop(to int32) bool {
	for {
		cur := s.state.Load()
		if cur >= to {
			return false
		}
		if s.state.CompareAndSwap(cur, to) {
			if cur == subActive {
				close(s.done)
				return true
			}
			return false
		}
	}
}
