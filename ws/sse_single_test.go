package ws

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// streamHandler opens fake sessions and serves single connection mode:
// the principal is the X-Principal header; Forward hands the call to the
// peer Server (as a node does over NATS).
type streamHandler struct {
	e    *env
	peer *Server
	fwd  chan StreamCall
}

func (h *streamHandler) Open(*http.Request) (Session, error) {
	s := newFakeSession()
	h.e.sessions <- s
	return s, nil
}

func (h *streamHandler) Principal(r *http.Request) (string, error) {
	if p := r.Header.Get("X-Principal"); p != "bad" {
		return strings.Replace(p, "/", "\x00", 1), nil // "tenant/user"
	}
	return "", &HTTPError{Status: http.StatusForbidden, Message: "Forbidden: invalid token"}
}

func (h *streamHandler) Forward(_ context.Context, node string, call StreamCall) StreamResult {
	h.fwd <- call
	if h.peer == nil || h.peer.StreamNode() != node {
		return StreamNotFound()
	}
	return h.peer.StreamCall(call)
}

// startStreamEnv is startEnv with a streamHandler.
func startStreamEnv(t testing.TB, opts Options) (*env, *streamHandler) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &env{sessions: make(chan *fakeSession, 64)}
	h := &streamHandler{e: e, fwd: make(chan StreamCall, 16)}
	e.serve(t, h, opts)
	return e, h
}

// streamDo sends one request of single connection mode and returns its
// status, body and error code (if the body is a GraphQL error).
func streamDo(t testing.TB, e *env, method, token, principal, body string) (int, string, string) {
	t.Helper()
	target := e.hs.URL + "/graphql"
	if method == http.MethodDelete {
		target += "?operationId=" + body
		body = ""
	}
	req, _ := http.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set(StreamTokenHeader, token)
	}
	if principal != "" {
		req.Header.Set("X-Principal", principal)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb struct {
		Errors []struct{ Extensions struct{ Code string } }
	}
	code := ""
	if json.Unmarshal(b, &eb) == nil && len(eb.Errors) > 0 {
		code = eb.Errors[0].Extensions.Code
	}
	return resp.StatusCode, string(b), code
}

// reserve PUTs a reservation for principal and returns its token and
// session.
func reserve(t testing.TB, e *env, principal string) (string, *fakeSession) {
	t.Helper()
	status, body, code := streamDo(t, e, http.MethodPut, "", principal, "")
	if status != http.StatusCreated {
		t.Fatalf("PUT: %d %s %s", status, code, body)
	}
	return body, e.session(t)
}

func subscribeBody(id string) string {
	return `{"query":"subscription { a }","extensions":{"operationId":"` + id + `"}}`
}

