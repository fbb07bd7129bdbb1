package ws

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

func TestTransportFlow(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	cl := e.dial(t, SubprotocolTransportWS)
	if got := cl.c.Subprotocol(); got != SubprotocolTransportWS {
		t.Fatalf("negotiated %q", got)
	}
	sess := e.session(t)

	cl.send(`{"type":"connection_init","payload":{"token":"t"}}`)
	cl.expect(`{"type":"connection_ack"}`)
	ev := sess.expect(t, "init")
	if ev.payload != `{"token":"t"}` || ev.conn.Protocol() != SubprotocolTransportWS {
		t.Fatalf("init payload %s protocol %s", ev.payload, ev.conn.Protocol())
	}

	cl.send(`{"id":"1","type":"subscribe","payload":{"query":"subscription { a }","operationName":"Op","variables":{"x":1},"extensions":{"cursor":"c1"}}}`)
	ev = sess.expect(t, "subscribe")
	sub := ev.sub
	want := Request{Query: "subscription { a }", OperationName: "Op", Variables: json.RawMessage(`{"x":1}`), Extensions: json.RawMessage(`{"cursor":"c1"}`)}
	if ev.req.Query != want.Query || ev.req.OperationName != want.OperationName ||
		string(ev.req.Variables) != string(want.Variables) || string(ev.req.Extensions) != string(want.Extensions) {
		t.Fatalf("request %+v, want %+v", ev.req, want)
	}
	if sub.ID() != "1" || sub.Conn() != ev.sub.Conn() {
		t.Fatalf("sub id %q", sub.ID())
	}

	payload := []byte(`{"data":{"a":1},"extensions":{"cursor":"c2"}}`)
	for range 3 {
		if !sub.Next(payload) {
			t.Fatal("Next refused on an active subscription")
		}
	}
	for range 3 {
		cl.expect(`{"id":"1","type":"next","payload":{"data":{"a":1},"extensions":{"cursor":"c2"}}}`)
	}
	if string(payload) != `{"data":{"a":1},"extensions":{"cursor":"c2"}}` {
		t.Fatal("Next modified the shared payload")
	}

	cl.send(`{"id":"1","type":"complete"}`)
	if ev := sess.expect(t, "unsubscribe"); ev.sub != sub {
		t.Fatal("Unsubscribe for another subscription")
	}
	select {
	case <-sub.Done():
	default:
		t.Fatal("Done not closed after complete")
	}
	if sub.Next(payload) {
		t.Fatal("Next accepted after the client completed")
	}
	sub.Complete() // no-op: already ended
	// Unknown id: ignored.
	cl.send(`{"id":"nope","type":"complete"}`)
	// The pong proves nothing for id 1 was written after the complete.
	cl.send(`{"type":"ping"}`)
	cl.expect(`{"type":"pong"}`)
	sess.expect(t, "pong")

	// The id can be reused once the subscription ended.
	cl.send(`{"id":"1","type":"subscribe","payload":{"query":"subscription { a }"}}`)
	sub2 := sess.expect(t, "subscribe").sub
	if sub2 == sub {
		t.Fatal("reused subscription")
	}
	if err := cl.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatalf("client close: %v", err)
	}
	if ev := sess.expect(t, "unsubscribe"); ev.sub != sub2 {
		t.Fatal("remaining subscription not unsubscribed on close")
	}
	sess.expectClosed(t, ClientClosed)
}

