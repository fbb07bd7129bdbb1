//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

const testSecret = "integration-test-secret-0123456789abcdef"

// authEnv starts NATS and a node that requires HS256 tokens (audience
// "fraiseql"), with the event rate lifted so bulk tests see every event.
func authEnv(t *testing.T) *env {
	t.Helper()
	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) {
		c.Auth = v
		c.Limits.EventRate = -1
	})
}

// token mints an HS256 token; extra claims override the defaults.
func token(t *testing.T, secret, tenant, sub string, extra jwt.MapClaims) string {
	t.Helper()
	claims := jwt.MapClaims{"tenant": tenant, "sub": sub, "aud": "fraiseql", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dialAs connects with a token in connection_init and waits for the ack.
func dialAs(t *testing.T, e *env, tok string) *client {
	t.Helper()
	c := dial(t, e.ws, "graphql-transport-ws")
	c.send(`{"type":"connection_init","payload":{"Authorization":"Bearer ` + tok + `"}}`)
	c.expectType("connection_ack")
	return c
}

func (e *env) publishTo(tenant, topic, body string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.cl.Publish(ctx, tenant, topic, []byte(body), ""); err != nil {
		e.t.Fatalf("publish %s/%s: %v", tenant, topic, err)
	}
}

func TestBadTokensClose4403BeforeAnyData(t *testing.T) {
	e := authEnv(t)
	cases := []struct {
		name, init string
	}{
		{"no token", `{"type":"connection_init"}`},
		{"bad signature", `{"type":"connection_init","payload":{"token":"` + token(t, "another-secret-0123456789abcdefghijkl", "public", "u", nil) + `"}}`},
		{"expired", `{"type":"connection_init","payload":{"token":"` + token(t, testSecret, "public", "u", jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}) + `"}}`},
		{"wrong audience", `{"type":"connection_init","payload":{"token":"` + token(t, testSecret, "public", "u", jwt.MapClaims{"aud": "other"}) + `"}}`},
		{"tenant wildcard", `{"type":"connection_init","payload":{"token":"` + token(t, testSecret, ">", "u", nil) + `"}}`},
		{"tenant with a dot", `{"type":"connection_init","payload":{"token":"` + token(t, testSecret, "a.b", "u", nil) + `"}}`},
		{"alg none", `{"type":"connection_init","payload":{"token":"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ0ZW5hbnQiOiJwdWJsaWMiLCJzdWIiOiJ1In0."}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, e.ws, "graphql-transport-ws")
			c.send(tc.init)
			// The first thing the client sees is the close: no ack, no data.
			_, err := c.readErr(10 * time.Second)
			if got := websocket.CloseStatus(err); got != 4403 {
				t.Fatalf("got %v (%v), want close 4403 before any message", got, err)
			}
		})
	}
	if n := e.node.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions exist", n)
	}
}

func TestTokenInUpgradeHeader(t *testing.T) {
	e := authEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := map[string][]string{"Authorization": {"Bearer " + token(t, testSecret, "acme", "ann", nil)}}
	wc, _, err := websocket.Dial(ctx, e.ws, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.CloseNow()
	wc.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_init"}`))
	wc.Write(ctx, websocket.MessageText, []byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription { messageAdded(room: \"r1\") { id } }"}}`))
	_, ack, err := wc.Read(ctx)
	if err != nil || !strings.Contains(string(ack), "connection_ack") {
		t.Fatalf("ack: %s %v", ack, err)
	}
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	if got := e.node.Subjects(); !slices.Equal(got, []string{"fraiseql.acme.chat.r1"}) {
		t.Fatalf("subjects %v, want the header token's tenant", got)
	}
}

// TestTenantIsolation: two tenants subscribed to the same topic name each
// receive only their own events: 1,000 each, zero crossings.
func TestTenantIsolation(t *testing.T) {
	const events = 1000
	e := authEnv(t)
	acme := dialAs(t, e, token(t, testSecret, "acme", "a1", nil))
	globex := dialAs(t, e, token(t, testSecret, "globex", "g1", nil))
	q := `subscription { messageAdded(room: "r1") { id text } }`
	acme.subscribe("1", q, nil, "")
	globex.subscribe("1", q, nil, "")
	waitFor(t, 5*time.Second, "2 subscriptions", func() bool { return e.node.Stats().Subscriptions == 2 })
	go func() { // interleaved publishers
		for i := 0; i < events; i++ {
			e.publishTo("acme", "chat.r1", fmt.Sprintf(`{"id":"%d","room":"r1","text":"acme"}`, i))
			e.publishTo("globex", "chat.r1", fmt.Sprintf(`{"id":"%d","room":"r1","text":"globex"}`, i))
		}
	}()
	var wg sync.WaitGroup
	for name, c := range map[string]*client{"acme": acme, "globex": globex} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < events; i++ {
				m, err := c.readErr(20 * time.Second)
				if err != nil {
					t.Errorf("%s: event %d: %v", name, i, err)
					return
				}
				var r result
				json.Unmarshal(m.Payload, &r)
				want := fmt.Sprintf(`{"id":"%d","text":"%s"}`, i, name)
				if string(r.Data["messageAdded"]) != want {
					t.Errorf("%s: event %d = %s, want %s", name, i, r.Data["messageAdded"], want)
					return
				}
			}
		}()
	}
	wg.Wait()
	acme.expectNothing(200 * time.Millisecond)
	globex.expectNothing(10 * time.Millisecond)
}

// TestClaimBoundTopic: notifications are bound to the token's sub claim;
// no argument or claim value reaches another user's topic.
func TestClaimBoundTopic(t *testing.T) {
	e := authEnv(t)
	alice := dialAs(t, e, token(t, testSecret, "public", "alice", nil))
	// A hostile sub claim is escaped like any value: it cannot widen.
	mallory := dialAs(t, e, token(t, testSecret, "public", "bob.>", nil))
	alice.subscribe("n", `subscription { notifications { id text } }`, nil, "")
	mallory.subscribe("n", `subscription { notifications { id text } }`, nil, "")
	// Another field with a hostile argument cannot reach users.* either.
	alice.subscribe("m", `subscription($room: ID!) { messageAdded(room: $room) { id } }`, map[string]any{"room": "x.users.bob.notifications"}, "")
	waitFor(t, 5*time.Second, "3 subscriptions", func() bool { return e.node.Stats().Subscriptions == 3 })
	want := []string{
		"fraiseql.public.chat.x%2Eusers%2Ebob%2Enotifications",
		"fraiseql.public.users.alice.notifications",
		"fraiseql.public.users.bob%2E%3E.notifications",
	}
	if got := e.node.Subjects(); !slices.Equal(got, want) {
		t.Fatalf("subjects\n got %v\nwant %v", got, want)
	}
	e.publishTo("public", "users.bob.notifications", `{"id":"b","text":"for bob"}`)
	e.publishTo("public", "users.alice.notifications", `{"id":"a","text":"for alice"}`)
	if r := alice.next("n"); string(r.Data["notifications"]) != `{"id":"a","text":"for alice"}` {
		t.Fatalf("alice got %s", r.Data["notifications"])
	}
	alice.expectNothing(200 * time.Millisecond)
	mallory.expectNothing(10 * time.Millisecond)

	// Without a sub claim the topic cannot be formed at all.
	nosub := dialAs(t, e, token(t, testSecret, "public", "", nil))
	nosub.subscribe("n", `subscription { notifications { id } }`, nil, "")
	if code := nosub.errorCode("n"); code != "FORBIDDEN" {
		t.Fatalf("no sub claim: %s", code)
	}
}

// TestHostileArgumentsNeverWiden checks the subject each hostile value
// yields and that nothing outside it is delivered.
func TestHostileArgumentsNeverWiden(t *testing.T) {
	e := authEnv(t)
	conns := []*client{dialAs(t, e, token(t, testSecret, "public", "u", nil))}
	cases := []struct{ room, subject string }{
		{">", "fraiseql.public.chat.%3E"},
		{"*", "fraiseql.public.chat.%2A"},
		{"x.>", "fraiseql.public.chat.x%2E%3E"},
		{"a b", "fraiseql.public.chat.a%20b"},
		{"nul\x00", "fraiseql.public.chat.nul%00"},
		{"日本", "fraiseql.public.chat.%E6%97%A5%E6%9C%AC"},
		{"", "fraiseql.public.chat.%"},
	}
	q := `subscription($room: ID!) { messageAdded(room: $room) { id } }`
	for i, tc := range cases {
		if i == 5 { // 5 subscriptions per connection
			conns = append(conns, dialAs(t, e, token(t, testSecret, "public", "u", nil)))
		}
		before := len(e.node.Subjects())
		conns[len(conns)-1].subscribe(fmt.Sprint(i), q, map[string]any{"room": tc.room}, "")
		waitFor(t, 5*time.Second, "subscription "+tc.subject, func() bool { return len(e.node.Subjects()) == before+1 })
		if !slices.Contains(e.node.Subjects(), tc.subject) {
			t.Fatalf("room %q: subjects %v lack %s", tc.room, e.node.Subjects(), tc.subject)
		}
	}
	c := conns[len(conns)-1]
	c.subscribe("long", q, map[string]any{"room": strings.Repeat("x", 10<<10)}, "")
	if code := c.errorCode("long"); code != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("10 KB argument: %s", code)
	}
	// Events on plain subjects, and on the same escaped topic of another
	// tenant, reach none of them; the one event on chat.%3E of this tenant
	// reaches exactly the subscription to ">".
	for _, topic := range []string{"chat.r1", "chat.x.y", "chat.a", "chat.b", "chat.x"} {
		e.publishTo("public", topic, `{"id":"leak","room":"r1","text":"x"}`)
	}
	e.publishTo("other", "chat.%3E", `{"id":"other tenant","room":"r1","text":"x"}`)
	e.publishTo("public", "chat.%3E", `{"id":"mine","room":">","text":"x"}`)
	if r := conns[0].next("0"); string(r.Data["messageAdded"]) != `{"id":"mine"}` {
		t.Fatalf("got %s", r.Data["messageAdded"])
	}
	for _, c := range conns {
		c.expectNothing(200 * time.Millisecond)
	}
	if d := e.node.Stats().Delivered; d != 1 {
		t.Fatalf("delivered %d messages, want exactly 1", d)
	}
}

func TestRoleGuardedField(t *testing.T) {
	e := authEnv(t)
	user := dialAs(t, e, token(t, testSecret, "public", "u", jwt.MapClaims{"roles": []string{"ops"}}))
	user.subscribe("a", `subscription { auditLog { id action } }`, nil, "")
	if code := user.errorCode("a"); code != "FORBIDDEN" {
		t.Fatalf("without the role: %s", code)
	}
	admin := dialAs(t, e, token(t, testSecret, "public", "root", jwt.MapClaims{"roles": []string{"admin"}}))
	admin.subscribe("a", `subscription { auditLog { id action } }`, nil, "")
	waitFor(t, 5*time.Second, "admin subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publishTo("public", "audit", `{"id":"1","action":"login"}`)
	admin.next("a")
	user.expectNothing(100 * time.Millisecond)
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql", ClockSkew: time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) { c.Auth = v })
	short := func(sub string, d time.Duration) string {
		return token(t, testSecret, "public", sub, jwt.MapClaims{"exp": time.Now().Add(d).Unix()})
	}
	// jwt exp has 1 s resolution; the node closes at exp plus the clock
	// skew (1 s here), the leeway the token was verified with.
	expiring := dialAs(t, e, short("x", 2*time.Second))
	refreshed := dialAs(t, e, short("y", 2*time.Second))
	refreshed.send(`{"type":"ping","payload":{"token":"` + short("y", time.Hour) + `"}}`)
	hijack := dialAs(t, e, short("z", time.Hour))
	hijack.send(`{"type":"ping","payload":{"token":"` + short("someone-else", time.Hour) + `"}}`)

	hijack.expectClose(4403)
	expiring.expectClose(4403)
	refreshed.expectNothing(1500 * time.Millisecond) // past the first token's expiry and skew
}

// TestCursorIsBoundToTenant: a cursor a client of one tenant received is
// refused for another tenant (BAD_CURSOR) — it names a position in the
// shared stream and must not become a way in — while its own tenant
// resumes with it. A version 1 cursor (sequence in clear) is refused as
// CURSOR_EXPIRED, saying the format changed.
func TestCursorIsBoundToTenant(t *testing.T) {
	e := authEnv(t)
	acme := dialAs(t, e, token(t, testSecret, "acme", "a1", nil))
	q := `subscription { messageAdded(room: "r1") { id text } }`
	acme.subscribe("1", q, nil, "")
	waitFor(t, 5*time.Second, "subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	e.publishTo("acme", "chat.r1", `{"id":"1","room":"r1","text":"a"}`)
	cursor := acme.next("1").Extensions.Cursor
	e.publishTo("acme", "chat.r1", `{"id":"2","room":"r1","text":"b"}`)
	acme.next("1")

	globex := dialAs(t, e, token(t, testSecret, "globex", "g1", nil))
	globex.subscribe("1", q, nil, cursor)
	if got := globex.errorCode("1"); got != "BAD_CURSOR" {
		t.Fatalf("acme's cursor on globex: %s, want BAD_CURSOR", got)
	}

	again := dialAs(t, e, token(t, testSecret, "acme", "a1", nil))
	again.subscribe("1", q, nil, cursor)
	var r result
	json.Unmarshal(again.expectType("next").Payload, &r)
	if got := string(r.Data["messageAdded"]); got != `{"id":"2","text":"b"}` {
		t.Fatalf("acme resumed with %s, want event 2", got)
	}

	// Version 1: 0x01, stream identity, sequence, CRC-32 (a valid one).
	again.subscribe("2", q, nil, "AReXnP42KgAAAAAAAAAAAAfqfFpv")
	m := again.expectType("error")
	var errs []gqlError
	json.Unmarshal(m.Payload, &errs)
	if len(errs) != 1 || errs[0].Extensions["code"] != "CURSOR_EXPIRED" || !strings.Contains(errs[0].Message, "format changed") {
		t.Fatalf("version 1 cursor: %s, want CURSOR_EXPIRED saying the format changed", m.Payload)
	}
}