// streamOpen opens the stream of token (GET) and returns its event reader.
func streamOpen(t testing.TB, e *env, token, principal string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /graphql?token=" + token + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
	if principal != "" {
		req += "X-Principal: " + principal + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}

// A reservation, its stream, subscriptions started and stopped by other
// requests, results framed with their operation id and cursor, a
// server-side error that ends one operation and not the stream.
func TestSSESingleConnection(t *testing.T) {
	e, _ := startStreamEnv(t, Options{})
	token, sess := reserve(t, e, "acme/ann")
	if !strings.HasPrefix(token, e.srv.StreamNode()+".") {
		t.Fatalf("token %q does not name the node %q", token, e.srv.StreamNode())
	}
	if status, _, code := streamDo(t, e, http.MethodPost, token, "acme/ann", subscribeBody("1")); status != http.StatusConflict {
		t.Fatalf("subscribe before the stream opened: %d %s, want 409", status, code)
	}
	c, br, resp := streamOpen(t, e, token, "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET: %d %v", resp.StatusCode, resp.Header)
	}
	sess.expect(t, "init")
	if status, body, _ := streamDo(t, e, http.MethodPost, token, "acme/ann", subscribeBody("1")); status != http.StatusAccepted {
		t.Fatalf("subscribe: %d %s", status, body)
	}
	sub1 := sess.expect(t, "subscribe").sub
	if status, _, _ := streamDo(t, e, http.MethodPost, token, "acme/ann", subscribeBody("1")); status != http.StatusConflict {
		t.Fatalf("an active operation id again: %d, want 409", status)
	}
	if status, body, _ := streamDo(t, e, http.MethodPost, token, "acme/ann", subscribeBody("2")); status != http.StatusAccepted {
		t.Fatalf("subscribe 2: %d %s", status, body)
	}
	sub2 := sess.expect(t, "subscribe").sub

	sub1.Next([]byte(`{"data":{"a":1},"extensions":{"cursor":"Cx"}}`))
	if got, want := readEvent(t, c, br), "event: next\ndata: {\"id\":\"1\",\"payload\":{\"data\":{\"a\":1},\"extensions\":{\"cursor\":\"Cx\"}}}\nid: Cx\n"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	sub2.Error(gqlerror.List{{Message: "nope", Extensions: map[string]any{"code": "CURSOR_EXPIRED"}}})
	if got, want := readEvent(t, c, br), "event: next\ndata: {\"id\":\"2\",\"payload\":{\"errors\":[{\"message\":\"nope\",\"extensions\":{\"code\":\"CURSOR_EXPIRED\"}}]}}\n"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got, want := readEvent(t, c, br), "event: complete\ndata: {\"id\":\"2\"}\n"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	sess.expect(t, "unsubscribe")
	sub1.Complete()
	if got, want := readEvent(t, c, br), "event: complete\ndata: {\"id\":\"1\"}\n"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	sess.expect(t, "unsubscribe")

	// The stream goes on: a new operation (reusing an ended id), stopped
	// by the client.
	if status, _, _ := streamDo(t, e, http.MethodPost, token, "acme/ann", subscribeBody("1")); status != http.StatusAccepted {
		t.Fatalf("subscribe again: %d", status)
	}
	sub3 := sess.expect(t, "subscribe").sub
	sub3.Next([]byte(`{"data":{"a":3}}`))
	if got := readEvent(t, c, br); !strings.Contains(got, `{"id":"1","payload":{"data":{"a":3}}}`) {
		t.Fatalf("got %q", got)
	}
	if status, _, _ := streamDo(t, e, http.MethodDelete, token, "acme/ann", "1"); status != http.StatusOK {
		t.Fatalf("DELETE: %d", status)
	}
	if ev := sess.expect(t, "unsubscribe"); ev.sub != sub3 {
		t.Fatal("DELETE stopped another subscription")
	}
	c.Close()
	sess.expectClosed(t, ClientClosed)
	// The token ended with its stream.
	if status, _, code := streamDo(t, e, http.MethodPost, token, "acme/ann", subscribeBody("4")); status != http.StatusNotFound || code != CodeStreamNotFound {
		t.Fatalf("after the stream ended: %d %s", status, code)
	}
}

