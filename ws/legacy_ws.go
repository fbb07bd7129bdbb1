package ws

// This file implements the legacy graphql-ws subprotocol of Apollo's
// subscriptions-transport-ws, as specified in
// https://github.com/apollographql/subscriptions-transport-ws/blob/master/PROTOCOL.md
//
// That protocol defines no close codes. Where it leaves behaviour open this
// package uses the graphql-transport-ws codes: start before the ack → 4401,
// init timeout → 4408, duplicate id → 4409, second connection_init → 4429,
// rejected init → connection_error then 4403. As PROTOCOL.md says for
// GQL_CONNECTION_ERROR, a message that cannot be parsed is answered with
// connection_error and does not close the connection.

import (
	"encoding/json"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

type legacyWS struct{}

var _ protocol = legacyWS{}

// Static frames.
var (
	legacyKA  = []byte(`{"type":"ka"}`)
	legacyAck = []byte(`{"type":"connection_ack"}`)
)

func (legacyWS) name() string { return SubprotocolLegacyWS }

func (legacyWS) messageType(t string) (msgType, bool) {
	switch t {
	case "connection_init": // GQL_CONNECTION_INIT
		return msgInit, true
	case "start": // GQL_START
		return msgSubscribe, true
	case "stop": // GQL_STOP
		return msgComplete, true
	case "connection_terminate": // GQL_CONNECTION_TERMINATE
		return msgTerminate, true
	}
	return 0, false
}

// nextPrefix: GQL_DATA {"type":"data","id":"<id>","payload":
func (legacyWS) nextPrefix(idJSON []byte) []byte {
	return concat([]byte(`{"type":"data","id":`), idJSON, []byte(`,"payload":`))
}

// completeFrame: GQL_COMPLETE {"type":"complete","id":"<id>"}
func (legacyWS) completeFrame(idJSON []byte) []byte {
	return concat([]byte(`{"type":"complete","id":`), idJSON, []byte(`}`))
}

// errorFrame: GQL_ERROR {"type":"error","id":"<id>","payload":<error>}; the
// payload is one error object, so the first of errs is sent.
func (legacyWS) errorFrame(idJSON []byte, errs gqlerror.List) ([]byte, error) {
	payload, err := json.Marshal(errs[0])
	if err != nil {
		return nil, err
	}
	return concat([]byte(`{"type":"error","id":`), idJSON, []byte(`,"payload":`), payload, []byte(`}`)), nil
}

// ackFrame: GQL_CONNECTION_ACK, with the Session's payload when it has one.
func (legacyWS) ackFrame(payload json.RawMessage) []byte {
	if payload == nil {
		return legacyAck
	}
	return concat([]byte(`{"type":"connection_ack","payload":`), payload, []byte(`}`))
}

// keepAliveFrame: GQL_CONNECTION_KEEP_ALIVE, "sent right after each
// GQL_CONNECTION_ACK processed and then periodically".
func (legacyWS) keepAliveFrame() []byte { return legacyKA }

func (legacyWS) keepAliveOnAck() bool { return true }

// connectionError: GQL_CONNECTION_ERROR {"type":"connection_error","payload":{"message":"…"}}.
func connectionError(message string) []byte {
	msg, _ := json.Marshal(message) // a string always marshals
	return concat([]byte(`{"type":"connection_error","payload":{"message":`), msg, []byte(`}}`))
}

func (legacyWS) handle(c *Conn, m clientMessage) {
	switch m.typ {
	case msgInit:
		if c.initReceived.Swap(true) {
			c.closeWith(CloseTooManyInits, reasonTooManyInits, TooManyInits)
			return
		}
		if ce := c.init(m.payload); ce != nil {
			// connection_error, then close once it is written. Reading
			// stops here so that nothing closes the connection before.
			c.enqueue(frame{payload: connectionError(ce.Reason), kind: kindRaw})
			c.closeAfterQueued(ce.Code, ce.Reason, reasonForCode(ce.Code))
			c.stopRead = true
		}
	case msgSubscribe:
		if !c.acked {
			c.closeWith(CloseUnauthorized, reasonUnauthorized, Unauthorized)
			return
		}
		c.subscribe(m.id, m.req)
	case msgComplete:
		// GQL_STOP: unsubscribe, and confirm with GQL_COMPLETE.
		if c.complete(m.id) {
			c.enqueue(frame{payload: legacyWS{}.completeFrame(jsonString(m.id)), kind: kindRaw})
		}
	case msgTerminate:
		c.closeWith(CloseNormal, reasonNormal, ClientClosed)
	}
}

// badMessage: GQL_CONNECTION_ERROR, and the connection stays.
func (legacyWS) badMessage(c *Conn, err *CloseError) {
	c.enqueue(frame{payload: connectionError(err.Reason), kind: kindRaw})
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
