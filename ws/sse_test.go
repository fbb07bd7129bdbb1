package ws

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// ws.sse_keep_alive: 0 (the default) or between MinSSEKeepAlive and
// MaxSSEKeepAlive, each bound tested at limit-1, limit and limit+1.
func TestSSEKeepAliveBounds(t *testing.T) {
	testIntervalBounds(t, "ws.sse_keep_alive", func(o *Options) *time.Duration { return &o.SSEKeepAlive },
		MinSSEKeepAlive, MaxSSEKeepAlive, DefaultSSEKeepAlive)
}

// A `next` event carries the payload's cursor as its id; a payload line
// break starts a new data line; a payload without a cursor has no id.
func TestAppendSSENext(t *testing.T) {
	for _, tc := range []struct{ payload, want string }{
		{`{"data":{"a":1},"extensions":{"cursor":"AbC-_9"}}`,
			"event: next\ndata: {\"data\":{\"a\":1},\"extensions\":{\"cursor\":\"AbC-_9\"}}\nid: AbC-_9\n\n"},
		{"{\"data\":\n{\"a\":1}}", "event: next\ndata: {\"data\":\ndata: {\"a\":1}}\n\n"},
		{`{"errors":[]}`, "event: next\ndata: {\"errors\":[]}\n\n"},
		{`{"data":{},"extensions":{"cursor":"Xy","dropped":12}}`,
			"event: next\ndata: {\"data\":{},\"extensions\":{\"cursor\":\"Xy\",\"dropped\":12}}\nid: Xy\n\n"},
		{`{"data":{"cursor":"a\"b"}}`, "event: next\ndata: {\"data\":{\"cursor\":\"a\\\"b\"}}\n\n"},
	} {
		if got := string(appendSSENext(nil, sseNextPrefix, []byte(tc.payload))); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// sseDial opens an SSE stream on e with a POST and returns the client's
// socket, its reader past the response head, the session and the
// subscription.
func sseDial(t testing.TB, e *env) (net.Conn, *bufio.Reader, *fakeSession, *Subscription) {
	t.Helper()
	c, br, _, sess, sub := streamDial(t, e, "text/event-stream")
	return c, br, sess, sub
}

// An SSE client sends nothing after its request; what it sends anyway is
// discarded up to sseTrailingLimit bytes, and one byte more closes the
// connection as a bad message.
func TestSSETrailingBytesLimit(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	for _, tc := range []struct {
		n    int
		want CloseReason
	}{
		{sseTrailingLimit - 1, ClientClosed},
		{sseTrailingLimit, ClientClosed},
		{sseTrailingLimit + 1, BadMessage},
	} {
		c, _, sess, _ := sseDial(t, e)
		if _, err := c.Write(make([]byte, tc.n)); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		sess.expect(t, "unsubscribe")
		if ev := sess.expect(t, "close"); ev.reason != tc.want {
			t.Errorf("%d bytes after the request: closed as %v, want %v", tc.n, ev.reason, tc.want)
		}
		c.Close()
	}
}

// Server.Shutdown ends an SSE stream with a comment giving the close code
// and reason, as it closes a WebSocket with 1001.
func TestSSEShutdownComment(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	_, br, sess, _ := sseDial(t, e)
	go e.srv.Shutdown(t.Context()) // waited for by the cleanup's Shutdown
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != ": close 1001 server shutting down\n\n" {
		t.Fatalf("stream ended with %q", rest)
	}
	sess.expect(t, "unsubscribe")
	if ev := sess.expect(t, "close"); ev.reason != ServerShutdown {
		t.Fatalf("closed as %v", ev.reason)
	}
}

// A connection Session.Init refuses gets an HTTP 403 with a coded GraphQL
// error, readable by a page of an allowed origin.
func TestSSEInitRefusal(t *testing.T) {
	e := startEnv(t, Options{OriginPatterns: []string{"app.example.com"}}, func(s *fakeSession) {
		s.init = func(context.Context, *Conn, json.RawMessage) (json.RawMessage, error) {
			return nil, &CloseError{Code: CloseForbidden, Reason: "Forbidden: no token"}
		}
	})
	req, _ := http.NewRequest(http.MethodGet, e.hs.URL+"/graphql?query=subscription%7Ba%7D", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Origin", "https://app.example.com")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		string(body) != `{"errors":[{"message":"Forbidden: no token","extensions":{"code":"FORBIDDEN"}}]}` {
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if ev := e.session(t).expect(t, "init"); ev.kind != "init" {
		t.Fatal(ev)
	}
}
