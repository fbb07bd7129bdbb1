package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster/clustertest"
	"github.com/fraiseql/subscriptions/ws"
)

// sseClient is a graphql-sse client (distinct connections mode) on a raw
// socket, so that a test controls when it reads.
type sseClient struct {
	t    *testing.T
	c    net.Conn
	br   *bufio.Reader
	resp *http.Response
	body *bufio.Reader // resp.Body
}

const roomQuery = `subscription { messageAdded(room: "r1") { id } }`

// sseOpen sends one SSE request: a POST with body, or a GET with the query
// in the URL and body, if any, as more URL parameters ("extensions=…").
func sseOpen(t *testing.T, n *Node, method, body string, hdr map[string]string) *sseClient {
	t.Helper()
	target := "/graphql"
	if method == http.MethodGet {
		target += "?query=" + url.QueryEscape(roomQuery)
		if body != "" {
			target, body = target+"&"+body, ""
		}
	}
	c, br, resp := streamOpen(t, n, "text/event-stream", method, target, body, hdr)
	return &sseClient{t: t, c: c, br: br, resp: resp, body: bufio.NewReader(resp.Body)}
}

func ssePost(t *testing.T, n *Node, query string, hdr map[string]string) *sseClient {
	b, _ := json.Marshal(map[string]any{"query": query})
	return sseOpen(t, n, http.MethodPost, string(b), hdr)
}

// sseEvent is one event of the stream; comment is set for a comment line
// block (a keep-alive).
type sseEvent struct {
	event, data, id string
	comment         bool
}

func (s *sseClient) event() sseEvent {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var e sseEvent
	for {
		l, err := readLine(s.body)
		if err != nil {
			s.t.Fatalf("reading the stream: %v", err)
		}
		switch {
		case l == "":
			if e.event != "" || e.comment {
				return e
			}
		case strings.HasPrefix(l, ":"):
			e.comment = true
		case strings.HasPrefix(l, "event: "):
			e.event = l[len("event: "):]
		case strings.HasPrefix(l, "id: "):
			e.id = l[len("id: "):]
		case strings.HasPrefix(l, "data:"):
			e.data += strings.TrimPrefix(l[len("data:"):], " ")
		}
	}
}

// readLine reads one line of r, without its "\n".
func readLine(r *bufio.Reader) (string, error) {
	l, err := r.ReadString('\n')
	return strings.TrimSuffix(l, "\n"), err
}

// next reads events up to the next `next` (skipping keep-alives) and
// returns its message id and the SSE id, which must be its cursor.
func (s *sseClient) next() (msg, id string) {
	s.t.Helper()
	e := s.nextEvent()
	var p struct {
		Data struct {
			MessageAdded struct{ ID string } `json:"messageAdded"`
		} `json:"data"`
		Extensions struct{ Cursor string } `json:"extensions"`
	}
	if err := json.Unmarshal([]byte(e.data), &p); err != nil {
		s.t.Fatal(err)
	}
	if e.id == "" || e.id != p.Extensions.Cursor {
		s.t.Fatalf("event id %q is not its cursor %q", e.id, p.Extensions.Cursor)
	}
	return p.Data.MessageAdded.ID, e.id
}

func (s *sseClient) expect(ids ...int) (lastID string) {
	s.t.Helper()
	for _, want := range ids {
		msg, id := s.next()
		if msg != strconv.Itoa(want) {
			s.t.Fatalf("got message %s, want %d", msg, want)
		}
		lastID = id
	}
	return lastID
}

func publishRoom(t *testing.T, n *Node, tenant string, ids ...int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range ids {
		body := `{"id":"` + strconv.Itoa(id) + `","room":"r1","text":"t"}`
		if _, err := n.cl.Publish(ctx, tenant, "chat.r1", []byte(body), ""); err != nil {
			t.Fatal(err)
		}
	}
}

// nextEvent reads events up to the next `next`, skipping keep-alives.
func (s *sseClient) nextEvent() sseEvent {
	s.t.Helper()
	for {
		e := s.event()
		if e.comment {
			continue
		}
		if e.event != "next" {
			s.t.Fatalf("got event %q %s, want next", e.event, e.data)
		}
		return e
	}
}

