package ws

// This file implements the graphql-transport-ws subprotocol, as specified
// by the graphql-ws library:
// https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md

import (
	"encoding/json"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

type transportWS struct{}

var _ protocol = transportWS{}

// Static frames.
var (
	transportPing = []byte(`{"type":"ping"}`)
	transportPong = []byte(`{"type":"pong"}`)
	transportAck  = []byte(`{"type":"connection_ack"}`)
)

func (transportWS) name() string { return SubprotocolTransportWS }

func (transportWS) messageType(t string) (msgType, bool) {
	switch t {
	case "connection_init":
		return msgInit, true
	case "ping":
		return msgPing, true
	case "pong":
		return msgPong, true
	case "subscribe":
		return msgSubscribe, true
	case "complete":
		return msgComplete, true
	}
	return 0, false
}

// nextPrefix: {"id":"<id>","type":"next","payload":
func (transportWS) nextPrefix(idJSON []byte) []byte {
	return concat([]byte(`{"id":`), idJSON, []byte(`,"type":"next","payload":`))
}

// completeFrame: {"id":"<id>","type":"complete"}
func (transportWS) completeFrame(idJSON []byte) []byte {
	return concat([]byte(`{"id":`), idJSON, []byte(`,"type":"complete"}`))
}

// errorFrame: {"id":"<id>","type":"error","payload":[<GraphQLError>...]}
// ("Error" in PROTOCOL.md: the payload is a list of GraphQL errors).
func (transportWS) errorFrame(idJSON []byte, errs gqlerror.List) ([]byte, error) {
	payload, err := json.Marshal(errs)
	if err != nil {
		return nil, err
	}
	return concat([]byte(`{"id":`), idJSON, []byte(`,"type":"error","payload":`), payload, []byte(`}`)), nil
}

// ackFrame: {"type":"connection_ack"} with the optional payload
// ("ConnectionAck" in PROTOCOL.md).
func (transportWS) ackFrame(payload json.RawMessage) []byte {
	if payload == nil {
		return transportAck
	}
	return concat([]byte(`{"type":"connection_ack","payload":`), payload, []byte(`}`))
}

// pongFrame: {"type":"pong"}, with payload (a JSON object the decoder
// checked) when the ping had one ("Pong" in PROTOCOL.md).
func pongFrame(payload json.RawMessage) []byte {
	if payload == nil {
		return transportPong
	}
	return concat([]byte(`{"type":"pong","payload":`), payload, []byte(`}`))
}

// keepAliveFrame is a server ping ("Ping" in PROTOCOL.md); the client
// answers pong, which reaches Session.Pong.
func (transportWS) keepAliveFrame() []byte { return transportPing }

func (transportWS) keepAliveOnAck() bool { return false }

func (transportWS) handle(c *Conn, m clientMessage) {
	switch m.typ {
	case msgInit:
		// "ConnectionInit": more than one → 4429.
		if c.initReceived.Swap(true) {
			c.closeWith(CloseTooManyInits, reasonTooManyInits, TooManyInits)
			return
		}
		if ce := c.init(m.payload); ce != nil {
			c.closeWith(ce.Code, ce.Reason, reasonForCode(ce.Code))
		}
	case msgPing:
		// "Ping": answer pong as soon as possible, carrying the ping's
		// payload, as the graphql-ws reference server does (its
		// makeServer without onPing). The Session then sees the payload
		// (a token refresh, say).
		c.enqueue(frame{payload: pongFrame(m.payload), kind: kindRaw})
		c.pong(m.payload)
	case msgPong:
		c.pong(m.payload)
	case msgSubscribe:
		// "Subscribe": only after the ack, else 4401; an active id → 4409.
		if !c.acked {
			c.closeWith(CloseUnauthorized, reasonUnauthorized, Unauthorized)
			return
		}
		c.subscribe(m.id, m.req)
	case msgComplete:
		// "Complete" from the client: stop; unknown ids are ignored.
		c.complete(m.id)
	}
}

// badMessage: "Invalid message" → immediate close with 4400.
func (transportWS) badMessage(c *Conn, err *CloseError) {
	c.closeWith(err.Code, err.Reason, BadMessage)
}
