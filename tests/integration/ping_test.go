//go:build integration

package integration

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// TestPingPayloadEchoedAndRefreshes: a graphql-transport-ws `pong` carries
// its `ping`'s payload, as the graphql-ws reference server's does, and a
// token in that payload still refreshes the connection: it outlives its
// first token.
func TestPingPayloadEchoedAndRefreshes(t *testing.T) {
	e := authEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.ws, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	short := token(t, testSecret, "public", "p", jwt.MapClaims{"exp": time.Now().Add(2 * time.Second).Unix()})
	long := token(t, testSecret, "public", "p", nil)
	send := func(m string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	// expect reads until a message that is not a server ping, which must be want.
	expect := func(want string) {
		t.Helper()
		for range 10 {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			_, b, err := c.Read(rctx)
			rcancel()
			if err != nil {
				t.Fatalf("read: %v, want %s", err, want)
			}
			if string(b) == `{"type":"ping"}` {
				continue
			}
			if string(b) != want {
				t.Fatalf("got  %s\nwant %s", b, want)
			}
			return
		}
		t.Fatalf("only server pings, want %s", want)
	}
	send(`{"type":"connection_init","payload":{"token":"` + short + `"}}`)
	expect(`{"type":"connection_ack"}`)
	ping := `{"type":"ping","payload":{"token":"` + long + `"}}`
	send(ping)
	expect(`{"type":"pong","payload":{"token":"` + long + `"}}`)
	time.Sleep(3 * time.Second) // past the first token's expiry: refreshed, still open
	send(`{"type":"ping"}`)
	expect(`{"type":"pong"}`)
}
