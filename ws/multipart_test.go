package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// The Accept header Apollo Client's HttpLink sends for a subscription
// (unquoted), the one of Apollo's documentation (quoted), and what is not
// a multipart subscription request.
func TestWantsMultipart(t *testing.T) {
	for _, tc := range []struct {
		accept, upgrade string
		want            bool
	}{
		{"multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json", "", true},
		{`multipart/mixed;boundary="graphql";subscriptionSpec="1.0", application/json`, "", true},
		{"application/json, Multipart/Mixed; subscriptionspec=1.0", "", true},
		{"multipart/mixed;deferSpec=20220824,application/json", "", false},
		{"multipart/mixed;subscriptionSpec=2.0", "", false},
		{"text/event-stream", "", false},
		{"multipart/mixed;subscriptionSpec=1.0", "websocket", false},
	} {
		r, _ := http.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Accept", tc.accept)
		if tc.upgrade != "" {
			r.Header.Set("Upgrade", tc.upgrade)
		}
		if got := wantsMultipart(r); got != tc.want {
			t.Errorf("Accept %q Upgrade %q: got %v, want %v", tc.accept, tc.upgrade, got, tc.want)
		}
	}
}

// ws.multipart_heartbeat: 0 (the default) or between
// MinMultipartHeartbeat and MaxMultipartHeartbeat, each bound tested at
// limit-1, limit and limit+1.
func TestMultipartHeartbeatBounds(t *testing.T) {
	testIntervalBounds(t, "ws.multipart_heartbeat", func(o *Options) *time.Duration { return &o.MultipartHeartbeat },
		MinMultipartHeartbeat, MaxMultipartHeartbeat, DefaultMultipartHeartbeat)
}

// testIntervalBounds checks the bounds of the interval field of Options
// (named name in errors): 0 means def, and lo and hi are tested at
// limit-1, limit and limit+1.
func testIntervalBounds(t *testing.T, name string, field func(*Options) *time.Duration, lo, hi, def time.Duration) {
	t.Helper()
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{
		{0, true},
		{lo - time.Millisecond, false},
		{lo, true},
		{lo + time.Millisecond, true},
		{hi - time.Millisecond, true},
		{hi, true},
		{hi + time.Millisecond, false},
		{-time.Second, false},
	} {
		var o Options
		*field(&o) = tc.d
		err := o.Validate()
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("%s %v: got %v, want ok=%v", name, tc.d, err, tc.ok)
		}
	}
	d := Options{}.withDefaults()
	if got := *field(&d); got != def {
		t.Errorf("%s default: got %v, want %v", name, got, def)
	}
}

// multipartDial opens a multipart subscription on e with a POST as Apollo
// Client sends it and returns the client's socket, its reader past the
// response head, the session and the subscription.
func multipartDial(t testing.TB, e *env) (net.Conn, *bufio.Reader, *fakeSession, *Subscription) {
	t.Helper()
	c, br, resp, sess, sub := streamDial(t, e, "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json")
	if ct := resp.Header.Get("Content-Type"); ct != multipartContentType {
		t.Fatalf("Content-Type %q", ct)
	}
	return c, br, sess, sub
}

// streamDial opens a streamed HTTP subscription on e with a POST that
// accepts accept, and returns the client's socket, its reader past the
// response head, the response, the session and the subscription.
func streamDial(t testing.TB, e *env, accept string) (net.Conn, *bufio.Reader, *http.Response, *fakeSession, *Subscription) {
	t.Helper()
	c, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := `{"query":"subscription { a }"}`
	if _, err := io.WriteString(c, "POST /graphql HTTP/1.1\r\nHost: x\r\nAccept: "+accept+"\r\n"+
		"Content-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	sess := e.session(t)
	sess.expect(t, "init")
	sub := sess.expect(t, "subscribe").sub
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(br, nil)
	c.SetReadDeadline(time.Time{})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("response: %v %v", err, resp)
	}
	return c, br, resp, sess, sub
}

// readPart reads the stream up to the next delimiter and returns what it
// held, or "--\r\n" and io.EOF at the end of the stream.
func readPart(t *testing.T, c net.Conn, br *bufio.Reader) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	var b []byte
	for {
		x, err := br.ReadByte()
		if err != nil {
			return string(b), err
		}
		b = append(b, x)
		if rest, ok := bytes.CutSuffix(b, multipartOpen); ok {
			return string(rest), nil
		}
	}
}

