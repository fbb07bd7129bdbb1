package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// ws.sse_keep_alive: 0 (the default) or between MinSSEKeepAlive and
// MaxSSEKeepAlive, each bound tested at limit-1, limit and limit+1.
func TestSSEKeepAliveBounds(t *testing.T) {
	testIntervalBounds(t, "ws.sse_keep_alive", func(o *Options) *time.Duration { return &o.SSEKeepAlive },
		MinSSEKeepAlive, MaxSSEKeepAlive, DefaultSSEKeepAlive)
}

// A `next` event carries the payload's cursor as its id; a payload line
// break (CR or LF) starts a new data line; a payload without a cursor has
// no id. The payload's sseMeta, read at framing (zero sseMeta), read
// ahead (sseMetaOf) or cached by a Fanout, frames it the same.
func TestAppendSSENext(t *testing.T) {
	for _, tc := range []struct{ payload, want string }{
		{`{"data":{"a":1},"extensions":{"cursor":"AbC-_9"}}`,
			"event: next\ndata: {\"data\":{\"a\":1},\"extensions\":{\"cursor\":\"AbC-_9\"}}\nid: AbC-_9\n\n"},
		{"{\"data\":\n{\"a\":1}}", "event: next\ndata: {\"data\":\ndata: {\"a\":1}}\n\n"},
		{`{"errors":[]}`, "event: next\ndata: {\"errors\":[]}\n\n"},
		{`{"data":{},"extensions":{"cursor":"Xy","dropped":12}}`,
			"event: next\ndata: {\"data\":{},\"extensions\":{\"cursor\":\"Xy\",\"dropped\":12}}\nid: Xy\n\n"},
		{`{"data":{"cursor":"a\"b"}}`, "event: next\ndata: {\"data\":{\"cursor\":\"a\\\"b\"}}\n\n"},
		// Line breaks and a cursor: every CR and LF splits, the id is found.
		{"{\"data\":\r\n {\"a\":\r1},\n\"extensions\":{\"cursor\":\"Q1\"}}",
			"event: next\ndata: {\"data\":\ndata: \ndata:  {\"a\":\ndata: 1},\ndata: \"extensions\":{\"cursor\":\"Q1\"}}\nid: Q1\n\n"},
		{"\n", "event: next\ndata: \ndata: \n\n"},
		// A payload that ends with a line break has no cursor at its end.
		{"{\"data\":{},\"extensions\":{\"cursor\":\"Zz\",\"dropped\":3}}\n",
			"event: next\ndata: {\"data\":{},\"extensions\":{\"cursor\":\"Zz\",\"dropped\":3}}\ndata: \n\n"},
		// Not a cursor: dropped without digits, a key that is not at the
		// end, a cursor with a backslash, an empty one.
		{`{"extensions":{"cursor":"Xy","dropped":}}`, "event: next\ndata: {\"extensions\":{\"cursor\":\"Xy\",\"dropped\":}}\n\n"},
		{`{"extensions":{"cursor":"Xy","more":"z"}}`, "event: next\ndata: {\"extensions\":{\"cursor\":\"Xy\",\"more\":\"z\"}}\n\n"},
		{`{"extensions":{"cursor":"X\\y"}}`, "event: next\ndata: {\"extensions\":{\"cursor\":\"X\\\\y\"}}\n\n"},
		{`{"extensions":{"cursor":""}}`, "event: next\ndata: {\"extensions\":{\"cursor\":\"\"}}\n\n"},
		{`"}}`, "event: next\ndata: \"}}\n\n"},
		{``, "event: next\ndata: \n\n"},
	} {
		p := []byte(tc.payload)
		var c sseMetaCache
		for _, m := range []sseMeta{{}, sseMetaOf(p), c.meta(p), c.meta(p)} {
			if got := string(appendSSENext(nil, sseNextPrefix, p, m)); got != tc.want {
				t.Errorf("meta %+v: got %q, want %q", m, got, tc.want)
			}
		}
		// Single connection mode: the same, with "}" after the payload.
		want := strings.Replace(tc.want, "\nid: ", "}\nid: ", 1)
		if !strings.Contains(tc.want, "\nid: ") {
			want = strings.TrimSuffix(tc.want, "\n\n") + "}\n\n"
		}
		if got := string(appendSSEEvent(nil, sseNextPrefix, p, closingBrace, sseMetaOf(p))); got != want {
			t.Errorf("single: got %q, want %q", got, want)
		}
	}
}

