package node

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// TestAdminClusterWide: a disconnect or a revocation sent to one node's
// admin API applies on every node of the deployment, and a node started
// after a revocation refuses the revoked tokens too.
func TestAdminClusterWide(t *testing.T) {
	url := clustertest.RunServer(t)
	_, opsA := adminNodeAt(t, url, adminTestToken)
	b, opsB := adminNodeAt(t, url, adminTestToken)
	now := time.Now()
	old := mintToken(t, "acme", "u1", now.Add(-time.Hour))
	u1, _ := dialToken(t, b, old)
	u2, _ := dialToken(t, b, mintToken(t, "acme", "u2", now))
	u3, _ := dialToken(t, b, mintToken(t, "acme", "u3", now))
	waitFor(t, "3 connections on b", func() bool { return b.Stats().Connections == 3 })

	// A disconnect by user on a, applied on b.
	if code, out := adminDo(t, opsA, "POST", "/admin/disconnect", adminTestToken, `{"tenant":"acme","user":"u2","reason":"maintenance"}`); code != 200 || out["closed"] != 0.0 {
		t.Fatalf("disconnect on a: %d %v, want 200 and none closed on a", code, out)
	}
	if ce := closedWith(t, u2); ce.Code != 4403 || ce.Reason != "Forbidden: maintenance" {
		t.Fatalf("u2 on b closed with %d %q", ce.Code, ce.Reason)
	}
	// A disconnect by connection id on a, of a connection of b.
	_, out := adminDo(t, opsB, "GET", "/admin/connections?user=u3", adminTestToken, "")
	id := out["connections"].([]any)[0].(map[string]any)["conn"].(string)
	if code, _ := adminDo(t, opsA, "POST", "/admin/disconnect", adminTestToken, `{"conn":"`+id+`"}`); code != 200 {
		t.Fatalf("disconnect conn on a: %d", code)
	}
	if ce := closedWith(t, u3); ce.Code != 4403 {
		t.Fatalf("u3 on b closed with %d %q", ce.Code, ce.Reason)
	}

	// A revocation on a closes u1's connection on b and is refused there
	// at connect, and on a node started afterwards.
	body := `{"tenant":"acme","user":"u1","before":"` + now.Add(-time.Minute).UTC().Format(time.RFC3339) + `"}`
	if code, out := adminDo(t, opsA, "POST", "/admin/revoke", adminTestToken, body); code != 200 {
		t.Fatalf("revoke on a: %d %v", code, out)
	}
	if ce := closedWith(t, u1); ce.Code != 4403 || ce.Reason != "Forbidden: token revoked" {
		t.Fatalf("u1 on b closed with %d %q", ce.Code, ce.Reason)
	}
	if _, err := dialToken(t, b, old); websocket.CloseStatus(err) != 4403 {
		t.Fatalf("a revoked token at connect on b: %v, want close 4403", err)
	}
	c, _ := adminNodeAt(t, url, adminTestToken)
	if _, err := dialToken(t, c, old); websocket.CloseStatus(err) != 4403 {
		t.Fatalf("a revoked token at connect on a node started later: %v, want close 4403", err)
	}
	if _, err := dialToken(t, c, mintToken(t, "acme", "u1", now)); err != nil {
		t.Fatalf("a token issued after the revocation, on the later node: %v", err)
	}
}
