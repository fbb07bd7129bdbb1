package ws

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestNegotiation(t *testing.T) {
	cases := []struct {
		name    string
		offered []string
		want    string // server-side Conn.Protocol
		answer  string // Sec-WebSocket-Protocol the client sees
	}{
		{"transport", []string{SubprotocolTransportWS}, SubprotocolTransportWS, SubprotocolTransportWS},
		{"legacy", []string{SubprotocolLegacyWS}, SubprotocolLegacyWS, SubprotocolLegacyWS},
		{"both, legacy first", []string{SubprotocolLegacyWS, SubprotocolTransportWS}, SubprotocolTransportWS, SubprotocolTransportWS},
		{"unknown and legacy", []string{"mqtt", SubprotocolLegacyWS}, SubprotocolLegacyWS, SubprotocolLegacyWS},
		{"none", nil, SubprotocolTransportWS, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, Options{}, nil)
			cl := e.dial(t, tc.offered...)
			if got := cl.c.Subprotocol(); got != tc.answer {
				t.Fatalf("answered %q, want %q", got, tc.answer)
			}
			sess := e.session(t)
			cl.send(`{"type":"connection_init"}`)
			cl.expect(`{"type":"connection_ack"}`)
			if got := sess.expect(t, "init").conn.Protocol(); got != tc.want {
				t.Fatalf("Protocol() = %q, want %q", got, tc.want)
			}
		})
	}
}

// upgradeRequest builds a WebSocket upgrade request by hand, to see the
// HTTP answers of refused upgrades.
func upgradeRequest(t *testing.T, url string, subprotocols ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for _, p := range subprotocols {
		req.Header.Add("Sec-WebSocket-Protocol", p)
	}
	return req
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestRefusedUpgrades(t *testing.T) {
	var opened atomic.Int32
	var openErr atomic.Pointer[error]
	srv := NewServer(handlerFunc(func(r *http.Request) (Session, error) {
		opened.Add(1)
		if err := openErr.Load(); err != nil {
			return nil, *err
		}
		return newFakeSession(), nil
	}), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
		client.CloseIdleConnections()
	})

	// Only unknown subprotocols: 400 naming ours, Open never called.
	resp, body := do(t, client, upgradeRequest(t, hs.URL, "mqtt", "v12.stomp"))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, SubprotocolTransportWS) || !strings.Contains(body, SubprotocolLegacyWS) {
		t.Fatalf("unknown subprotocols: %d %q", resp.StatusCode, body)
	}
	if opened.Load() != 0 {
		t.Fatal("Open called for a refused subprotocol")
	}

	// Not an upgrade: 426.
	resp, _ = do(t, client, mustGet(t, hs.URL))
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d", resp.StatusCode)
	}

	// HTTPError from Open: its status, Retry-After rounded up, its message.
	setErr(&openErr, &HTTPError{Status: http.StatusTooManyRequests, Message: "too many connections", RetryAfter: 1500 * time.Millisecond})
	resp, body = do(t, client, upgradeRequest(t, hs.URL, SubprotocolTransportWS))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || strings.TrimSpace(body) != "too many connections" {
		t.Fatalf("HTTPError: %d Retry-After=%q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Wrapped HTTPError without Retry-After.
	setErr(&openErr, errors.Join(errors.New("cap"), &HTTPError{Status: http.StatusServiceUnavailable, Message: "full"}))
	resp, _ = do(t, client, upgradeRequest(t, hs.URL))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("wrapped HTTPError: %d", resp.StatusCode)
	}
	// Any other error: 500 with generic text.
	setErr(&openErr, errors.New("redis: connection refused"))
	resp, body = do(t, client, upgradeRequest(t, hs.URL))
	if resp.StatusCode != http.StatusInternalServerError || strings.Contains(body, "redis") {
		t.Fatalf("other error: %d %q", resp.StatusCode, body)
	}
	if srv.Conns() != 0 {
		t.Fatalf("Conns() = %d", srv.Conns())
	}
}

func setErr(p *atomic.Pointer[error], err error) { p.Store(&err) }

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestUpgradeFailsAfterOpen(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	// Looks like an upgrade to ServeHTTP but has no Sec-WebSocket-Key:
	// coder/websocket's Accept refuses it after Open ran.
	req := upgradeRequest(t, e.hs.URL)
	req.Header.Del("Sec-WebSocket-Key")
	resp, _ := do(t, e.client, req)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d", resp.StatusCode)
	}
	e.session(t).expectClosed(t, HandshakeFailed)
}