func TestTransportServerEnds(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	cl := e.dial(t, SubprotocolTransportWS)
	sess := e.session(t)
	cl.initTransport()
	sess.expect(t, "init")

	cl.send(`{"id":"a","type":"subscribe","payload":{"query":"q"}}`)
	a := sess.expect(t, "subscribe").sub
	cl.send(`{"id":"b","type":"subscribe","payload":{"query":"q"}}`)
	b := sess.expect(t, "subscribe").sub

	// Frames queued before Complete are still delivered, then complete.
	a.Next([]byte(`{"data":1}`))
	a.Complete()
	cl.expect(`{"id":"a","type":"next","payload":{"data":1}}`)
	cl.expect(`{"id":"a","type":"complete"}`)
	if ev := sess.expect(t, "unsubscribe"); ev.sub != a {
		t.Fatal("wrong unsubscribe")
	}
	if a.Next([]byte(`{}`)) {
		t.Fatal("Next accepted after Complete")
	}

	b.Error(gqlerror.List{{Message: "cursor expired", Extensions: map[string]any{"code": "CURSOR_EXPIRED"}}})
	cl.expect(`{"id":"b","type":"error","payload":[{"message":"cursor expired","extensions":{"code":"CURSOR_EXPIRED"}}]}`)
	if ev := sess.expect(t, "unsubscribe"); ev.sub != b {
		t.Fatal("wrong unsubscribe")
	}
	b.Error(errors.New("again")) // no-op

	// Expire: error, then complete, then unsubscribe.
	cl.send(`{"id":"c","type":"subscribe","payload":{"query":"q"}}`)
	c := sess.expect(t, "subscribe").sub
	c.Expire(gqlerror.List{{Message: "expired", Extensions: map[string]any{"code": "SUBSCRIPTION_EXPIRED"}}})
	cl.expect(`{"id":"c","type":"error","payload":[{"message":"expired","extensions":{"code":"SUBSCRIPTION_EXPIRED"}}]}`)
	cl.expect(`{"id":"c","type":"complete"}`)
	if ev := sess.expect(t, "unsubscribe"); ev.sub != c {
		t.Fatal("wrong unsubscribe")
	}
	c.Expire(errors.New("again")) // no-op
	// Both ids are free again.
	cl.send(`{"id":"a","type":"subscribe","payload":{"query":"q"}}`)
	sess.expect(t, "subscribe")

	if err := cl.c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	sess.expectClosed(t, ClientClosed)
}

func TestTransportSubscribeErrors(t *testing.T) {
	e := startEnv(t, Options{}, func(s *fakeSession) {
		s.subscribe = func(ctx context.Context, sub *Subscription, req Request) error {
			switch req.Query {
			case "list":
				return gqlerror.List{{Message: "bad field", Extensions: map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}}, {Message: "second"}}
			case "one":
				return &gqlerror.Error{Message: "too deep", Extensions: map[string]any{"code": "FILTER_TOO_DEEP"}}
			case "wrapped":
				return errors.Join(errors.New("context"), gqlerror.Errorf("limited"))
			case "internal":
				return errors.New("pq: password authentication failed")
			case "error-then-nil":
				sub.Error(gqlerror.Errorf("expired"))
				return nil
			}
			return nil
		}
	})
	cl := e.dial(t)
	sess := e.session(t)
	cl.initTransport()
	sess.expect(t, "init")

	cases := []struct{ query, want string }{
		{"list", `{"id":"1","type":"error","payload":[{"message":"bad field","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}},{"message":"second"}]}`},
		{"one", `{"id":"1","type":"error","payload":[{"message":"too deep","extensions":{"code":"FILTER_TOO_DEEP"}}]}`},
		{"wrapped", `{"id":"1","type":"error","payload":[{"message":"limited"}]}`},
		{"internal", `{"id":"1","type":"error","payload":[{"message":"Internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`},
	}
	for _, tc := range cases {
		// The same id every time: a refused subscription leaves no trace.
		cl.send(`{"id":"1","type":"subscribe","payload":{"query":"` + tc.query + `"}}`)
		cl.expect(tc.want)
		sess.expect(t, "refused")
	}
	cl.send(`{"id":"2","type":"subscribe","payload":{"query":"error-then-nil"}}`)
	cl.expect(`{"id":"2","type":"error","payload":[{"message":"expired"}]}`)
	sess.expect(t, "subscribe")
	sess.expect(t, "unsubscribe")

	// The connection is still usable. A ping's payload comes back in its
	// pong, as from the graphql-ws reference server; no payload, none.
	cl.send(`{"type":"ping","payload":{"n":1}}`)
	cl.expect(`{"type":"pong","payload":{"n":1}}`)
	if ev := sess.expect(t, "pong"); ev.payload != `{"n":1}` {
		t.Fatalf("pong payload %s", ev.payload)
	}
	cl.send(`{"type":"pong","payload":{"n":2}}`)
	if ev := sess.expect(t, "pong"); ev.payload != `{"n":2}` {
		t.Fatalf("pong payload %s", ev.payload)
	}
	_ = cl.c.Close(websocket.StatusNormalClosure, "")
	sess.expectClosed(t, ClientClosed)
}

