package ws

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestDecodeMessage(t *testing.T) {
	cases := []struct {
		name  string
		proto protocol
		in    string
		want  clientMessage
		err   error
	}{
		{"init", transportWS{}, `{"type":"connection_init","payload":{"a":1}}`, clientMessage{typ: msgInit, payload: json.RawMessage(`{"a":1}`)}, nil},
		{"init null payload", transportWS{}, `{"type":"connection_init","payload":null}`, clientMessage{typ: msgInit}, nil},
		{"ping", transportWS{}, `{"type":"ping"}`, clientMessage{typ: msgPing}, nil},
		{"subscribe", transportWS{}, `{"id":"x","type":"subscribe","payload":{"query":"q","operationName":null,"variables":null,"extensions":{"cursor":"c"}}}`,
			clientMessage{typ: msgSubscribe, id: "x", req: Request{Query: "q", Extensions: json.RawMessage(`{"cursor":"c"}`)}}, nil},
		{"complete", transportWS{}, `{"id":"x","type":"complete"}`, clientMessage{typ: msgComplete, id: "x"}, nil},
		{"legacy start", legacyWS{}, `{"id":"1","type":"start","payload":{"query":"q"}}`, clientMessage{typ: msgSubscribe, id: "1", req: Request{Query: "q"}}, nil},
		{"legacy stop", legacyWS{}, `{"id":"1","type":"stop"}`, clientMessage{typ: msgComplete, id: "1"}, nil},
		{"legacy terminate", legacyWS{}, `{"type":"connection_terminate"}`, clientMessage{typ: msgTerminate}, nil},
		{"legacy has no subscribe", legacyWS{}, `{"id":"1","type":"subscribe","payload":{"query":"q"}}`, clientMessage{}, errUnknownType},
		{"transport has no start", transportWS{}, `{"id":"1","type":"start","payload":{"query":"q"}}`, clientMessage{}, errUnknownType},
		{"null", transportWS{}, `null`, clientMessage{}, errUnknownType},
		{"number id", transportWS{}, `{"id":1,"type":"complete"}`, clientMessage{}, errInvalidJSON},
		{"type not string", transportWS{}, `{"type":1}`, clientMessage{}, errInvalidJSON},
		{"payload string", transportWS{}, `{"id":"1","type":"subscribe","payload":"query"}`, clientMessage{}, errInvalidPayload},
		{"query number", transportWS{}, `{"id":"1","type":"subscribe","payload":{"query":1}}`, clientMessage{}, errInvalidPayload},
		{"empty query", transportWS{}, `{"id":"1","type":"subscribe","payload":{"query":""}}`, clientMessage{}, errMissingQuery},
		{"no payload", transportWS{}, `{"id":"1","type":"subscribe"}`, clientMessage{}, errInvalidPayload},
		{"trailing garbage", transportWS{}, `{"type":"ping"} x`, clientMessage{}, errInvalidJSON},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeMessage(tc.proto, []byte(tc.in))
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if got.typ != tc.want.typ || got.id != tc.want.id || !bytes.Equal(got.payload, tc.want.payload) ||
				got.req.Query != tc.want.req.Query || got.req.OperationName != tc.want.req.OperationName ||
				!bytes.Equal(got.req.Variables, tc.want.req.Variables) || !bytes.Equal(got.req.Extensions, tc.want.req.Extensions) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzDecodeMessage feeds arbitrary bytes to the client-message decoder of
// both subprotocols: it must never panic, must refuse only with a 4400
// CloseError whose reason fits a close frame, and what it accepts must
// satisfy the invariants the connection code relies on.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"connection_init"}`,
		`{"type":"connection_init","payload":{"token":"abc"}}`,
		`{"type":"ping","payload":{}}`,
		`{"type":"pong"}`,
		`{"id":"1","type":"subscribe","payload":{"query":"subscription { a }","variables":{"x":1},"operationName":"A","extensions":{"cursor":"c"}}}`,
		`{"id":"1","type":"complete"}`,
		`{"id":"1","type":"start","payload":{"query":"q"}}`,
		`{"id":"1","type":"stop"}`,
		`{"type":"connection_terminate"}`,
		`{`, `null`, `[]`, `""`, `{"type":null}`, `{"id":"","type":"complete"}`,
		`{"id":"1","type":"subscribe","payload":{"query":"q","variables":[1,2]}}`,
		`{"id":"\u0000\ud800","type":"subscribe","payload":{"query":"q"}}`,
		`{"type":"subscribe","id":"1","payload":{"query":"q"},"type":"ping"}`,
		"{\"type\":\"ping\",\"payload\":{\"a\":\"\xff\"}}",
		`{"type":"ping","payload":` + string(bytes.Repeat([]byte("["), 1000)) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range []protocol{transportWS{}, legacyWS{}} {
			m, err := decodeMessage(p, data)
			if err != nil {
				ce, ok := err.(*CloseError)
				if !ok || ce.Code != CloseBadRequest || len(ce.Reason) > maxCloseReason {
					t.Fatalf("%s: error %#v", p.name(), err)
				}
				continue
			}
			if !json.Valid(data) {
				t.Fatalf("%s: accepted invalid JSON %q", p.name(), data)
			}
			switch m.typ {
			case msgSubscribe:
				if m.id == "" || m.req.Query == "" {
					t.Fatalf("%s: subscribe without id or query: %+v", p.name(), m)
				}
				for _, raw := range []json.RawMessage{m.req.Variables, m.req.Extensions} {
					if raw != nil && (raw[0] != '{' || !json.Valid(raw)) {
						t.Fatalf("%s: non-object %q", p.name(), raw)
					}
				}
			case msgComplete:
				if m.id == "" {
					t.Fatalf("%s: complete without id", p.name())
				}
			case msgInit, msgPing, msgPong, msgTerminate:
				if m.payload != nil && (m.payload[0] != '{' || !json.Valid(m.payload)) {
					t.Fatalf("%s: non-object payload %q", p.name(), m.payload)
				}
			default:
				t.Fatalf("%s: unknown type %d accepted", p.name(), m.typ)
			}
			if (m.typ == msgPing || m.typ == msgPong) && p.name() == SubprotocolLegacyWS {
				t.Fatalf("legacy accepted %d", m.typ)
			}
			// What the decoder accepts, the writer can frame: the id
			// becomes a JSON string in every prefix.
			if m.id != "" {
				frame := append(p.nextPrefix(jsonString(m.id)), `{}}`...)
				if !json.Valid(frame) {
					t.Fatalf("%s: invalid frame %q", p.name(), frame)
				}
			}
		}
	})
}
