package ws

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

func TestLegacyFlow(t *testing.T) {
	e := startEnv(t, Options{}, func(s *fakeSession) {
		s.subscribe = func(_ context.Context, _ *Subscription, req Request) error {
			if req.Query == "bad" {
				return gqlerror.List{{Message: "first", Extensions: map[string]any{"code": "GRAPHQL_PARSE_FAILED"}}, {Message: "second"}}
			}
			return nil
		}
	})
	cl := e.dial(t, SubprotocolLegacyWS)
	if got := cl.c.Subprotocol(); got != SubprotocolLegacyWS {
		t.Fatalf("negotiated %q", got)
	}
	sess := e.session(t)

	cl.send(`{"type":"connection_init","payload":{"authToken":"x"}}`)
	cl.expect(`{"type":"connection_ack"}`)
	cl.expect(`{"type":"ka"}`)
	if ev := sess.expect(t, "init"); ev.payload != `{"authToken":"x"}` || ev.conn.Protocol() != SubprotocolLegacyWS {
		t.Fatalf("init %+v", ev)
	}

	cl.send(`{"id":"1","type":"start","payload":{"query":"subscription { a }","variables":null}}`)
	ev := sess.expect(t, "subscribe")
	sub := ev.sub
	if ev.req.Query != "subscription { a }" || ev.req.Variables != nil {
		t.Fatalf("request %+v", ev.req)
	}
	sub.Next([]byte(`{"data":{"a":1}}`))
	cl.expect(`{"type":"data","id":"1","payload":{"data":{"a":1}}}`)

	cl.send(`{"id":"1","type":"stop"}`)
	cl.expect(`{"type":"complete","id":"1"}`)
	sess.expect(t, "unsubscribe")
	if sub.Next([]byte(`{}`)) {
		t.Fatal("Next accepted after stop")
	}
	cl.send(`{"id":"1","type":"stop"}`) // unknown now: ignored, no complete

	// Subscribe error: the payload is the first error object.
	cl.send(`{"id":"2","type":"start","payload":{"query":"bad"}}`)
	cl.expect(`{"type":"error","id":"2","payload":{"message":"first","extensions":{"code":"GRAPHQL_PARSE_FAILED"}}}`)
	sess.expect(t, "refused")

	// Server-side completion.
	cl.send(`{"id":"3","type":"start","payload":{"query":"q"}}`)
	s3 := sess.expect(t, "subscribe").sub
	s3.Complete()
	cl.expect(`{"type":"complete","id":"3"}`)
	sess.expect(t, "unsubscribe")

	// Lifetime expiry: error, then complete.
	cl.send(`{"id":"9","type":"start","payload":{"query":"q"}}`)
	s9 := sess.expect(t, "subscribe").sub
	s9.Expire(&gqlerror.Error{Message: "expired", Extensions: map[string]any{"code": "SUBSCRIPTION_EXPIRED"}})
	cl.expect(`{"type":"error","id":"9","payload":{"message":"expired","extensions":{"code":"SUBSCRIPTION_EXPIRED"}}}`)
	cl.expect(`{"type":"complete","id":"9"}`)
	sess.expect(t, "unsubscribe")

	// A message that cannot be parsed: connection_error, connection stays.
	cl.send(`{"type":"nope"}`)
	cl.expect(`{"type":"connection_error","payload":{"message":"Unknown message type"}}`)
	cl.send(`{`)
	cl.expect(`{"type":"connection_error","payload":{"message":"Invalid message received"}}`)

	cl.send(`{"id":"4","type":"start","payload":{"query":"q"}}`)
	s4 := sess.expect(t, "subscribe").sub
	s4.Error(gqlerror.Errorf("gone"))
	cl.expect(`{"type":"error","id":"4","payload":{"message":"gone"}}`)
	sess.expect(t, "unsubscribe")

	cl.send(`{"type":"connection_terminate"}`)
	cl.expectClose(CloseNormal, "")
	sess.expectClosed(t, ClientClosed)
}

func TestLegacyKeepAlive(t *testing.T) {
	e := startEnv(t, Options{KeepAlive: 20 * time.Millisecond}, nil)
	cl := e.dial(t, SubprotocolLegacyWS)
	cl.send(`{"type":"connection_init"}`)
	cl.expect(`{"type":"connection_ack"}`)
	cl.expect(`{"type":"ka"}`)
	cl.expect(`{"type":"ka"}`)
	cl.expect(`{"type":"ka"}`)
}

func TestLegacyKeepAliveDisabled(t *testing.T) {
	e := startEnv(t, Options{KeepAlive: -1}, nil)
	cl := e.dial(t, SubprotocolLegacyWS)
	sess := e.session(t)
	cl.send(`{"type":"connection_init"}`)
	cl.expect(`{"type":"connection_ack"}`)
	sess.expect(t, "init")
	cl.send(`{"id":"1","type":"start","payload":{"query":"q"}}`)
	sess.expect(t, "subscribe").sub.Next([]byte(`1`))
	// No ka between the ack and the data.
	cl.expect(`{"type":"data","id":"1","payload":1}`)
	_ = cl.c.Close(websocket.StatusNormalClosure, "")
	sess.expectClosed(t, ClientClosed)
}