func TestTransportServerPing(t *testing.T) {
	e := startEnv(t, Options{KeepAlive: 20 * time.Millisecond}, nil)
	cl := e.dial(t, SubprotocolTransportWS)
	sess := e.session(t)
	cl.initTransport()
	cl.expect(`{"type":"ping"}`)
	cl.expect(`{"type":"ping"}`)
	cl.send(`{"type":"pong"}`)
	if ev := sess.expect(t, "init"); ev.kind != "init" {
		t.Fatal(ev.kind)
	}
	if ev := sess.expect(t, "pong"); ev.payload != "" {
		t.Fatalf("pong payload %q", ev.payload)
	}
}

func TestAckPayload(t *testing.T) {
	e := startEnv(t, Options{}, func(s *fakeSession) {
		s.init = func(context.Context, *Conn, json.RawMessage) (json.RawMessage, error) {
			return json.RawMessage(`{"node":"n1"}`), nil
		}
	})
	cl := e.dial(t)
	cl.send(`{"type":"connection_init"}`)
	cl.expect(`{"type":"connection_ack","payload":{"node":"n1"}}`)
}

// closeCase is a send/expect transcript that ends with a close.
type closeCase struct {
	name   string
	opts   Options
	setup  func(*fakeSession)
	proto  string
	steps  []string // "> msg" sends, "< msg" expects, "> bin" sends a binary frame
	code   CloseCode
	reason string
	why    CloseReason
}

