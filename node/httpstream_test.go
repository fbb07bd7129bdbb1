package node

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/ws"
)

// Tests shared by the streamed HTTP transports (SSE, multipart).

// streamOpen sends one request for target with the given Accept on a raw
// socket (a POST with body when method is POST) and reads the response
// head.
func streamOpen(t *testing.T, n *Node, accept, method, target, body string, hdr map[string]string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + n.Addr() + "\r\nAccept: " + accept + "\r\n")
	for k, v := range hdr {
		b.WriteString(k + ": " + v + "\r\n")
	}
	if method == http.MethodPost {
		b.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}

// testStreamResume: receive, the end of the subscription when the client
// goes away, and a resume from the last cursor with a complete sequence:
// no gap, no duplicate. open subscribes to roomQuery, resuming after
// cursor unless it is "", and returns the response, the stream's expect
// and its socket; the response's Content-Type starts with contentType and
// the connection is labelled proto (logs, admin listing).
func testStreamResume(t *testing.T, proto, contentType string, open func(n *Node, cursor string) (*http.Response, func(ids ...int) string, net.Conn)) {
	n := startNode(t, nil)
	resp, expect, c := open(n, "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), contentType) {
		t.Fatalf("got %d %q, want 200 %s", resp.StatusCode, resp.Header.Get("Content-Type"), contentType)
	}
	waitFor(t, "the subscription", func() bool { return n.met.subsOpen.Load() == 1 })
	if got := n.matching(func(s *session) bool { return s.conn.Protocol() == proto }); len(got) != 1 {
		t.Fatalf("%d connections labelled %s, want 1", len(got), proto)
	}
	publishRoom(t, n, "public", 1, 2, 3)
	cursor := expect(1, 2)
	expect(3)
	c.Close()
	waitFor(t, "the subscription to end with its client", func() bool { return n.met.subsOpen.Load() == 0 && n.wss.Conns() == 0 })
	publishRoom(t, n, "public", 4, 5)

	resp, expect, _ = open(n, cursor)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: got %d", resp.StatusCode)
	}
	expect(3, 4, 5)
	waitFor(t, "the resumed subscription", func() bool { return n.met.subsOpen.Load() == 1 })
	publishRoom(t, n, "public", 6)
	expect(6)
}

// testStreamRefusals: malformed requests are refused with an HTTP status
// and a GraphQL error body; the body's size limit
// (limits.max_message_bytes) holds at limit-1, limit and limit+1. post
// sends body as a transport's POST.
func testStreamRefusals(t *testing.T, post func(n *Node, body string) (*http.Response, net.Conn)) {
	const limit = 1000
	n := startNode(t, func(c *Config) {
		c.Limits.MaxMessageBytes = limit
		c.Limits.MaxQueryBytes = limit / 2
	})
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"not JSON", "{", http.StatusBadRequest, ws.CodeBadRequest},
		{"no query", "{}", http.StatusBadRequest, ws.CodeBadRequest},
	} {
		resp, _ := post(n, tc.body)
		if resp.StatusCode != tc.status || errorBody(t, resp) != tc.code {
			t.Errorf("%s: got %d, want %d %s", tc.name, resp.StatusCode, tc.status, tc.code)
		}
	}
	q, _ := json.Marshal(map[string]any{"query": roomQuery})
	for _, size := range []int{limit - 1, limit, limit + 1} {
		body := string(q[:len(q)-1]) + strings.Repeat(" ", size-len(q)) + "}"
		resp, c := post(n, body)
		want := http.StatusOK
		if size > limit {
			want = http.StatusRequestEntityTooLarge
		}
		if resp.StatusCode != want {
			t.Fatalf("body of %d bytes: got %d, want %d", size, resp.StatusCode, want)
		}
		if want != http.StatusOK {
			if code := errorBody(t, resp); code != ws.CodeQueryTooLarge {
				t.Fatalf("body of %d bytes: code %s", size, code)
			}
		}
		c.Close()
	}
}

// testStreamAuth: with authentication on, a request without a valid
// token, or from a page of another origin, is refused (403 FORBIDDEN)
// before any stream; the Authorization header and the cookie
// authenticate, and the token's tenant scopes the subscription. post
// subscribes to roomQuery with the headers hdr and returns the response
// and the stream's expect.
func testStreamAuth(t *testing.T, post func(n *Node, hdr map[string]string) (*http.Response, func(ids ...int) string)) {
	n, token := startAuthNode(t)
	for name, hdr := range map[string]map[string]string{
		"no token":     nil,
		"bad token":    {"Authorization": "Bearer not-a-token"},
		"cross-origin": {"Cookie": "session=" + token, "Origin": "https://evil.example"},
	} {
		resp, _ := post(n, hdr)
		if resp.StatusCode != http.StatusForbidden || errorBody(t, resp) != ws.CodeForbidden {
			t.Errorf("%s: got %d, want 403 FORBIDDEN", name, resp.StatusCode)
		}
	}
	if got := n.met.subsOpen.Load(); got != 0 {
		t.Fatalf("%d subscriptions opened by refused requests", got)
	}
	hResp, h := post(n, map[string]string{"Authorization": "Bearer " + token})
	cResp, c := post(n, map[string]string{"Cookie": "session=" + token, "Origin": "http://" + n.Addr()})
	for _, r := range []*http.Response{hResp, cResp} {
		if r.StatusCode != http.StatusOK {
			t.Fatalf("authenticated: got %d", r.StatusCode)
		}
	}
	waitFor(t, "the subscriptions", func() bool { return n.met.subsOpen.Load() == 2 })
	publishRoom(t, n, "public", 1) // another tenant's room
	publishRoom(t, n, "acme", 2)
	h(2)
	c(2)
}

// startAuthNode starts a node that authenticates with an HS256 secret,
// by the Authorization header or the cookie "session", and returns it with
// a token for tenant acme.
func startAuthNode(t *testing.T) (*Node, string) {
	t.Helper()
	const secret = "http-stream-test-secret-0123456789abcdef"
	v, err := auth.New(auth.Config{HS256Secret: secret, Cookie: "session"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"tenant": "acme", "sub": "u1", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, func(c *Config) { c.Auth = v }), token
}