// Another principal holding a token can neither open its stream,
// subscribe on it, nor stop its operations: each is answered as an
// unknown token is (404 STREAM_NOT_FOUND), and the owner's stream and
// subscription go on. Requests without credentials are refused (403).
func TestSSESingleOtherPrincipal(t *testing.T) {
	e, _ := startStreamEnv(t, Options{})
	token, sess := reserve(t, e, "acme/ann")
	if _, _, resp := streamOpen(t, e, token, "evil/eve"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("another principal opened the stream: %d", resp.StatusCode)
	}
	c, br, resp := streamOpen(t, e, token, "acme/ann")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("owner's GET after the attempt: %d", resp.StatusCode)
	}
	sess.expect(t, "init")
	if status, _, _ := streamDo(t, e, http.MethodPost, token, "acme/ann", subscribeBody("1")); status != http.StatusAccepted {
		t.Fatalf("owner's subscribe: %d", status)
	}
	sub := sess.expect(t, "subscribe").sub
	unknown := e.srv.StreamNode() + ".AAAAAAAAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		name, method, token, principal, body string
		status                               int
		code                                 string
	}{
		{"subscribe as another principal", http.MethodPost, token, "evil/eve", subscribeBody("2"), http.StatusNotFound, CodeStreamNotFound},
		{"stop as another principal", http.MethodDelete, token, "evil/eve", "1", http.StatusNotFound, CodeStreamNotFound},
		{"another tenant's user of the same name", http.MethodPost, token, "evil/ann", subscribeBody("2"), http.StatusNotFound, CodeStreamNotFound},
		{"subscribe without credentials", http.MethodPost, token, "", subscribeBody("2"), http.StatusForbidden, CodeForbidden},
		{"stop without credentials", http.MethodDelete, token, "", "1", http.StatusForbidden, CodeForbidden},
		{"invalid credentials", http.MethodPost, token, "bad", subscribeBody("2"), http.StatusForbidden, CodeForbidden},
		{"unknown token", http.MethodPost, unknown, "acme/ann", subscribeBody("2"), http.StatusNotFound, CodeStreamNotFound},
		{"malformed token", http.MethodPost, "x", "acme/ann", subscribeBody("2"), http.StatusNotFound, CodeStreamNotFound},
		{"a second stream on the token", http.MethodGet, token, "acme/ann", "", http.StatusConflict, CodeBadRequest},
	} {
		var status int
		var code string
		if tc.method == http.MethodGet {
			_, _, resp := streamOpen(t, e, tc.token, tc.principal)
			status = resp.StatusCode
		} else {
			status, _, code = streamDo(t, e, tc.method, tc.token, tc.principal, tc.body)
		}
		if status != tc.status || tc.method != http.MethodGet && code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	select {
	case ev := <-sess.events:
		t.Fatalf("the owner's session heard %s", ev.kind)
	default:
	}
	sub.Next([]byte(`{"data":{"a":1}}`))
	if got := readEvent(t, c, br); !strings.Contains(got, `"id":"1"`) {
		t.Fatalf("the owner's subscription: %q", got)
	}
}