var closeCases = []closeCase{
	{name: "bad JSON", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {`},
		code: CloseBadRequest, reason: reasonInvalidJSON, why: BadMessage},
	{name: "bad JSON before init", steps: []string{`> not json`},
		code: CloseBadRequest, reason: reasonInvalidJSON, why: BadMessage},
	{name: "JSON array", steps: []string{`> []`},
		code: CloseBadRequest, reason: reasonInvalidJSON, why: BadMessage},
	{name: "unknown type", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {"type":"start","id":"1"}`},
		code: CloseBadRequest, reason: reasonUnknownType, why: BadMessage},
	{name: "missing type", steps: []string{`> {"id":"1"}`},
		code: CloseBadRequest, reason: reasonUnknownType, why: BadMessage},
	{name: "missing id", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {"type":"subscribe","payload":{"query":"q"}}`},
		code: CloseBadRequest, reason: reasonMissingID, why: BadMessage},
	{name: "empty id on complete", steps: []string{`> {"type":"complete","id":""}`},
		code: CloseBadRequest, reason: reasonMissingID, why: BadMessage},
	{name: "missing query", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {"id":"1","type":"subscribe","payload":{"variables":{}}}`},
		code: CloseBadRequest, reason: reasonMissingQuery, why: BadMessage},
	{name: "variables not an object", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {"id":"1","type":"subscribe","payload":{"query":"q","variables":[1]}}`},
		code: CloseBadRequest, reason: reasonInvalidPayload, why: BadMessage},
	{name: "init payload not an object", steps: []string{`> {"type":"connection_init","payload":"x"}`},
		code: CloseBadRequest, reason: reasonInvalidPayload, why: BadMessage},
	{name: "binary frame", steps: []string{`> bin`},
		code: CloseBadRequest, reason: reasonBinary, why: BadMessage},
	// RFC 6455 §8.1: a text frame that is not valid UTF-8 fails the
	// connection with 1007, in either subprotocol (legacy graphql-ws
	// otherwise answers a bad message with connection_error and stays).
	{name: "invalid UTF-8 text", steps: []string{"> \xff\xfe"},
		code: CloseInvalidPayload, reason: reasonInvalidUTF8, why: BadMessage},
	{name: "invalid UTF-8 in a JSON string", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, "> {\"type\":\"ping\",\"payload\":{\"a\":\"\xff\"}}"},
		code: CloseInvalidPayload, reason: reasonInvalidUTF8, why: BadMessage},
	{name: "legacy invalid UTF-8 text", proto: SubprotocolLegacyWS, steps: []string{"> \xff\xfe"},
		code: CloseInvalidPayload, reason: reasonInvalidUTF8, why: BadMessage},
	{name: "legacy invalid UTF-8 in a JSON string", proto: SubprotocolLegacyWS, steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `< {"type":"ka"}`, "> {\"type\":\"start\",\"id\":\"1\",\"payload\":{\"query\":\"\xc3\"}}"},
		code: CloseInvalidPayload, reason: reasonInvalidUTF8, why: BadMessage},
	{name: "subscribe before ack", steps: []string{`> {"id":"1","type":"subscribe","payload":{"query":"q"}}`},
		code: CloseUnauthorized, reason: "Unauthorized", why: Unauthorized},
	{name: "init rejected",
		setup: func(s *fakeSession) {
			s.init = func(context.Context, *Conn, json.RawMessage) (json.RawMessage, error) {
				return nil, errors.New("jwt: signature invalid")
			}
		},
		steps: []string{`> {"type":"connection_init","payload":{"token":"bad"}}`},
		code:  CloseForbidden, reason: "Forbidden", why: Forbidden},
	{name: "init close error",
		setup: func(s *fakeSession) {
			s.init = func(context.Context, *Conn, json.RawMessage) (json.RawMessage, error) {
				return nil, &CloseError{Code: CloseUnauthorized, Reason: "token expired"}
			}
		},
		steps: []string{`> {"type":"connection_init"}`},
		code:  CloseUnauthorized, reason: "token expired", why: Unauthorized},
	{name: "init timeout", opts: Options{InitTimeout: 30 * time.Millisecond},
		code: CloseInitTimeout, reason: "Connection initialisation timeout", why: InitTimeout},
	{name: "duplicate id", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`,
		`> {"id":"1","type":"subscribe","payload":{"query":"q"}}`, `> {"id":"1","type":"subscribe","payload":{"query":"q"}}`},
		code: CloseDuplicateID, reason: "Subscriber for 1 already exists", why: DuplicateID},
	{name: "duplicate long id", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`,
		`> {"id":"` + strings.Repeat("é", 100) + `","type":"subscribe","payload":{"query":"q"}}`,
		`> {"id":"` + strings.Repeat("é", 100) + `","type":"subscribe","payload":{"query":"q"}}`},
		code: CloseDuplicateID, reason: "Subscriber for " + strings.Repeat("é", 54), why: DuplicateID},
	{name: "second init", steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {"type":"connection_init"}`},
		code: CloseTooManyInits, reason: "Too many initialisation requests", why: TooManyInits},
	{name: "subscribe panics",
		setup: func(s *fakeSession) {
			s.subscribe = func(context.Context, *Subscription, Request) error { panic("boom") }
		},
		steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {"id":"1","type":"subscribe","payload":{"query":"q"}}`},
		code:  CloseInternal, reason: "Internal server error", why: InternalError},
	{name: "ack not JSON",
		setup: func(s *fakeSession) {
			s.init = func(context.Context, *Conn, json.RawMessage) (json.RawMessage, error) {
				return json.RawMessage(`{`), nil
			}
		},
		steps: []string{`> {"type":"connection_init"}`},
		code:  CloseInternal, reason: "Internal server error", why: InternalError},
	{name: "subscribe close error",
		setup: func(s *fakeSession) {
			s.subscribe = func(context.Context, *Subscription, Request) error {
				return &CloseError{Code: CloseForbidden, Reason: "Forbidden"}
			}
		},
		steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {"id":"1","type":"subscribe","payload":{"query":"q"}}`},
		code:  CloseForbidden, reason: "Forbidden", why: Forbidden},
	{name: "session closes conn",
		setup: func(s *fakeSession) {
			s.subscribe = func(_ context.Context, sub *Subscription, _ Request) error {
				sub.Conn().Close(4000, "session expired")
				return nil
			}
		},
		steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `> {"id":"1","type":"subscribe","payload":{"query":"q"}}`},
		code:  4000, reason: "session expired", why: ServerClosed},
	{name: "invalid code from session",
		setup: func(s *fakeSession) {
			s.init = func(_ context.Context, c *Conn, _ json.RawMessage) (json.RawMessage, error) {
				c.Close(1005, "x")
				return nil, nil
			}
		},
		steps: []string{`> {"type":"connection_init"}`},
		code:  CloseInternal, reason: "x", why: InternalError},

	// Legacy graphql-ws.
	{name: "legacy init rejected", proto: SubprotocolLegacyWS,
		setup: func(s *fakeSession) {
			s.init = func(context.Context, *Conn, json.RawMessage) (json.RawMessage, error) {
				return nil, errors.New("secret cause")
			}
		},
		steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_error","payload":{"message":"Forbidden"}}`},
		code:  CloseForbidden, reason: "Forbidden", why: Forbidden},
	{name: "legacy start before init", proto: SubprotocolLegacyWS,
		steps: []string{`> {"id":"1","type":"start","payload":{"query":"q"}}`},
		code:  CloseUnauthorized, reason: "Unauthorized", why: Unauthorized},
	{name: "legacy init timeout", proto: SubprotocolLegacyWS, opts: Options{InitTimeout: 30 * time.Millisecond},
		code: CloseInitTimeout, reason: "Connection initialisation timeout", why: InitTimeout},
	{name: "legacy duplicate id", proto: SubprotocolLegacyWS,
		steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `< {"type":"ka"}`,
			`> {"id":"1","type":"start","payload":{"query":"q"}}`, `> {"id":"1","type":"start","payload":{"query":"q"}}`},
		code: CloseDuplicateID, reason: "Subscriber for 1 already exists", why: DuplicateID},
	{name: "legacy connection_terminate", proto: SubprotocolLegacyWS,
		steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `< {"type":"ka"}`, `> {"type":"connection_terminate"}`},
		code:  CloseNormal, why: ClientClosed},
	{name: "legacy second init", proto: SubprotocolLegacyWS,
		steps: []string{`> {"type":"connection_init"}`, `< {"type":"connection_ack"}`, `< {"type":"ka"}`, `> {"type":"connection_init"}`},
		code:  CloseTooManyInits, reason: "Too many initialisation requests", why: TooManyInits},
}

