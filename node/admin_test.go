package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

const (
	adminTestToken  = "admin-token-for-tests-0123456789abcdef"
	adminTestSecret = "admin-test-secret-0123456789abcdefghij"
)

// adminNode starts a node with JWT auth and, when token is set, the admin
// API; it returns the node and its ops handler's server.
func adminNode(t *testing.T, token string) (*Node, *httptest.Server) {
	t.Helper()
	return adminNodeAt(t, clustertest.RunServer(t), token)
}

// adminNodeAt is adminNode on the NATS server at url.
func adminNodeAt(t *testing.T, url, token string) (*Node, *httptest.Server) {
	t.Helper()
	v, err := auth.New(auth.Config{HS256Secret: adminTestSecret}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	n := startNodeAt(t, url, func(c *Config) { c.Auth, c.AdminToken = v, token })
	ops := httptest.NewServer(n.OpsHandler())
	t.Cleanup(ops.Close)
	return n, ops
}

func mintToken(t *testing.T, tenant, user string, iat time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"tenant": tenant, "sub": user, "iat": iat.Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(adminTestSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dialToken connects with token; it returns the client after connection_ack,
// or nil and the close error if the node refused it.
func dialToken(t *testing.T, n *Node, token string) (*gqlClient, error) {
	t.Helper()
	c, err := wsClient(t, "", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	g := &gqlClient{t, c}
	g.send(map[string]any{"type": "connection_init", "payload": map[string]any{"token": token}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(b), "connection_ack") {
		t.Fatalf("got %s, want connection_ack", b)
	}
	return g, nil
}

// closedWith waits for g's connection to close and returns its status.
func closedWith(t *testing.T, g *gqlClient) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := g.c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read error %v, want a close", err)
		}
		return ce
	}
}

func adminDo(t *testing.T, ops *httptest.Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, ops.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// TestAdminAPIAuth: off by default (no route); on, every route needs the
// exact bearer token.
func TestAdminAPIAuth(t *testing.T) {
	_, off := adminNode(t, "")
	if code, _ := adminDo(t, off, "GET", "/admin/connections", adminTestToken, ""); code != http.StatusNotFound {
		t.Fatalf("admin API off: %d, want 404", code)
	}
	_, ops := adminNode(t, adminTestToken)
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/admin/connections", "", 401},
		{"GET", "/admin/connections", "wrong", 401},
		{"GET", "/admin/connections", adminTestToken + "x", 401},
		{"POST", "/admin/disconnect", "", 401},
		{"POST", "/admin/revoke", "", 401},
		{"GET", "/admin/connections", adminTestToken, 200},
	} {
		if code, _ := adminDo(t, ops, tc.method, tc.path, tc.token, `{}`); code != tc.want {
			t.Errorf("%s %s with %q: %d, want %d", tc.method, tc.path, tc.token, code, tc.want)
		}
	}
}

// TestAdminListAndDisconnect: connections listed by tenant and user with
// their subscriptions; disconnect by user, tenant and connection closes
// exactly those, with 4403 and the operator's reason.
func TestAdminListAndDisconnect(t *testing.T) {
	n, ops := adminNode(t, adminTestToken)
	now := time.Now()
	a, _ := dialToken(t, n, mintToken(t, "acme", "u1", now))
	b, _ := dialToken(t, n, mintToken(t, "acme", "u2", now))
	c, _ := dialToken(t, n, mintToken(t, "globex", "u3", now))
	a.subscribe("r1", "")
	waitFor(t, "the subscription", func() bool { return n.Stats().Subscriptions == 1 })

	code, out := adminDo(t, ops, "GET", "/admin/connections?tenant=acme", adminTestToken, "")
	conns, _ := out["connections"].([]any)
	if code != 200 || out["total"] != 2.0 || len(conns) != 2 {
		t.Fatalf("list acme: %d %v", code, out)
	}
	first := conns[0].(map[string]any)
	subs, _ := first["subscriptions"].([]any)
	if first["user"] != "u1" || len(subs) != 1 || !strings.HasSuffix(subs[0].(map[string]any)["subject"].(string), ".acme.chat.r1") {
		t.Fatalf("first acme connection: %v", first)
	}
	if _, out := adminDo(t, ops, "GET", "/admin/connections?tenant=acme&user=u2", adminTestToken, ""); out["total"] != 1.0 {
		t.Fatalf("list acme/u2: %v", out)
	}
	if code, _ := adminDo(t, ops, "GET", "/admin/connections?limit=0", adminTestToken, ""); code != 400 {
		t.Fatalf("limit=0: %d, want 400", code)
	}

	if _, out := adminDo(t, ops, "POST", "/admin/disconnect", adminTestToken, `{"tenant":"acme","user":"u1","reason":"maintenance"}`); out["closed"] != 1.0 {
		t.Fatalf("disconnect u1: %v", out)
	}
	if ce := closedWith(t, a); ce.Code != 4403 || ce.Reason != "Forbidden: maintenance" {
		t.Fatalf("u1 closed with %d %q", ce.Code, ce.Reason)
	}
	if _, out := adminDo(t, ops, "POST", "/admin/disconnect", adminTestToken, `{"tenant":"acme"}`); out["closed"] != 1.0 {
		t.Fatalf("disconnect acme: %v", out)
	}
	if ce := closedWith(t, b); ce.Code != 4403 || ce.Reason != "Forbidden: disconnected by an operator" {
		t.Fatalf("u2 closed with %d %q", ce.Code, ce.Reason)
	}
	_, out = adminDo(t, ops, "GET", "/admin/connections?tenant=globex", adminTestToken, "")
	id := out["connections"].([]any)[0].(map[string]any)["conn"].(string)
	if _, out := adminDo(t, ops, "POST", "/admin/disconnect", adminTestToken, `{"conn":"`+id+`"}`); out["closed"] != 1.0 {
		t.Fatalf("disconnect conn %s: %v", id, out)
	}
	closedWith(t, c)
	waitFor(t, "no connection left", func() bool { return n.Stats().Connections == 0 })

	for _, bad := range []string{``, `{}`, `{"conn":"x","tenant":"acme"}`, `{"tenant":"acme","bogus":1}`,
		`{"tenant":"acme","reason":"` + strings.Repeat("r", adminReasonBytes+1) + `"}`, `{"tenant":"acme","reason":"a\u0007b"}`} {
		if code, _ := adminDo(t, ops, "POST", "/admin/disconnect", adminTestToken, bad); code != 400 {
			t.Errorf("disconnect %q: %d, want 400", bad, code)
		}
	}
	for _, l := range []int{adminReasonBytes - 1, adminReasonBytes} {
		if code, _ := adminDo(t, ops, "POST", "/admin/disconnect", adminTestToken, `{"tenant":"acme","reason":"`+strings.Repeat("r", l)+`"}`); code != 200 {
			t.Errorf("a reason of %d bytes: %d, want 200", l, code)
		}
	}
	big := `{"tenant":"acme","reason":"` + strings.Repeat(" ", adminBodyBytes) + `"}`
	if code, out := adminDo(t, ops, "POST", "/admin/disconnect", adminTestToken, big); code != 400 || !strings.Contains(out["error"].(string), "bytes") {
		t.Errorf("a body over %d bytes: %d %v", adminBodyBytes, code, out)
	}
}

// TestAdminRevoke: revoking a user's tokens issued before a time closes
// the user's connections using one and refuses such a token at connect
// and at refresh; a token issued after is accepted; other users are not
// touched.
func TestAdminRevoke(t *testing.T) {
	n, ops := adminNode(t, adminTestToken)
	now := time.Now()
	old := mintToken(t, "acme", "u1", now.Add(-time.Hour))
	a, _ := dialToken(t, n, old)
	other, _ := dialToken(t, n, mintToken(t, "acme", "u2", now.Add(-time.Hour)))
	body := `{"tenant":"acme","user":"u1","before":"` + now.Add(-time.Minute).UTC().Format(time.RFC3339) + `"}`
	if code, out := adminDo(t, ops, "POST", "/admin/revoke", adminTestToken, body); code != 200 || out["closed"] != 1.0 {
		t.Fatalf("revoke: %d %v", code, out)
	}
	if ce := closedWith(t, a); ce.Code != 4403 || ce.Reason != "Forbidden: token revoked" {
		t.Fatalf("u1 closed with %d %q", ce.Code, ce.Reason)
	}
	if _, err := dialToken(t, n, old); websocket.CloseStatus(err) != 4403 {
		t.Fatalf("a revoked token at connect: %v, want close 4403", err)
	}
	fresh, err := dialToken(t, n, mintToken(t, "acme", "u1", now))
	if err != nil {
		t.Fatalf("a token issued after the revocation: %v", err)
	}
	// A refresh with a revoked token closes the connection.
	fresh.send(map[string]any{"type": "ping", "payload": map[string]any{"token": old}})
	if ce := closedWith(t, fresh); ce.Code != 4403 {
		t.Fatalf("refresh with a revoked token: closed with %d %q", ce.Code, ce.Reason)
	}
	other.subscribe("r1", "")
	waitFor(t, "u2 still served", func() bool { return n.Stats().Subscriptions == 1 })
	if v := metricValue(t, n, "fraiseql_auth_failures_total", "reason", "token revoked"); v != 3 {
		t.Errorf("auth failures for revoked tokens: %v, want 3", v)
	}
	if code, _ := adminDo(t, ops, "POST", "/admin/revoke", adminTestToken, `{"tenant":"acme","user":"u1"}`); code != 400 {
		t.Errorf("revoke without before: %d, want 400", code)
	}
}

// TestAdminRevocationsBound: a node holds revocations for at most
// maxRevocations users; a user already revoked may be revoked again.
func TestAdminRevocationsBound(t *testing.T) {
	defer func(old int) { maxRevocations = old }(maxRevocations)
	maxRevocations = 3
	_, ops := adminNode(t, adminTestToken)
	revoke := func(user string) int {
		code, _ := adminDo(t, ops, "POST", "/admin/revoke", adminTestToken, `{"tenant":"acme","user":"`+user+`","before":"2026-01-01T00:00:00Z"}`)
		return code
	}
	for i, user := range []string{"a", "b", "c"} { // limit-1, limit
		if code := revoke(user); code != 200 {
			t.Fatalf("revocation %d: %d", i+1, code)
		}
	}
	if code := revoke("d"); code != http.StatusInsufficientStorage { // limit+1
		t.Fatalf("revocation over the bound: %d, want 507", code)
	}
	if code := revoke("a"); code != 200 {
		t.Fatalf("revoking a revoked user again: %d", code)
	}
}

// TestAdminTokenLength: an admin token shorter than MinAdminTokenBytes is refused.
func TestAdminTokenLength(t *testing.T) {
	for _, l := range []int{MinAdminTokenBytes - 1, MinAdminTokenBytes, MinAdminTokenBytes + 1} {
		err := Config{Schema: testSchema(t), AdminToken: string(bytes.Repeat([]byte("k"), l))}.Validate()
		if (err == nil) != (l >= MinAdminTokenBytes) || err != nil && !strings.Contains(err.Error(), "admin.token_file") {
			t.Errorf("a token of %d bytes: %v", l, err)
		}
	}
}
