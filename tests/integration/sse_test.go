//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
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

// publishSSE publishes messages ids to tenant acme's room "sse", which
// the graphql-sse client script subscribes to.
func publishSSE(e *env, ids ...int) {
	for _, id := range ids {
		e.publishTo("acme", "chat.sse", `{"id":"`+strconv.Itoa(id)+`","room":"sse","text":"t"}`)
	}
}

// expectSSE reads the client script's next results, which must be
// messages ids with cursors, and returns the last cursor.
func expectSSE(t *testing.T, lines <-chan string, ids ...int) (cursor string) {
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

// TestGraphQLSSEClient runs the graphql-sse npm client (distinct
// connections mode, over fetch, gzip-encoded streams) against a node with
// authentication: it receives,
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
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) {
		c.Auth = v
		c.WS.SSECompression = "gzip" // Node's fetch accepts it: every stream below is gzip-encoded
	})
	sseURL := "http://" + strings.TrimPrefix(strings.TrimSuffix(e.ws, "/graphql"), "ws://") + "/graphql"
	tok := token(t, testSecret, "acme", "ann", nil)
	publish := func(ids ...int) { publishSSE(e, ids...) }
	expect := func(lines <-chan string, ids ...int) string { t.Helper(); return expectSSE(t, lines, ids...) }
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

// TestEventSourceResumesAcrossNodeKill: a browser EventSource on a page of
// another origin (allowed by ws.origin_patterns), authenticated by the
// auth.cookie cookie, over a gzip-encoded stream (ws.sse_compression),
// receives events, loses its node, and after the
// browser's own reconnection to the node that replaced it has every event
// exactly once: the page has no resume code, the browser sends the last
// event id (a cursor) as Last-Event-ID.
func TestEventSourceResumesAcrossNodeKill(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "clients", "js")
	nodeBin := needNPMPackages(t, dir, "playwright-core")
	chromium := needChromium(t)
	static := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "test", "eventsource.html"))
	}))
	defer static.Close()
	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql", Cookie: "session"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	natsURL := startNATS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	origin := strings.TrimPrefix(static.URL, "http://")
	start := func(ln net.Listener) *env {
		return startNodeListening(t, natsURL, ln, func(c *node.Config, _ *cluster.Config) {
			c.Auth = v
			c.WS.OriginPatterns = []string{origin}
			c.WS.SSECompression = "gzip" // the browser accepts it: the stream is gzip-encoded
		})
	}
	first := start(ln)
	tok := token(t, testSecret, "acme", "ann", nil)
	page := static.URL + "/?" + url.Values{"url": {"http://" + addr + "/graphql"}, "token": {tok}, "room": {"es"}}.Encode()
	lines := runScript(t, nodeBin, dir, "test/browser.mjs", "PAGE_URL="+page, "CHROMIUM="+chromium)

	var got []int
	read := func(upTo int) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for len(got) == 0 || got[len(got)-1] < upTo {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("the browser script exited")
				}
				var ev struct {
					Event  string
					Error  string
					Result struct {
						Data struct{ MessageAdded struct{ ID string } }
					}
				}
				json.Unmarshal([]byte(l), &ev)
				if ev.Event == "error" {
					t.Fatalf("page error: %s", ev.Error)
				}
				id, _ := strconv.Atoi(ev.Result.Data.MessageAdded.ID)
				got = append(got, id)
			case <-deadline:
				t.Fatalf("the page got %v, not yet %d, in 60 s", got, upTo)
			}
		}
	}
	next := 0
	publish := func(n int) {
		for range n {
			next++
			first.publishTo("acme", "chat.es", `{"id":"`+strconv.Itoa(next)+`","room":"es","text":"t"}`)
		}
	}
	waitFor(t, 60*time.Second, "the page's subscription", func() bool { return first.node.Stats().Subscriptions == 1 })
	publish(3)
	read(3)

	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.node.Shutdown(sctx); err != nil { // the stream ends; the browser reconnects by itself
		t.Fatal(err)
	}
	publish(3) // while no node serves
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	second := start(ln2)
	publish(2)
	read(next)
	want := make([]int, next)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the page got %v, want %v: no gap, no duplicate", got, want)
	}
	if second.node.Stats().Subscriptions != 1 {
		t.Fatalf("%d subscriptions on the new node, want the page's one", second.node.Stats().Subscriptions)
	}
}
