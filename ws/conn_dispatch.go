package ws

import (
	"context"
	"encoding/json"
	"errors"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Dispatch: the read goroutine reads client messages and hands them to
// the protocol and the Session; Session calls of one connection never
// overlap (Conn.sessMu).

// readLoop reads and dispatches client messages until the connection
// starts closing or the socket fails.
func (c *Conn) readLoop() {
	for !c.stopRead && !c.isClosing() {
		// context.Background: cancelling a coder/websocket read drops the
		// socket without a close frame. Closing unblocks this read instead:
		// the writer's close handshake makes the client answer, or the
		// socket is closed.
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.isClosing() {
			return
		}
		if typ != websocket.MessageText {
			c.proto.badMessage(c, errBinary)
			continue
		}
		if !utf8.Valid(data) {
			// RFC 6455 §8.1: invalid UTF-8 in a text message fails the
			// connection with 1007, whatever the subprotocol (and the
			// JSON decoder would otherwise turn it into U+FFFD).
			c.closeWith(CloseInvalidPayload, reasonInvalidUTF8, BadMessage)
			return
		}
		m, err := decodeMessage(c.proto, data)
		if err != nil {
			c.proto.badMessage(c, err.(*CloseError))
			continue
		}
		c.proto.handle(c, m)
	}
}

// readFailed records why the socket stopped reading.
func (c *Conn) readFailed(err error) {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		// coder/websocket already sent the 1009 close frame.
		c.closeWith(CloseMessageTooBig, reasonMessageTooBig, MessageTooBig)
	case websocket.CloseStatus(err) != -1:
		// The client sent a close frame; coder/websocket answered it.
		c.closeWith(CloseNormal, reasonNormal, ClientClosed)
	default:
		c.closeNow(ConnectionLost)
	}
}

// endSub completes a server-ended subscription's bookkeeping: it leaves the
// id table and its Session hears Unsubscribe. Runs on the write goroutine,
// before the end frame is written, so that a client reusing the id after
// seeing the frame never hits 4409.
func (c *Conn) endSub(s *Subscription) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.subs[s.id] == s {
		delete(c.subs, s.id)
	}
	c.unsubscribeLocked(s)
}

// unsubscribeLocked calls Session.Unsubscribe for s if Subscribe accepted it
// and it was not called yet. c.sessMu must be held.
func (c *Conn) unsubscribeLocked(s *Subscription) {
	if !s.accepted || s.unsubscribed {
		return
	}
	s.unsubscribed = true
	c.callSession("Unsubscribe", func() { c.sess.Unsubscribe(s) })
}

// callSession runs a Session method, turning a panic into a logged 4500
// close. It reports whether f returned normally.
func (c *Conn) callSession(method string, f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("ws: session panicked", "method", method, "panic", r, "stack", string(debug.Stack()))
			c.closeWith(CloseInternal, reasonInternal, InternalError)
			ok = false
		}
	}()
	f()
	return true
}

// init handles connection_init: the Session's Init, then the ack. It
// returns the close error to reject the connection with, or nil once the
// ack is queued.
func (c *Conn) init(payload json.RawMessage) *CloseError {
	c.stopInitTimer()
	var (
		ack json.RawMessage
		err error
	)
	c.sessMu.Lock()
	ok := c.callSession("Init", func() { ack, err = c.sess.Init(c.ctx, c, payload) })
	c.sessMu.Unlock()
	switch {
	case !ok:
		return &CloseError{Code: CloseInternal, Reason: reasonInternal}
	case err != nil:
		if ce, ok := errors.AsType[*CloseError](err); ok {
			code := ce.Code
			if !validCloseCode(code) {
				code = CloseInternal
			}
			return &CloseError{Code: code, Reason: truncateReason(ce.Reason)}
		}
		c.logger().Debug("ws: connection_init rejected", "err", err)
		return &CloseError{Code: CloseForbidden, Reason: reasonForbidden}
	case ack != nil && !json.Valid(ack):
		c.logger().Error("ws: session returned an ack payload that is not JSON")
		return &CloseError{Code: CloseInternal, Reason: reasonInternal}
	}
	c.acked = true
	c.singleReady.Store(c.single) // before the stream's head: a client may POST once it has it
	c.enqueue(frame{payload: c.proto.ackFrame(ack), kind: kindAck})
	return nil
}