// The stream as Apollo Router writes it: the first delimiter, each
// result a part followed by its delimiter, heartbeats, a subscription
// error as a part with payload.errors, then the end; the protocol's name
// labels the connection.
func TestMultipartStream(t *testing.T) {
	e := startEnv(t, Options{MultipartHeartbeat: MinMultipartHeartbeat}, nil)
	c, br, sess, sub := multipartDial(t, e)
	if got := sub.Conn().Protocol(); got != SubprotocolMultipart {
		t.Fatalf("Protocol() = %q", got)
	}
	if p, err := readPart(t, c, br); p != "\r\n" && p != "" || err != nil {
		t.Fatalf("preamble %q %v", p, err)
	}
	const head = "\r\ncontent-type: application/json; charset=utf-8\r\n\r\n"
	payload := `{"data":{"a":1},"extensions":{"cursor":"AAAB"}}`
	sub.Next([]byte(payload))
	f := newFanout(sub.conn.opts, sub.conn.flushes)
	pushFlush(f, sub, []byte(`{"data":{"a":2}}`))
	for _, want := range []string{`{"payload":` + payload + `}`, `{"payload":{"data":{"a":2}}}`} {
		p, err := readPart(t, c, br)
		if err != nil || p != head+want {
			t.Fatalf("part %q %v, want %q", p, err, want)
		}
	}
	start := time.Now()
	if p, err := readPart(t, c, br); err != nil || p != head+"{}" {
		t.Fatalf("heartbeat %q %v", p, err)
	}
	if el := time.Since(start); el < MinMultipartHeartbeat/2 {
		t.Fatalf("heartbeat after %v", el)
	}
	sub.Error(gqlerror.List{{Message: "nope", Extensions: map[string]any{"code": "CURSOR_EXPIRED"}}})
	p, err := readPart(t, c, br)
	for strings.Contains(p, "{}") && err == nil { // a heartbeat on the way
		p, err = readPart(t, c, br)
	}
	if want := head + `{"payload":{"errors":[{"message":"nope","extensions":{"code":"CURSOR_EXPIRED"}}]}}`; err != nil || p != want {
		t.Fatalf("error part %q %v, want %q", p, err, want)
	}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "--\r\n" {
		t.Fatalf("end %q %v", rest, err)
	}
	sess.expect(t, "unsubscribe")
	sess.expectClosed(t, ServerClosed)
}

// Server.Shutdown ends a multipart stream with a transport error
// ({"payload":null,"errors":[…]}) giving the code, then the end.
func TestMultipartShutdownTransportError(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	c, br, sess, _ := multipartDial(t, e)
	if _, err := readPart(t, c, br); err != nil {
		t.Fatal(err)
	}
	go e.srv.Shutdown(t.Context()) // waited for by the cleanup's Shutdown
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	want := "\r\ncontent-type: application/json; charset=utf-8\r\n\r\n" +
		`{"payload":null,"errors":[{"message":"server shutting down","extensions":{"closeCode":1001,"code":"SERVICE_UNAVAILABLE"}}]}` +
		"\r\n--graphql--\r\n"
	if string(rest) != want {
		t.Fatalf("stream ended with %q, want %q", rest, want)
	}
	sess.expect(t, "unsubscribe")
	if ev := sess.expect(t, "close"); ev.reason != ServerShutdown {
		t.Fatalf("closed as %v", ev.reason)
	}
}

// A subscription Session.Subscribe refuses is answered in the stream: a
// part with payload.errors, then the end.
func TestMultipartSubscribeRefused(t *testing.T) {
	e := startEnv(t, Options{}, func(s *fakeSession) {
		s.subscribe = func(context.Context, *Subscription, Request) error {
			return gqlerror.List{{Message: "bad", Extensions: map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}}}
		}
	})
	req, _ := http.NewRequest(http.MethodGet, e.hs.URL+"/graphql?query=subscription%7Ba%7D", nil)
	req.Header.Set("Accept", "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := "\r\n--graphql\r\ncontent-type: application/json; charset=utf-8\r\n\r\n" +
		`{"payload":{"errors":[{"message":"bad","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}}` + "\r\n--graphql--\r\n"
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("got %d %q, want %q", resp.StatusCode, body, want)
	}
}

// A connection Session.Init refuses gets an HTTP 403 with a coded GraphQL
// error (Apollo Client reads it as a ServerError), readable by a page of
// an allowed origin; a page of another origin is refused before Init.
func TestMultipartRefusals(t *testing.T) {
	e := startEnv(t, Options{OriginPatterns: []string{"app.example.com"}}, func(s *fakeSession) {
		s.init = func(context.Context, *Conn, json.RawMessage) (json.RawMessage, error) {
			return nil, &CloseError{Code: CloseForbidden, Reason: "Forbidden: no token"}
		}
	})
	for _, tc := range []struct {
		origin string
		status int
		body   string
	}{
		{"https://app.example.com", http.StatusForbidden, `{"errors":[{"message":"Forbidden: no token","extensions":{"code":"FORBIDDEN"}}]}`},
		{"https://evil.example", http.StatusForbidden, `{"errors":[{"message":"origin \"https://evil.example\" is not allowed","extensions":{"code":"FORBIDDEN"}}]}`},
	} {
		req, _ := http.NewRequest(http.MethodPost, e.hs.URL+"/graphql", strings.NewReader(`{"query":"subscription { a }"}`))
		req.Header.Set("Accept", "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json")
		req.Header.Set("Origin", tc.origin)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(body) != tc.body || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("origin %s: got %d %v %s", tc.origin, resp.StatusCode, resp.Header, body)
		}
		if tc.origin == "https://app.example.com" && resp.Header.Get("Access-Control-Allow-Origin") != tc.origin {
			t.Fatalf("no CORS header on the refusal: %v", resp.Header)
		}
	}
	if ev := e.session(t).expect(t, "init"); ev.kind != "init" {
		t.Fatal(ev)
	}
}