// Outstanding reservations are bounded per principal, per tenant and per
// node, at limit-1, limit and limit+1; an opened reservation no longer
// counts, a refused one frees its connection at once. A PUT without
// credentials is refused.
func TestSSESingleReservationLimits(t *testing.T) {
	e, _ := startStreamEnv(t, Options{SSEMaxReservationsPerUser: 2, SSEMaxReservations: 3})
	if status, _, _ := streamDo(t, e, http.MethodPut, "", "", ""); status != http.StatusForbidden {
		t.Fatalf("PUT without credentials: %d, want 403", status)
	}
	e.session(t).expectClosed(t, HandshakeFailed)
	a1, _ := reserve(t, e, "ann") // ann: 1 (limit-1)
	reserve(t, e, "ann")          // ann: 2 (limit)
	status, _, code := streamDo(t, e, http.MethodPut, "", "ann", "")
	if status != http.StatusTooManyRequests || code != CodeRateLimited {
		t.Fatalf("ann's third: %d %s, want 429 RATE_LIMITED", status, code)
	}
	e.session(t).expectClosed(t, HandshakeFailed)
	reserve(t, e, "bob") // node: 3 (limit)
	status, _, code = streamDo(t, e, http.MethodPut, "", "cat", "")
	if status != http.StatusServiceUnavailable || code != CodeServiceUnavailable {
		t.Fatalf("the node's fourth: %d %s, want 503 SERVICE_UNAVAILABLE", status, code)
	}
	e.session(t).expectClosed(t, HandshakeFailed)
	if _, _, resp := streamOpen(t, e, a1, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	reserve(t, e, "ann") // the opened one no longer counts
	if p, r, o, _ := e.srv.StreamStats(); p != 3 || r != 4 || o != 1 {
		t.Fatalf("stats: pending %d reserved %d opened %d", p, r, o)
	}

	// Per tenant: its users together, whatever each user's own bound.
	e, _ = startStreamEnv(t, Options{SSEMaxReservationsPerTenant: 2})
	reserve(t, e, "acme/ann") // acme: 1 (limit-1)
	reserve(t, e, "acme/bob") // acme: 2 (limit)
	status, _, code = streamDo(t, e, http.MethodPut, "", "acme/cat", "")
	if status != http.StatusTooManyRequests || code != CodeRateLimited {
		t.Fatalf("acme's third: %d %s, want 429 RATE_LIMITED", status, code)
	}
	e.session(t).expectClosed(t, HandshakeFailed)
	reserve(t, e, "evil/cat") // another tenant
}

// A reservation not opened in time expires: its session closes, its
// token is unknown.
func TestSSESingleReservationExpires(t *testing.T) {
	e, _ := startStreamEnv(t, Options{SSEReservationTimeout: 50 * time.Millisecond})
	token, sess := reserve(t, e, "ann")
	sess.expectClosed(t, HandshakeFailed)
	if _, _, resp := streamOpen(t, e, token, ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after expiry: %d", resp.StatusCode)
	}
	if p, _, _, x := e.srv.StreamStats(); p != 0 || x != 1 {
		t.Fatalf("pending %d expired %d", p, x)
	}
}

// Shutdown closes the reservations not opened yet.
func TestSSESingleShutdownClosesReservations(t *testing.T) {
	e, _ := startStreamEnv(t, Options{})
	_, sess := reserve(t, e, "ann")
	if err := e.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	sess.expectClosed(t, ServerShutdown)
	if status, _, _ := streamDo(t, e, http.MethodPut, "", "ann", ""); status != http.StatusServiceUnavailable {
		t.Fatalf("PUT after Shutdown: %d", status)
	}
}

// A POST or DELETE that lands on another server than the stream's is
// forwarded to it (StreamHandler.Forward) with its principal; a GET there
// is refused with 421 STREAM_ON_ANOTHER_NODE.
func TestSSESingleForward(t *testing.T) {
	a, _ := startStreamEnv(t, Options{NodeID: "nodeA"})
	b, hb := startStreamEnv(t, Options{NodeID: "nodeB"})
	hb.peer = a.srv
	token, sess := reserve(t, a, "ann")
	c, br, _ := streamOpen(t, a, token, "")
	sess.expect(t, "init")
	if status, body, _ := streamDo(t, b, http.MethodPost, token, "ann", subscribeBody("1")); status != http.StatusAccepted {
		t.Fatalf("forwarded subscribe: %d %s", status, body)
	}
	if call := <-hb.fwd; call.Op != StreamSubscribe || call.Principal != "ann" || call.ID != "1" || call.Request.Query != "subscription { a }" {
		t.Fatalf("forwarded %+v", call)
	}
	sub := sess.expect(t, "subscribe").sub
	sub.Next([]byte(`{"data":{"a":1}}`))
	if got := readEvent(t, c, br); !strings.Contains(got, `"id":"1"`) {
		t.Fatalf("got %q", got)
	}
	if status, _, code := streamDo(t, b, http.MethodPost, token, "eve", subscribeBody("2")); status != http.StatusNotFound || code != CodeStreamNotFound {
		t.Fatalf("another principal, forwarded: %d %s", status, code)
	}
	<-hb.fwd
	if status, _, _ := streamDo(t, b, http.MethodDelete, token, "ann", "1"); status != http.StatusOK {
		t.Fatalf("forwarded stop: %d", status)
	}
	<-hb.fwd
	sess.expect(t, "unsubscribe")
	_, _, resp := streamOpen(t, b, token, "")
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("GET on another node: %d, want 421", resp.StatusCode)
	}
}

// A POST's operation id is required and bounded (limit-1, limit,
// limit+1).
func TestSSESingleOperationID(t *testing.T) {
	e, _ := startStreamEnv(t, Options{})
	token, sess := reserve(t, e, "ann")
	streamOpen(t, e, token, "")
	sess.expect(t, "init")
	if status, _, code := streamDo(t, e, http.MethodPost, token, "ann", `{"query":"subscription { a }"}`); status != http.StatusBadRequest || code != CodeBadRequest {
		t.Fatalf("no operation id: %d %s", status, code)
	}
	for _, n := range []int{MaxOperationIDBytes - 1, MaxOperationIDBytes, MaxOperationIDBytes + 1} {
		want := http.StatusAccepted
		if n > MaxOperationIDBytes {
			want = http.StatusBadRequest
		}
		if status, _, _ := streamDo(t, e, http.MethodPost, token, "ann", subscribeBody(strings.Repeat("x", n))); status != want {
			t.Fatalf("operation id of %d bytes: %d, want %d", n, status, want)
		}
	}
}