// subscribe handles subscribe (legacy: start) for an acknowledged
// connection.
func (c *Conn) subscribe(id string, req Request) {
	c.sessMu.Lock()
	if _, dup := c.subs[id]; dup {
		c.sessMu.Unlock()
		c.closeWith(CloseDuplicateID, truncateReason("Subscriber for "+id+" already exists"), DuplicateID)
		return
	}
	sub, ok, err := c.startSubLocked(id, req)
	c.sessMu.Unlock()
	if ok && err == nil {
		return
	}
	if !ok {
		sub.stop(subCancelled) // the connection is closing with 4500
		return
	}
	if ce, isClose := errors.AsType[*CloseError](err); isClose {
		sub.stop(subCancelled)
		c.closeWithError(ce)
		return
	}
	if sub.stop(subEnding) { // else the Session ended it already: that frame is queued
		c.enqueue(frame{sub: sub, payload: c.errorFrame(sub.idJSON, err), kind: kindEnd})
	}
}

// startSubLocked offers subscription id to Session.Subscribe: accepted,
// it is the connection's; refused (err, or ok false: the Session
// panicked), it is not. c.sessMu must be held.
func (c *Conn) startSubLocked(id string, req Request) (sub *Subscription, ok bool, err error) {
	sub = newSubscription(c, id)
	c.subs[id] = sub
	ok = c.callSession("Subscribe", func() { err = c.sess.Subscribe(c.ctx, sub, req) })
	if ok && err == nil {
		sub.accepted = true
	} else {
		delete(c.subs, id)
	}
	return sub, ok, err
}

// complete handles a client complete (legacy: stop). It reports whether
// the subscription was active; an unknown or already ended id is ignored.
func (c *Conn) complete(id string) bool {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	s := c.subs[id]
	if s == nil {
		return false
	}
	if !s.stop(subCancelled) {
		// Server-ended already: its end frame is queued, and the write
		// goroutine unsubscribes it; cancelling dropped its queued frames.
		return false
	}
	delete(c.subs, id)
	c.unsubscribeLocked(s)
	return true
}

// pong passes a client ping or pong payload to the Session.
func (c *Conn) pong(payload json.RawMessage) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	c.callSession("Pong", func() { c.sess.Pong(payload) })
}

// internalErrors is the error list sent for errors that are not GraphQL
// errors: the cause is logged, never sent.
var internalErrors = gqlerror.List{{
	Message:    reasonInternal,
	Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR"},
}}

// errorFrame builds the `error` frame for err (see Session.Subscribe).
func (c *Conn) errorFrame(idJSON []byte, err error) []byte {
	list := c.gqlErrors(err, idJSON)
	b, mErr := c.proto.errorFrame(idJSON, list)
	if mErr != nil {
		c.logger().Error("ws: cannot encode GraphQL error; sending a generic one", "err", mErr)
		b, _ = c.proto.errorFrame(idJSON, internalErrors)
	}
	return b
}

// gqlErrors returns the GraphQL errors err carries, or the generic internal
// error (logging err) when it carries none.
func (c *Conn) gqlErrors(err error, idJSON []byte) gqlerror.List {
	if list, ok := errors.AsType[gqlerror.List](err); ok {
		out := make(gqlerror.List, 0, len(list))
		for _, e := range list {
			if e != nil {
				out = append(out, e)
			}
		}
		if len(out) > 0 {
			return out
		}
	} else if e, ok := errors.AsType[*gqlerror.Error](err); ok && e != nil {
		return gqlerror.List{e}
	}
	c.logger().Error("ws: subscription failed", "sub", strings.Trim(string(idJSON), `"`), "err", err)
	return internalErrors
}
