package ws

import (
	"bytes"
	"encoding/json"
)

// msgType is a client message type, shared by both subprotocols: each maps
// its own type names onto these (transport_ws.go, legacy_ws.go).
type msgType uint8

const (
	msgInit      msgType = iota + 1 // connection_init
	msgPing                         // ping (graphql-transport-ws only)
	msgPong                         // pong (graphql-transport-ws only)
	msgSubscribe                    // subscribe; legacy: start
	msgComplete                     // complete; legacy: stop
	msgTerminate                    // legacy: connection_terminate
)

// clientMessage is one decoded client message.
type clientMessage struct {
	typ msgType
	// id is set for msgSubscribe and msgComplete, never empty there.
	id string
	// payload is the init, ping or pong payload: a JSON object, or nil when
	// absent or null.
	payload json.RawMessage
	// req is the subscribe payload.
	req Request
}

// wireMessage is the envelope both subprotocols share:
// {"type": string, "id"?: string, "payload"?: any}.
type wireMessage struct {
	Type    *string         `json:"type"`
	ID      *string         `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// wireRequest is a subscribe payload before validation.
type wireRequest struct {
	Query         *string         `json:"query"`
	OperationName *string         `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
	Extensions    json.RawMessage `json:"extensions"`
}

// Decode errors. Their text is public: it becomes the close reason (or the
// legacy connection_error message), so it is fixed and never echoes input.
var (
	errInvalidJSON    = &CloseError{Code: CloseBadRequest, Reason: reasonInvalidJSON}
	errUnknownType    = &CloseError{Code: CloseBadRequest, Reason: reasonUnknownType}
	errMissingID      = &CloseError{Code: CloseBadRequest, Reason: reasonMissingID}
	errInvalidPayload = &CloseError{Code: CloseBadRequest, Reason: reasonInvalidPayload}
	errMissingQuery   = &CloseError{Code: CloseBadRequest, Reason: reasonMissingQuery}
	errBinary         = &CloseError{Code: CloseBadRequest, Reason: reasonBinary}
)

// decodeMessage parses one client text message of protocol p. It returns
// one of the *CloseError values above (code 4400) when the message is not
// one the protocol allows. It never panics, whatever data holds.
func decodeMessage(p protocol, data []byte) (clientMessage, error) {
	var w wireMessage
	if err := json.Unmarshal(data, &w); err != nil {
		return clientMessage{}, errInvalidJSON
	}
	if w.Type == nil {
		// Also reached for a top-level null.
		return clientMessage{}, errUnknownType
	}
	typ, ok := p.messageType(*w.Type)
	if !ok {
		return clientMessage{}, errUnknownType
	}
	m := clientMessage{typ: typ}
	switch typ {
	case msgSubscribe, msgComplete:
		if w.ID == nil || *w.ID == "" {
			return clientMessage{}, errMissingID
		}
		m.id = *w.ID
	}
	switch typ {
	case msgSubscribe:
		req, err := decodeRequest(w.Payload)
		if err != nil {
			return clientMessage{}, err
		}
		m.req = req
	case msgInit, msgPing, msgPong:
		payload, ok := optionalObject(w.Payload)
		if !ok {
			return clientMessage{}, errInvalidPayload
		}
		m.payload = payload
	}
	return m, nil
}

// decodeRequest validates a subscribe payload: an object with a non-empty
// query string, and variables and extensions that are objects when present.
func decodeRequest(payload json.RawMessage) (Request, error) {
	if len(payload) == 0 || payload[0] != '{' {
		return Request{}, errInvalidPayload
	}
	var w wireRequest
	if err := json.Unmarshal(payload, &w); err != nil {
		return Request{}, errInvalidPayload
	}
	if w.Query == nil || *w.Query == "" {
		return Request{}, errMissingQuery
	}
	req := Request{Query: *w.Query}
	if w.OperationName != nil {
		req.OperationName = *w.OperationName
	}
	var ok bool
	if req.Variables, ok = optionalObject(w.Variables); !ok {
		return Request{}, errInvalidPayload
	}
	if req.Extensions, ok = optionalObject(w.Extensions); !ok {
		return Request{}, errInvalidPayload
	}
	return req, nil
}

var jsonNull = []byte("null")

// optionalObject accepts an absent or null value (returned as nil) or a
// JSON object. raw is already valid JSON: json.Unmarshal checked it.
func optionalObject(raw json.RawMessage) (json.RawMessage, bool) {
	if len(raw) == 0 || bytes.Equal(raw, jsonNull) {
		return nil, true
	}
	return raw, raw[0] == '{'
}