// ws.sse_reservation_timeout: 0 or between its bounds (limit-1, limit,
// limit+1 at each).
func TestSSEReservationTimeoutBounds(t *testing.T) {
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{
		{0, true},
		{MinSSEReservationTimeout - time.Millisecond, false},
		{MinSSEReservationTimeout, true},
		{MinSSEReservationTimeout + time.Millisecond, true},
		{MaxSSEReservationTimeout - time.Millisecond, true},
		{MaxSSEReservationTimeout, true},
		{MaxSSEReservationTimeout + time.Millisecond, false},
	} {
		err := Options{SSEReservationTimeout: tc.d}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("SSEReservationTimeout %v: got %v, want ok=%v", tc.d, err, tc.ok)
		}
	}
	for _, id := range []string{"a.b", "a b", strings.Repeat("x", 33)} {
		if (Options{NodeID: id}).Validate() == nil {
			t.Errorf("NodeID %q accepted", id)
		}
	}
}

// openedStream reserves and opens a stream for "ann" and subscribes
// operation "1" on it.
func openedStream(t testing.TB, e *env) (net.Conn, *bufio.Reader, *fakeSession, *Subscription) {
	t.Helper()
	token, sess := reserve(t, e, "ann")
	c, br, resp := streamOpen(t, e, token, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	sess.expect(t, "init")
	if status, body, _ := streamDo(t, e, http.MethodPost, token, "ann", subscribeBody("1")); status != http.StatusAccepted {
		t.Fatalf("subscribe: %d %s", status, body)
	}
	return c, br, sess, sess.expect(t, "subscribe").sub
}

// A stream whose client does not read is a slow consumer as any
// connection: over its byte budget it closes, counted, with every
// operation on it.
func TestSSESingleSlowConsumer(t *testing.T) {
	const size, frames = 1000, 3
	e, _ := startStreamEnv(t, Options{MaxQueuedBytes: size * frames})
	_, _, sess, sub := openedStream(t, e)
	f := e.srv.NewFanout()
	payload := bytes.Repeat([]byte("1"), size)
	queued := 0
	for range frames + 1 {
		if !sub.Push(f, payload) {
			break
		}
		queued++
	}
	if queued != frames {
		t.Fatalf("%d pushes queued under a budget of %d frames", queued, frames)
	}
	sess.expect(t, "unsubscribe")
	sess.expectClosed(t, SlowConsumer)
	if got := e.srv.SlowConsumerCloses(); got != (SlowCloses{ConnBytes: 1}) {
		t.Fatalf("slow-consumer closes %+v", got)
	}
}

// An idle stream carries keep-alive comments every SSEKeepAlive.
func TestSSESingleKeepAlive(t *testing.T) {
	e, _ := startStreamEnv(t, Options{SSEKeepAlive: 20 * time.Millisecond})
	c, br, _, _ := openedStream(t, e)
	for range 2 {
		c.SetReadDeadline(time.Now().Add(waitFor))
		if l, err := br.ReadString('\n'); err != nil || l != ":\n" {
			t.Fatalf("got %q %v, want a keep-alive comment", l, err)
		}
		br.ReadString('\n')
	}
}

// Requests from a page of another origin: refused unless
// ws.origin_patterns allows it; an allowed page gets the CORS headers,
// and its preflight allows PUT, DELETE and the token header.
func TestSSESingleCrossOrigin(t *testing.T) {
	e, _ := startStreamEnv(t, Options{OriginPatterns: []string{"app.example.com"}})
	put := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodPut, e.hs.URL+"/graphql", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("X-Principal", "ann")
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := put("https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT from another origin: %d", resp.StatusCode)
	}
	if resp := put("https://app.example.com"); resp.StatusCode != http.StatusCreated ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("PUT from an allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodOptions, e.hs.URL+"/graphql", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "DELETE")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "DELETE") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), StreamTokenHeader) {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// BenchmarkPushFlushSSESingle is BenchmarkPushFlushSSE on a single
// connection mode stream: each event also carries its operation id.
func BenchmarkPushFlushSSESingle(b *testing.B) {
	e, _ := startStreamEnv(b, Options{CoalesceDelay: -1}) // as startEnv's
	c, br, _, sub := openedStream(b, e)
	c.SetReadDeadline(time.Time{})
	benchSSE(b, c, br, sub, []byte("\n\n"))
}