func TestShutdown(t *testing.T) {
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var sessions = make(chan *fakeSession, 4)
	srv := NewServer(handlerFunc(func(*http.Request) (Session, error) {
		s := newFakeSession()
		sessions <- s
		return s, nil
	}), opts)
	hs := httptest.NewServer(srv)
	httpClient := &http.Client{Transport: &http.Transport{}}
	e := &env{srv: srv, hs: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http"), client: httpClient, sessions: sessions}

	a := e.dial(t, SubprotocolTransportWS)
	sa := e.session(t)
	a.initTransport()
	a.send(`{"id":"1","type":"subscribe","payload":{"query":"q"}}`)
	sa.expect(t, "init")
	sub := sa.expect(t, "subscribe").sub

	b := e.dial(t, SubprotocolLegacyWS)
	sb := e.session(t)
	waitConns(t, srv, 2)

	// Clients read, as real ones do: they answer the close handshake.
	closed := make(chan error, 2)
	for _, cl := range []*client{a, b} {
		go func() {
			_, err := cl.read()
			closed <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Shutdown returned: every session is closed already.
	for _, s := range []*fakeSession{sa, sb} {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed != 1 {
			t.Fatalf("session closed %d times when Shutdown returned", closed)
		}
	}
	sa.expect(t, "unsubscribe")
	sa.expectClosed(t, ServerShutdown)
	sb.expectClosed(t, ServerShutdown)
	for range 2 {
		err := <-closed
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "server shutting down" {
			t.Fatalf("client read: %v, want close 1001", err)
		}
	}
	if sub.Next([]byte(`{}`)) {
		t.Fatal("Next accepted after shutdown")
	}
	if srv.Conns() != 0 {
		t.Fatalf("Conns() = %d after Shutdown", srv.Conns())
	}

	// New upgrades get 503; Shutdown is idempotent.
	resp, _ := do(t, httpClient, upgradeRequest(t, hs.URL))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Shutdown: %d", resp.StatusCode)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}

	_ = a.c.CloseNow()
	_ = b.c.CloseNow()
	hs.Close()
	httpClient.CloseIdleConnections()
	goleak.VerifyNone(t)
}

func TestShutdownContextExpires(t *testing.T) {
	e := startEnv(t, Options{}, nil)
	cl := e.dial(t)
	sess := e.session(t)
	waitConns(t, e.srv, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The client never answers the close frame (it is not reading), so
	// only the expired context ends the wait: sockets are dropped.
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	sess.expectClosed(t, ServerShutdown)
	if _, err := cl.read(); err == nil {
		t.Fatal("connection still open")
	}
}

func TestCloseReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := CloseReason(0); r < numCloseReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Fatalf("CloseReason(%d).String() = %q", r, s)
		}
		seen[s] = true
	}
	if CloseReason(-1).String() != "unknown" || numCloseReasons.String() != "unknown" {
		t.Fatal("out-of-range reasons must be unknown")
	}
}

func TestTruncateReason(t *testing.T) {
	for _, s := range []string{"", "short", strings.Repeat("a", 200), strings.Repeat("é", 100), "bad\xffutf8"} {
		got := truncateReason(s)
		if len(got) > maxCloseReason || !strings.HasPrefix(s, got) && s != "bad\xffutf8" {
			t.Fatalf("truncateReason(%q) = %q", s, got)
		}
		if !utf8Valid(got) {
			t.Fatalf("truncateReason(%q) = %q: invalid UTF-8", s, got)
		}
	}
}

func TestOptions(t *testing.T) {
	o := Options{}.withDefaults()
	if o.InitTimeout != 3*time.Second || o.ReadLimit != 256<<10 || o.WriteQueue != 1024 ||
		o.WriteTimeout != 10*time.Second || o.KeepAlive != 15*time.Second || o.Logger == nil {
		t.Fatalf("defaults: %+v", o)
	}
	if err := (Options{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Options{WriteQueue: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "write_queue") {
		t.Fatalf("Validate: %v", err)
	}
	if o := (Options{KeepAlive: -1}).withDefaults(); o.KeepAlive != -1 {
		t.Fatal("negative KeepAlive must stay disabled")
	}
}

// waitConns waits (bounded) until srv tracks n connections: the client's
// handshake completes slightly before the server registers the connection.
func waitConns(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for srv.Conns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Conns() = %d, want %d", srv.Conns(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