// sseID is the id line's value of payload's event ("" for none).
func sseID(payload []byte) string {
	id, _ := sseCursor(payload)
	return string(id)
}

// A Fanout reads a payload once for all the SSE connections it pushes it
// to: the payload found again keeps its entry while copies (with
// "dropped", one per subscriber) come and go, and Routed forgets them all.
func TestSSEMetaCache(t *testing.T) {
	shared := []byte(`{"data":{},"extensions":{"cursor":"AAAB"}}`)
	var c sseMetaCache
	want := sseMetaOf(shared)
	if got := c.meta(shared); got != want {
		t.Fatalf("meta %+v, want %+v", got, want)
	}
	c.meta(shared) // found again: kept in front
	for i := range 10 {
		cp := []byte(`{"data":{},"extensions":{"cursor":"AAAB","dropped":` + strconv.Itoa(i+1) + `}}`)
		if got := c.meta(cp); got != sseMetaOf(cp) {
			t.Fatalf("copy %d: meta %+v, want %+v", i, got, sseMetaOf(cp))
		}
	}
	if e := c.entries[0]; len(e.payload) != len(shared) || &e.payload[0] != &shared[0] {
		t.Fatalf("shared payload evicted by copies: entries[0] = %q", e.payload)
	}
	// Same bytes elsewhere: another payload, read on its own.
	other := bytes.Clone(shared)
	c.meta(other)
	c.reset()
	for i, e := range c.entries {
		if e.payload != nil {
			t.Fatalf("entry %d kept after reset", i)
		}
	}
}

// The sseMeta a Fanout queues fits in the padding of a frame: queues do
// not grow for it.
func TestFrameSize(t *testing.T) {
	var f frame
	align := unsafe.Alignof(f)
	bare := (unsafe.Offsetof(f.kind) + unsafe.Sizeof(f.kind) + align - 1) / align * align
	if got := unsafe.Sizeof(f); got != bare {
		t.Fatalf("frame is %d bytes, %d without its sseMeta", got, bare)
	}
}

// Through a Fanout, the payload shared by several SSE connections and the
// copy one of them gets with "dropped" are framed exactly: line breaks
// split into data lines, each event's id is its own payload's cursor.
func TestSSEFanoutFraming(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	c1, br1, _, sub1 := sseDial(t, e)
	c2, br2, _, sub2 := sseDial(t, e)
	shared := []byte("{\"data\":\r\n{\"a\":1},\n\"extensions\":{\"cursor\":\"AAAC\"}}")
	dropped := []byte("{\"data\":\r\n{\"a\":1},\n\"extensions\":{\"cursor\":\"AAAC\",\"dropped\":4}}")
	f := e.srv.NewFanout()
	sub1.Push(f, shared)
	sub2.Push(f, dropped)
	f.Routed()
	if f.sse.used {
		t.Fatal("Routed kept the event's payloads")
	}
	sub1.Push(f, shared[:len(shared)-2]) // the same bytes, shorter: not the same payload
	sub2.Push(f, shared)
	f.Idle() // the write pass
	if f.sse.used {
		t.Fatal("the write pass kept the payloads it wrote")
	}
	for _, tc := range []struct {
		c    net.Conn
		br   *bufio.Reader
		want []string
	}{
		{c1, br1, []string{
			"event: next\ndata: {\"data\":\ndata: \ndata: {\"a\":1},\ndata: \"extensions\":{\"cursor\":\"AAAC\"}}\nid: AAAC\n",
			"event: next\ndata: {\"data\":\ndata: \ndata: {\"a\":1},\ndata: \"extensions\":{\"cursor\":\"AAAC\"\n",
		}},
		{c2, br2, []string{
			"event: next\ndata: {\"data\":\ndata: \ndata: {\"a\":1},\ndata: \"extensions\":{\"cursor\":\"AAAC\",\"dropped\":4}}\nid: AAAC\n",
			"event: next\ndata: {\"data\":\ndata: \ndata: {\"a\":1},\ndata: \"extensions\":{\"cursor\":\"AAAC\"}}\nid: AAAC\n",
		}},
	} {
		for _, want := range tc.want {
			if got := readEvent(t, tc.c, tc.br); got != want {
				t.Fatalf("event\n%q\nwant\n%q", got, want)
			}
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
