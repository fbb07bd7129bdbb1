package ws

import (
	"context"
	"encoding/json"
	"net/http"
)

// Handler opens sessions; the node implements it.
type Handler interface {
	// Open runs before the WebSocket upgrade, on the HTTP request, so that
	// connection caps and authentication can refuse with an HTTP status
	// instead of a close code. An error of type *HTTPError is answered with
	// its Status (and Retry-After when set) and the upgrade does not happen;
	// any other error is answered with 500 (and logged). If Open succeeds but
	// the upgrade then fails, the Session's Close is called with
	// HandshakeFailed.
	Open(r *http.Request) (Session, error)
}

// Session receives one connection's events.
//
// Init, Subscribe, Pong and client-initiated Unsubscribe calls are made
// from the connection's read goroutine (graphql-sse single connection
// mode: Subscribe and Unsubscribe from the goroutine of the request that
// asked for them). Unsubscribe for a subscription the
// server ended (Subscription.Complete or Error) is made from the
// connection's write goroutine. Either way, calls to one Session never
// overlap: they are made one at a time. Close comes last, exactly once,
// after every Unsubscribe. A Session method must not call back into
// anything that waits for another Session method of the same connection.
//
// A panic in a Session method is recovered, logged, and closes the
// connection with 4500.
type Session interface {
	// Init handles connection_init. The returned ack is sent as the
	// connection_ack payload (omitted when nil; it must be valid JSON, else
	// the connection is closed with 4500). An error of type *CloseError
	// closes the connection with it; any other error closes it with 4403
	// Forbidden (legacy graphql-ws: connection_error, then 4403).
	Init(ctx context.Context, c *Conn, payload json.RawMessage) (ack json.RawMessage, err error)

	// Subscribe starts a subscription. It must not block long: it runs on
	// the read goroutine. Returning nil accepts the subscription; from then
	// on sub.Next delivers results, and Unsubscribe is called exactly once
	// when it ends. Errors:
	//   - gqlerror.List or *gqlerror.Error: sent as the `error` message for
	//     sub's id; the subscription ends, the connection stays;
	//   - *CloseError: the connection is closed with it;
	//   - anything else: an `error` message with the generic text
	//     "Internal server error" and extensions.code INTERNAL_SERVER_ERROR
	//     (the cause is logged, never sent).
	// Unsubscribe is not called for a subscription Subscribe refused.
	//
	// Sessions should key their state by *Subscription, not by id: once a
	// subscription ended the client may reuse its id.
	Subscribe(ctx context.Context, sub *Subscription, req Request) error

	// Unsubscribe reports that a subscription Subscribe accepted has ended,
	// for any reason: client complete (legacy: stop), Subscription.Complete
	// or Error, or the connection closing. It is called exactly once per
	// accepted subscription.
	Unsubscribe(sub *Subscription)

	// Pong receives the payload of a client ping or pong (nil when absent),
	// e.g. for token refresh. It may be a no-op.
	Pong(payload json.RawMessage)

	// Close reports that the connection ended and why. It is called once,
	// last.
	Close(reason CloseReason)
}

// Request is the payload of a subscribe (legacy: start) message.
// Variables and Extensions are nil when absent or null.
type Request struct {
	Query         string          `json:"query"`
	OperationName string          `json:"operationName,omitempty"`
	Variables     json.RawMessage `json:"variables,omitempty"`
	Extensions    json.RawMessage `json:"extensions,omitempty"`
}
