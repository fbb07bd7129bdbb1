//go:build integration

package integration

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// splitBalancer is a load balancer without sticky sessions at its worst
// for graphql-sse single connection mode: the reservation (PUT) and the
// stream (GET) go to one node, every other request (the POSTs that
// subscribe, the DELETEs that stop) to the other. It records what it
// routed where.
type splitBalancer struct {
	stream, other *httputil.ReverseProxy
	mu            sync.Mutex
	seen          []string // "METHOD status node"
}

func newSplitBalancer(t *testing.T, streamNode, otherNode string) (*httptest.Server, *splitBalancer) {
	t.Helper()
	proxy := func(addr, name string, b *splitBalancer) *httputil.ReverseProxy {
		u, _ := url.Parse("http://" + addr)
		p := httputil.NewSingleHostReverseProxy(u)
		p.FlushInterval = -1
		p.ModifyResponse = func(r *http.Response) error {
			b.mu.Lock()
			b.seen = append(b.seen, r.Request.Method+" "+strconv.Itoa(r.StatusCode)+" "+name)
			b.mu.Unlock()
			return nil
		}
		return p
	}
	b := &splitBalancer{}
	b.stream, b.other = proxy(streamNode, "stream", b), proxy(otherNode, "other", b)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			b.stream.ServeHTTP(w, r)
			return
		}
		b.other.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s, b
}

func (b *splitBalancer) routed() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

// TestGraphQLSSEClientSingleConnection runs the graphql-sse npm client in
// single connection mode (createClient({singleConnection: true})) against
// two nodes behind a balancer that sends its PUT and GET to node 1 and
// its POSTs and DELETEs to node 2: node 2 forwards them to node 1 over
// NATS. The client receives, resumes from a cursor with a complete
// sequence, stops an operation (DELETE) while another goes on, gets a
// validation error as the coded HTTP refusal, and is refused without a
// token.
func TestGraphQLSSEClientSingleConnection(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "clients", "js")
	nodeBin := needNPMPackages(t, dir, "graphql-sse")
	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	natsURL := startNATS(t)
	withAuth := func(c *node.Config, _ *cluster.Config) { c.Auth = v }
	n1, n2 := startNode(t, natsURL, withAuth), startNode(t, natsURL, withAuth)
	addr := func(e *env) string { return strings.TrimSuffix(strings.TrimPrefix(e.ws, "ws://"), "/graphql") }
	lb, bal := newSplitBalancer(t, addr(n1), addr(n2))
	sseURL := lb.URL + "/graphql"
	tok := token(t, testSecret, "acme", "ann", nil)
	publish := func(ids ...int) { publishSSE(n1, ids...) }
	expect := func(lines <-chan string, ids ...int) string { t.Helper(); return expectSSE(t, lines, ids...) }
	subs := func(e *env) int64 { return e.node.Stats().Subscriptions }
	run := func(env ...string) <-chan string {
		return runScript(t, nodeBin, dir, "test/sse.mjs", append([]string{"SSE_URL=" + sseURL, "SINGLE=1"}, env...)...)
	}

	a := run("FRAISEQL_TOKEN=" + tok)
	waitFor(t, 30*time.Second, "the client's subscription on node 1", func() bool { return subs(n1) == 1 })
	publish(1, 2, 3)
	cursor := expect(a, 1)
	expect(a, 2, 3)

	b := run("FRAISEQL_TOKEN="+tok, "CURSOR="+cursor, "TAKE=3")
	expect(b, 2, 3)
	waitFor(t, 30*time.Second, "the resumed subscription", func() bool { return subs(n1) == 2 })
	publish(4)
	expect(a, 4)
	expect(b, 4)
	if l := nextSSELine(t, b); l.Event != "complete" {
		t.Fatalf("TAKE=3: got %+v, want complete", l)
	}
	waitFor(t, 30*time.Second, "the stopped operation to end", func() bool { return subs(n1) == 1 })
	publish(5)
	expect(a, 5)
	if got := subs(n2); got != 0 {
		t.Fatalf("%d subscriptions on node 2, which holds no stream", got)
	}

	bad := run("FRAISEQL_TOKEN="+tok, "QUERY=subscription { nope }")
	var l struct {
		Event  string
		Status int
		Body   string
	}
	select {
	case line := <-bad:
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("client printed %q: %v", line, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no line from the client with an invalid query")
	}
	if l.Event != "error" || l.Status != http.StatusBadRequest || !strings.Contains(l.Body, `"code":"GRAPHQL_VALIDATION_FAILED"`) {
		t.Fatalf("invalid query: got %+v, want the 400 GRAPHQL_VALIDATION_FAILED refusal", l)
	}

	anon := run()
	if l := nextSSELine(t, anon); l.Event != "error" || !strings.Contains(l.Error, "403") {
		t.Fatalf("without a token: got %+v, want a 403 error", l)
	}

	var sawDelete bool
	for _, r := range bal.routed() {
		switch {
		case strings.HasPrefix(r, "PUT 201"), strings.HasPrefix(r, "GET 200"):
			if !strings.HasSuffix(r, " stream") {
				t.Errorf("%s: routed to the other node", r)
			}
		case r == "DELETE 200 other":
			sawDelete = true
		}
	}
	if !sawDelete {
		t.Fatalf("no DELETE answered 200 through node 2; routed: %v", bal.routed())
	}
}
