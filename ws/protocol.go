package ws

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// The WebSocket subprotocols served, in order of preference.
const (
	// SubprotocolTransportWS is the graphql-ws library's protocol
	// (transport_ws.go).
	SubprotocolTransportWS = "graphql-transport-ws"
	// SubprotocolLegacyWS is Apollo's subscriptions-transport-ws protocol
	// (legacy_ws.go).
	SubprotocolLegacyWS = "graphql-ws"
)

var supportedSubprotocols = []string{SubprotocolTransportWS, SubprotocolLegacyWS}

// protocol is one GraphQL-over-WebSocket subprotocol: how it names client
// messages, how it encodes server frames, and how it reacts to each client
// message.
type protocol interface {
	name() string
	// messageType maps a client message's "type" to a msgType.
	messageType(t string) (msgType, bool)

	// nextPrefix is a result frame up to its payload; the writer appends
	// the payload and "}".
	nextPrefix(idJSON []byte) []byte
	completeFrame(idJSON []byte) []byte
	errorFrame(idJSON []byte, errs gqlerror.List) ([]byte, error)
	ackFrame(payload json.RawMessage) []byte
	// keepAliveFrame is sent every Options.KeepAlive from the ack on, and
	// right after the ack too when keepAliveOnAck says so.
	keepAliveFrame() []byte
	keepAliveOnAck() bool

	// handle reacts to one decoded client message (read goroutine).
	handle(c *Conn, m clientMessage)
	// badMessage reacts to a message decodeMessage refused (read goroutine).
	badMessage(c *Conn, err *CloseError)
}

// negotiate picks the subprotocol from the client's Sec-WebSocket-Protocol
// offer: graphql-transport-ws if offered, else graphql-ws if offered, else
// graphql-transport-ws when nothing is offered. It reports false when the
// client offered only subprotocols we do not speak.
//
// coder/websocket's Accept picks the same one from supportedSubprotocols
// (it walks the server's list first), so the answer header agrees.
func negotiate(h http.Header) (protocol, bool) {
	offered, legacy := false, false
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				continue
			}
			offered = true
			switch {
			case strings.EqualFold(tok, SubprotocolTransportWS):
				return transportWS{}, true
			case strings.EqualFold(tok, SubprotocolLegacyWS):
				legacy = true
			}
		}
	}
	switch {
	case legacy:
		return legacyWS{}, true
	case !offered:
		return transportWS{}, true
	}
	return nil, false
}

// concat joins byte strings into one new slice (frame building off the hot
// path).
func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
