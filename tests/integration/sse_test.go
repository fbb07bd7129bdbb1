//go:build integration

package integration

import (
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// sseLine is one line the graphql-sse client script prints.
type sseLine struct {
	Event  string
	Error  string
	Result struct {
		Data struct {
			MessageAdded struct{ ID string }
		}
		Errors []struct {
			Extensions struct{ Code string }
		}
		Extensions struct{ Cursor string }
	}
}

func nextSSELine(t *testing.T, lines <-chan string) sseLine {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the graphql-sse client exited")
		}
		var v sseLine
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("client printed %q: %v", l, err)
		}
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("no line from the graphql-sse client in 30 s")
	}
	panic("unreachable")
}

// TestGraphQLSSEClient runs the graphql-sse npm client (distinct
// connections mode) against a node with authentication: it receives,
// resumes from a cursor with a complete sequence, gets a validation error
// in the stream, and is refused without a token.
func TestGraphQLSSEClient(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "clients", "js")
	nodeBin := needNPMPackages(t, dir, "graphql-sse")
	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) { c.Auth = v })
	sseURL := "http://" + strings.TrimPrefix(strings.TrimSuffix(e.ws, "/graphql"), "ws://") + "/graphql"
	tok := token(t, testSecret, "acme", "ann", nil)
	publish := func(ids ...int) {
		for _, id := range ids {
			e.publishTo("acme", "chat.sse", `{"id":"`+strconv.Itoa(id)+`","room":"sse","text":"t"}`)
		}
	}
	expect := func(lines <-chan string, ids ...int) (cursor string) {
		t.Helper()
		for _, id := range ids {
			l := nextSSELine(t, lines)
			if l.Event != "data" || l.Result.Data.MessageAdded.ID != strconv.Itoa(id) || l.Result.Extensions.Cursor == "" {
				t.Fatalf("got %+v, want message %d with a cursor", l, id)
			}
			cursor = l.Result.Extensions.Cursor
		}
		return cursor
	}
	subs := func() int64 { return e.node.Stats().Subscriptions }

	a := runScript(t, nodeBin, dir, "test/sse.mjs", "SSE_URL="+sseURL, "FRAISEQL_TOKEN="+tok)
	waitFor(t, 30*time.Second, "the client's subscription", func() bool { return subs() == 1 })
	publish(1, 2, 3)
	cursor := expect(a, 1)
	expect(a, 2, 3)

	b := runScript(t, nodeBin, dir, "test/sse.mjs", "SSE_URL="+sseURL, "FRAISEQL_TOKEN="+tok, "CURSOR="+cursor)
	expect(b, 2, 3)
	waitFor(t, 30*time.Second, "the resumed subscription", func() bool { return subs() == 2 })
	publish(4)
	expect(a, 4)
	expect(b, 4)

	bad := runScript(t, nodeBin, dir, "test/sse.mjs", "SSE_URL="+sseURL, "FRAISEQL_TOKEN="+tok, "QUERY=subscription { nope }")
	if l := nextSSELine(t, bad); l.Event != "data" || len(l.Result.Errors) != 1 || l.Result.Errors[0].Extensions.Code != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("invalid query: got %+v, want the validation error", l)
	}
	if l := nextSSELine(t, bad); l.Event != "complete" {
		t.Fatalf("invalid query: got %+v, want complete", l)
	}

	anon := runScript(t, nodeBin, dir, "test/sse.mjs", "SSE_URL="+sseURL)
	if l := nextSSELine(t, anon); l.Event != "error" || !strings.Contains(l.Error, "403") {
		t.Fatalf("without a token: got %+v, want a 403 error", l)
	}
}