func TestCloseCodes(t *testing.T) {
	for _, tc := range closeCases {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, tc.opts, tc.setup)
			proto := tc.proto
			if proto == "" {
				proto = SubprotocolTransportWS
			}
			cl := e.dial(t, proto)
			sess := e.session(t)
			runSteps(cl, tc.steps)
			cl.expectClose(tc.code, tc.reason)
			sess.expectClosed(t, tc.why)
		})
	}
}

// runSteps plays a transcript: "> msg" sends msg, "> bin" sends a binary
// frame, "< msg" expects exactly msg.
func runSteps(cl *client, steps []string) {
	cl.t.Helper()
	for _, s := range steps {
		dir, msg, _ := strings.Cut(s, " ")
		switch {
		case dir == ">" && msg == "bin":
			cl.sendType(websocket.MessageBinary, `{"type":"connection_init"}`)
		case dir == ">":
			cl.send(msg)
		case dir == "<":
			cl.expect(msg)
		default:
			cl.t.Fatalf("bad step %q", s)
		}
	}
}

func TestReadLimit(t *testing.T) {
	const limit = 512
	e := startEnv(t, Options{ReadLimit: limit}, nil)
	cl := e.dial(t)
	sess := e.session(t)
	msg := func(n int) string {
		head, tail := `{"type":"ping","payload":{"p":"`, `"}}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	cl.send(msg(limit))
	cl.expect(strings.Replace(msg(limit), "ping", "pong", 1))
	cl.send(msg(limit + 1))
	cl.expectClose(CloseMessageTooBig, "")
	sess.expectClosed(t, MessageTooBig)
}
