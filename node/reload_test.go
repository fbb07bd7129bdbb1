package node

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/query"
)

// reloadNode starts a node with the admin API whose schema source loads
// the SDL src holds (at first the demo schema, sdl), and a client on it.
func reloadNode(t *testing.T) (n *Node, g *gqlClient, sdl string, src *atomic.Pointer[string], admin func(string, string) (int, map[string]any)) {
	t.Helper()
	sdl = demoSDL(t)
	src = new(atomic.Pointer[string])
	src.Store(&sdl)
	load := func() (*query.Schema, error) { return query.LoadSchema("reload.graphql", *src.Load()) }
	n = startNode(t, func(c *Config) { c.AdminToken, c.LoadSchema = adminTestToken, load })
	ops := httptest.NewServer(n.OpsHandler())
	t.Cleanup(ops.Close)
	return n, dialGQL(t, n), sdl, src, func(method, path string) (int, map[string]any) {
		return adminDo(t, ops, method, path, adminTestToken, "")
	}
}

func demoSDL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../cmd/fraiseql-node/demo.graphql")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// subscribeQuery sends a subscribe with id and query.
func (g *gqlClient) subscribeQuery(id, q string) {
	g.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": q}})
}

// TestReloadSchema: a reload keeps the subscriptions whose plan the new
// schema leaves unchanged (they go on receiving events), and ends with
// SCHEMA_CHANGED, then complete, those it makes invalid (a field removed)
// or changes (a topic moved); new subscriptions compile against the new
// schema.
func TestReloadSchema(t *testing.T) {
	n, g, sdl, src, admin := reloadNode(t)
	g.subscribeQuery("kept", `subscription { messageAdded(room: "r1") { id } }`)
	g.subscribeQuery("invalid", `subscription { messageAdded(room: "r1") { id createdAt } }`)
	g.subscribeQuery("moved", `subscription { orderUpdated(id: "o1") { id status } }`)
	waitFor(t, "3 subscriptions", func() bool { return n.met.subsOpen.Load() == 3 })

	next := strings.Replace(sdl, "  createdAt: String\n", "", 1)
	next = strings.Replace(next, `@topic(name: "orders.{id}")`, `@topic(name: "order.{id}")`, 1)
	if next == sdl || strings.Contains(next, "createdAt") || strings.Contains(next, `"orders.{id}"`) {
		t.Fatal("the test's schema edit did not apply")
	}
	src.Store(&next)
	code, out := admin("POST", "/admin/reload-schema")
	if code != 200 || out["kept"] != 1.0 || out["ended"] != 2.0 {
		t.Fatalf("reload: %d %v, want kept 1, ended 2", code, out)
	}
	ended := map[string]string{} // id → code
	completed := map[string]bool{}
	for len(completed) < 2 {
		f := g.frame()
		switch f.Type {
		case "error":
			var errs []struct {
				Message    string         `json:"message"`
				Extensions map[string]any `json:"extensions"`
			}
			json.Unmarshal(f.Payload, &errs)
			ended[f.ID], _ = errs[0].Extensions["code"].(string)
			if f.ID == "invalid" && !strings.Contains(errs[0].Message, "createdAt") {
				t.Errorf("the invalid subscription's error does not say why: %q", errs[0].Message)
			}
		case "complete":
			completed[f.ID] = true
		default:
			t.Fatalf("unexpected frame %+v", f)
		}
	}
	if ended["invalid"] != CodeSchemaChanged || ended["moved"] != CodeSchemaChanged || !completed["invalid"] || !completed["moved"] {
		t.Fatalf("ended %v, completed %v; want invalid and moved, each SCHEMA_CHANGED then complete", ended, completed)
	}
	waitFor(t, "1 subscription left", func() bool { return n.met.subsOpen.Load() == 1 })

	// The kept subscription still receives its events.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.cl.Publish(ctx, "public", "chat.r1", []byte(`{"id":"7","room":"r1","text":"t"}`), ""); err != nil {
		t.Fatal(err)
	}
	if f := g.frame(); f.Type != "next" || f.ID != "kept" || !strings.Contains(string(f.Payload), `"id":"7"`) {
		t.Fatalf("kept subscription got %+v, want its event", f)
	}
	// New subscriptions use the new schema.
	g.subscribeQuery("new", `subscription { messageAdded(room: "r1") { createdAt } }`)
	if f := g.frame(); f.Type != "error" || !strings.Contains(string(f.Payload), "GRAPHQL_VALIDATION_FAILED") {
		t.Fatalf("a field the new schema removed: %+v, want a validation error", f)
	}
	if v := metricValue(t, n, "fraiseql_schema_reloads_total", "result", "ok"); v != 1 {
		t.Errorf("reloads ok: %v, want 1", v)
	}
	if v := metricValue(t, n, "fraiseql_subscribe_errors_total", "code", CodeSchemaChanged); v != 2 {
		t.Errorf("SCHEMA_CHANGED errors: %v, want 2", v)
	}
}

// TestReloadSchemaRefused: a schema that does not load is refused with its
// error and changes nothing: every subscription continues, new ones still
// compile against the old schema.
func TestReloadSchemaRefused(t *testing.T) {
	n, g, sdl, src, admin := reloadNode(t)
	g.subscribeQuery("a", `subscription { messageAdded(room: "r1") { id createdAt } }`)
	waitFor(t, "the subscription", func() bool { return n.met.subsOpen.Load() == 1 })

	bad := strings.Replace(sdl, "type Message {", "type Message { broken: NoSuchType", 1)
	src.Store(&bad)
	code, out := admin("POST", "/admin/reload-schema")
	if msg, _ := out["error"].(string); code != 422 || out["code"] != "SCHEMA_INVALID" || !strings.Contains(msg, "NoSuchType") {
		t.Fatalf("a bad schema: %d %v, want 422 SCHEMA_INVALID naming the problem", code, out)
	}
	if v := metricValue(t, n, "fraiseql_schema_reloads_total", "result", "refused"); v != 1 {
		t.Errorf("reloads refused: %v, want 1", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.cl.Publish(ctx, "public", "chat.r1", []byte(`{"id":"8","room":"r1","text":"t","createdAt":"x"}`), ""); err != nil {
		t.Fatal(err)
	}
	if f := g.frame(); f.Type != "next" || f.ID != "a" {
		t.Fatalf("after a refused reload: %+v, want the event", f)
	}
	g.subscribeQuery("b", `subscription { messageAdded(room: "r2") { createdAt } }`)
	waitFor(t, "the second subscription", func() bool { return n.met.subsOpen.Load() == 2 })
}

// TestReloadSchemaNoSource: without Config.LoadSchema the endpoint says
// there is nothing to reload from.
func TestReloadSchemaNoSource(t *testing.T) {
	_, ops := adminNode(t, adminTestToken)
	if code, out := adminDo(t, ops, "POST", "/admin/reload-schema", adminTestToken, ""); code != 501 || out["code"] != "NO_SCHEMA_SOURCE" {
		t.Fatalf("%d %v, want 501 NO_SCHEMA_SOURCE", code, out)
	}
	if code, _ := adminDo(t, ops, "POST", "/admin/reload-schema", "", ""); code != 401 {
		t.Fatalf("without the token: %d, want 401", code)
	}
}
