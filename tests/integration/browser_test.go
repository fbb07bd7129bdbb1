//go:build integration

package integration

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// The public listener serves /graphql, /healthz and a bare /readyz; the
// metrics, the reasons a node is not ready and the profiles are on the
// ops listener only.
func TestOpsDataOnlyOnTheOpsListener(t *testing.T) {
	e := newEnv(t)
	public, ops := "http://"+e.node.Addr(), "http://"+e.node.OpsAddr()
	if e.node.OpsAddr() == "" || ops == public {
		t.Fatalf("ops listener at %q, public at %q: want a separate ops listener", ops, public)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		if body, code := httpGet(t, public+path); code != http.StatusNotFound {
			t.Errorf("public %s: %d %.80q, want 404", path, code, body)
		}
		if _, code := httpGet(t, ops+path); code != http.StatusOK {
			t.Errorf("ops %s: %d, want 200", path, code)
		}
	}
	if body, code := httpGet(t, ops+"/metrics"); code != 200 || !strings.Contains(body, "fraiseql_connections ") {
		t.Errorf("ops /metrics: %d, no fraiseql_connections", code)
	}
	for _, base := range []string{public, ops} {
		if body, code := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
			t.Errorf("%s/healthz: %d %q", base, code, body)
		}
		if body, code := httpGet(t, base+"/readyz"); code != 200 || body != "ready\n" {
			t.Errorf("%s/readyz: %d %q", base, code, body)
		}
	}

	// A failing required check: the public answer says nothing of it.
	secret := "postgres://fraiseql_ingest@10.1.2.3:5432/db is down: password authentication failed"
	e.node.AddReadiness("bridges.postgres", true, func() error { return errors.New(secret) })
	if body, code := httpGet(t, public+"/readyz"); code != 503 || body != "not ready\n" {
		t.Errorf("public /readyz with a failing check: %d %q, want 503 \"not ready\" and no detail", code, body)
	}
	if body, code := httpGet(t, ops+"/readyz"); code != 503 || !strings.Contains(body, "bridges.postgres: "+secret) {
		t.Errorf("ops /readyz with a failing check: %d %q, want 503 naming it", code, body)
	}
}

// dialHost upgrades to the node's /graphql with the given Host header.
func dialHost(t *testing.T, e *env, host string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.ws, &websocket.DialOptions{Host: host, Subprotocols: []string{"graphql-transport-ws"}})
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// DNS rebinding: a page of attacker.example whose name the attacker
// resolves to 127.0.0.1 is same-origin with the node, so a browser lets it
// open a WebSocket. Without authentication only localhost and IP
// addresses may be asked for.
func TestAuthNoneRefusesRebindingHosts(t *testing.T) {
	e := newEnv(t)
	port := e.node.Addr()[strings.LastIndex(e.node.Addr(), ":"):]
	for _, host := range []string{"attacker.example" + port, "attacker.example", "localhost.attacker.example" + port, "127.0.0.1.nip.example" + port} {
		_, resp, err := dialHost(t, e, host)
		if err == nil {
			t.Errorf("Host %q: upgraded, want 403", host)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("Host %q: %v, want 403", host, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "auth.mode: none") {
			t.Errorf("Host %q: body %q does not say why", host, body)
		}
	}
	for _, host := range []string{"127.0.0.1" + port, "localhost" + port, "LocalHost" + port, "app.localhost" + port, "[::1]" + port, "10.0.0.7" + port} {
		c, _, err := dialHost(t, e, host)
		if err != nil {
			t.Errorf("Host %q: %v, want upgraded", host, err)
			continue
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	body, code := httpGet(t, "http://"+e.node.OpsAddr()+"/metrics")
	if code != 200 || !strings.Contains(body, `fraiseql_auth_failures_total{reason="host not allowed without authentication"} 4`) {
		t.Errorf("host refusals not counted: %s", grepLines(body, "auth_failures"))
	}
}

// With authentication, any Host is served: tokens, not names, decide.
func TestAuthJWTServesAnyHost(t *testing.T) {
	e := authEnv(t)
	c, _, err := dialHost(t, e, "subscriptions.example.com")
	if err != nil {
		t.Fatalf("jwt mode, named host: %v", err)
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// A token accepted within auth.clock_skew after its exp is not closed as
// expired the moment it connects: expiry while connected honours the same
// leeway as Verify.
func TestTokenWithinClockSkewStaysUntilSkewEnds(t *testing.T) {
	const skew = 3 * time.Second
	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql", ClockSkew: skew}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) { c.Auth = v })

	// exp has whole seconds: minted at S+f it is S-1, and the connection
	// closes at S+2, 2s-f from now. Start early in a second, so that the
	// waits below (1.2 s) fit before it whatever f was.
	if f := time.Since(time.Now().Truncate(time.Second)); f > 200*time.Millisecond {
		time.Sleep(time.Second - f)
	}
	expired := time.Now().Add(-time.Second) // past exp, inside the skew: Verify accepts it
	c := dialAs(t, e, token(t, testSecret, "acme", "ann", jwt.MapClaims{"exp": expired.Unix()}))
	// Still open well after connecting (the old timer fired at once).
	c.send(`{"type":"ping"}`)
	c.expectNothing(time.Second)
	c.send(`{"type":"subscribe","id":"1","payload":{"query":"subscription { messageAdded(room: \"r1\") { id } }"}}`)
	c.expectNothing(200 * time.Millisecond)
	// And closed with 4403 once exp + skew has passed.
	if until := time.Until(expired.Truncate(time.Second).Add(skew)); until > 2*time.Second {
		t.Fatalf("test too slow: %v left of the skew", until)
	}
	c.expectClose(websocket.StatusCode(4403))
	if left := time.Until(expired.Truncate(time.Second).Add(skew)); left > 100*time.Millisecond {
		t.Errorf("closed %v before exp + clock_skew", left)
	}
}