// A client that does not read is closed as a slow consumer once its queue
// is over Options.MaxQueuedBytes, counted; it gets no transport error (its
// socket is full), the socket just closes.
func TestMultipartSlowConsumer(t *testing.T) {
	const maxQueued = 64 << 10
	e := startEnv(t, Options{MaxQueuedBytes: maxQueued}, nil)
	_, _, sess, sub := multipartDial(t, e)
	payload := []byte(`{"data":{"a":"` + strings.Repeat("x", 4<<10) + `"}}`)
	sent := 0
	for sent < 100_000 && sub.Next(payload) {
		sent++
	}
	if sent == 100_000 {
		t.Fatal("Next never refused")
	}
	sess.expect(t, "unsubscribe")
	sess.expectClosed(t, SlowConsumer)
	if got := e.srv.SlowConsumerCloses(); got.ConnBytes != 1 {
		t.Fatalf("slow consumer closes %+v, want one for conn_bytes", got)
	}
	if err := sub.Conn().Context().Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("connection context: %v", err)
	}
}

// A subscription that outlives its lifetime (Subscription.Expire) ends
// with its error part, then the end: no second error, nothing after.
func TestMultipartExpire(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	c, br, sess, sub := multipartDial(t, e)
	if _, err := readPart(t, c, br); err != nil {
		t.Fatal(err)
	}
	sub.Expire(gqlerror.List{{Message: "expired", Extensions: map[string]any{"code": "SUBSCRIPTION_EXPIRED"}}})
	rest, err := io.ReadAll(br)
	want := multipartPartHeader + `{"payload":{"errors":[{"message":"expired","extensions":{"code":"SUBSCRIPTION_EXPIRED"}}]}}` + "\r\n--graphql--\r\n"
	if err != nil || string(rest) != want {
		t.Fatalf("got %q %v, want %q", rest, err, want)
	}
	sess.expect(t, "unsubscribe")
	sess.expectClosed(t, ServerClosed)
}

// The transport error of each way the node closes a stream: its code
// tells the client whether to resume (SERVICE_UNAVAILABLE), get a new
// token (FORBIDDEN) or give up.
func TestMultipartCloseNote(t *testing.T) {
	for _, tc := range []struct {
		code CloseCode
		want string
	}{
		{CloseGoingAway, CodeServiceUnavailable},
		{CloseTryAgainLater, CodeServiceUnavailable},
		{CloseForbidden, CodeForbidden},
		{CloseUnauthorized, CodeForbidden},
		{CloseBadRequest, CodeBadRequest},
		{CloseMessageTooBig, CodeBadRequest},
		{CloseInternal, CodeInternal},
	} {
		note := multipartProtocol{}.closeNote(tc.code, "why")
		body, okHead := bytes.CutPrefix(note, multipartPartHead)
		body, okEnd := bytes.CutSuffix(body, []byte("\r\n--graphql--\r\n"))
		if !okHead || !okEnd {
			t.Fatalf("%d: note %q is not a part then the end", tc.code, note)
		}
		var got struct {
			Payload *json.RawMessage `json:"payload"`
			Errors  []struct {
				Message    string
				Extensions struct {
					Code      string
					CloseCode int
				}
			}
		}
		if err := json.Unmarshal(body, &got); err != nil || got.Payload != nil || len(got.Errors) != 1 ||
			got.Errors[0].Message != "why" || got.Errors[0].Extensions.Code != tc.want || got.Errors[0].Extensions.CloseCode != int(tc.code) {
			t.Errorf("%d: %s (%v), want code %s", tc.code, body, err, tc.want)
		}
	}
}

// A page of an origin Options.OriginPatterns allows gets the CORS headers
// that let it read the stream.
func TestMultipartCORS(t *testing.T) {
	e := startEnv(t, Options{OriginPatterns: []string{"app.example.com"}}, nil)
	req, _ := http.NewRequest(http.MethodPost, e.hs.URL+"/graphql", strings.NewReader(`{"query":"subscription { a }"}`))
	req.Header.Set("Accept", "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json")
	req.Header.Set("Origin", "https://app.example.com")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Content-Type") != multipartContentType {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
	sess := e.session(t)
	sess.expect(t, "init")
	sess.expect(t, "subscribe")
}