// errorBody decodes a refusal's GraphQL error body and returns its code.
func errorBody(t *testing.T, r *http.Response) string {
	t.Helper()
	var b struct {
		Errors []struct {
			Message    string
			Extensions struct{ Code string }
		}
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || len(b.Errors) != 1 {
		t.Fatalf("body is not a GraphQL error: %v %+v", err, b)
	}
	return b.Errors[0].Extensions.Code
}

// Receive, the end of the subscription when the client goes away, and a
// resume by Last-Event-ID (POST, then a GET reconnect) with a complete
// sequence: no gap, no duplicate.
func TestSSEReceiveDisconnectResume(t *testing.T) {
	testStreamResume(t, ws.SubprotocolSSE, "text/event-stream", func(n *Node, cursor string) (*http.Response, func(...int) string, net.Conn) {
		if cursor != "" {
			s := sseOpen(t, n, http.MethodGet, "", map[string]string{"Last-Event-ID": cursor})
			return s.resp, s.expect, s.c
		}
		s := ssePost(t, n, roomQuery, nil)
		return s.resp, s.expect, s.c
	})
}

// A subscription the node refuses after the request was accepted (here:
// validation) is reported in the stream, as the protocol requires: a
// `next` carrying the coded error, then `complete`, then the end.
func TestSSEValidationError(t *testing.T) {
	n := startNode(t, nil)
	s := ssePost(t, n, `subscription { noSuchField }`, nil)
	if s.resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d, want 200", s.resp.StatusCode)
	}
	e := s.event()
	if e.event != "next" || !strings.Contains(e.data, `"code":"GRAPHQL_VALIDATION_FAILED"`) {
		t.Fatalf("got %+v, want next with GRAPHQL_VALIDATION_FAILED", e)
	}
	if e := s.event(); e.event != "complete" {
		t.Fatalf("got %+v, want complete", e)
	}
	if _, err := readLine(s.body); err != io.EOF {
		t.Fatalf("stream did not end after complete: %v", err)
	}
}

// Malformed requests are refused with an HTTP status and a GraphQL error
// body; the body's size limit (limits.max_message_bytes) holds at
// limit-1, limit and limit+1.
func TestSSERequestRefusals(t *testing.T) {
	testStreamRefusals(t, func(n *Node, body string) (*http.Response, net.Conn) {
		s := sseOpen(t, n, http.MethodPost, body, nil)
		return s.resp, s.c
	})
}

// With authentication on, a request without a valid token, or from a
// page of another origin, is refused (403 FORBIDDEN) before any stream;
// the Authorization header and the cookie authenticate, and the token's
// tenant scopes the subscription.
func TestSSEAuth(t *testing.T) {
	testStreamAuth(t, func(n *Node, hdr map[string]string) (*http.Response, func(...int) string) {
		s := ssePost(t, n, roomQuery, hdr)
		return s.resp, s.expect
	})
}

// An idle stream carries keep-alive comments every ws.sse_keep_alive.
func TestSSEKeepAlive(t *testing.T) {
	n := startNode(t, func(c *Config) { c.WS.SSEKeepAlive = ws.MinSSEKeepAlive })
	s := ssePost(t, n, roomQuery, nil)
	start := time.Now()
	for range 2 {
		if e := s.event(); !e.comment {
			t.Fatalf("got %+v, want a keep-alive comment", e)
		}
	}
	if el := time.Since(start); el < ws.MinSSEKeepAlive {
		t.Fatalf("two keep-alives in %v, before the interval", el)
	}
}

// A page of an origin ws.origin_patterns allows gets the CORS headers
// that let it read the stream, and its preflight is answered; other
// origins are refused.
func TestSSECrossOrigin(t *testing.T) {
	n := startNode(t, func(c *Config) { c.WS.OriginPatterns = []string{"app.example.com"} })
	const page = "https://app.example.com"
	s := ssePost(t, n, roomQuery, map[string]string{"Origin": page})
	if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Access-Control-Allow-Origin") != page ||
		s.resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed origin: got %d %v", s.resp.StatusCode, s.resp.Header)
	}
	if s := ssePost(t, n, roomQuery, map[string]string{"Origin": "https://evil.example"}); s.resp.StatusCode != http.StatusForbidden {
		t.Fatalf("other origin: got %d, want 403", s.resp.StatusCode)
	}
	if s := ssePost(t, n, roomQuery, nil); s.resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS headers on a request without Origin")
	}
	for origin, want := range map[string]int{page: http.StatusNoContent, "https://evil.example": http.StatusForbidden} {
		req, _ := http.NewRequest(http.MethodOptions, "http://"+n.Addr()+"/graphql", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || want == http.StatusNoContent && resp.Header.Get("Access-Control-Allow-Origin") != page {
			t.Fatalf("preflight from %s: got %d %v, want %d", origin, resp.StatusCode, resp.Header, want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// Last-Event-ID resumes on another node of the cluster: the cursor names
// a position in the stream, not a connection.
func TestSSEResumeOnAnotherNode(t *testing.T) {
	url := clustertest.RunServer(t)
	a := startNodeOn(t, url, testIngest())
	b := startNodeOn(t, url, testIngest())
	s := ssePost(t, a, roomQuery, nil)
	waitFor(t, "the subscription", func() bool { return a.met.subsOpen.Load() == 1 })
	publishRoom(t, a, "public", 1, 2)
	cursor := s.expect(1)
	s.c.Close() // 2 is lost with the connection, or not: the resume decides
	publishRoom(t, a, "public", 3)
	r := sseOpen(t, b, http.MethodGet, "", map[string]string{"Last-Event-ID": cursor})
	r.expect(2, 3)
	waitFor(t, "the resumed subscription", func() bool { return b.met.subsOpen.Load() == 1 })
	publishRoom(t, b, "public", 4)
	r.expect(4)
}
