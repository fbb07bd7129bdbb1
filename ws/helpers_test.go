package ws

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/internal/uring/uringtest"
)

// waitFor bounds every wait in these tests.
const waitFor = 5 * time.Second

// event is one recorded Session call.
type event struct {
	kind    string // init, subscribe, unsubscribe, pong, close
	conn    *Conn
	sub     *Subscription
	req     Request
	payload string
	reason  CloseReason
}

// fakeSession records every call into events. Its behaviour is set by the
// optional init and subscribe funcs.
type fakeSession struct {
	events    chan event
	init      func(ctx context.Context, c *Conn, payload json.RawMessage) (json.RawMessage, error)
	subscribe func(ctx context.Context, sub *Subscription, req Request) error

	mu      sync.Mutex
	unsubs  map[*Subscription]int // Unsubscribe calls per subscription
	closed  int
	inCall  bool // detects overlapping Session calls
	overlap bool
}

var _ Session = (*fakeSession)(nil)

func newFakeSession() *fakeSession {
	return &fakeSession{events: make(chan event, 4096), unsubs: make(map[*Subscription]int)}
}

func (s *fakeSession) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inCall {
		s.overlap = true
	}
	s.inCall = true
}

func (s *fakeSession) exit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inCall = false
}

func (s *fakeSession) Init(ctx context.Context, c *Conn, payload json.RawMessage) (json.RawMessage, error) {
	s.enter()
	defer s.exit()
	s.events <- event{kind: "init", conn: c, payload: string(payload)}
	if s.init != nil {
		return s.init(ctx, c, payload)
	}
	return nil, nil
}

func (s *fakeSession) Subscribe(ctx context.Context, sub *Subscription, req Request) error {
	s.enter()
	defer s.exit()
	var err error
	if s.subscribe != nil {
		err = s.subscribe(ctx, sub, req)
	}
	if err == nil {
		s.events <- event{kind: "subscribe", sub: sub, req: req}
	} else {
		s.events <- event{kind: "refused", sub: sub, req: req}
	}
	return err
}

func (s *fakeSession) Unsubscribe(sub *Subscription) {
	s.enter()
	defer s.exit()
	s.mu.Lock()
	s.unsubs[sub]++
	s.mu.Unlock()
	s.events <- event{kind: "unsubscribe", sub: sub}
}

func (s *fakeSession) Pong(payload json.RawMessage) {
	s.enter()
	defer s.exit()
	s.events <- event{kind: "pong", payload: string(payload)}
}

func (s *fakeSession) Close(reason CloseReason) {
	s.enter()
	defer s.exit()
	s.mu.Lock()
	s.closed++
	s.mu.Unlock()
	s.events <- event{kind: "close", reason: reason}
}

// next returns the next recorded call, failing after waitFor.
func (s *fakeSession) next(t testing.TB) event {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-time.After(waitFor):
		t.Fatalf("no session event within %v", waitFor)
		return event{}
	}
}

// expect returns the next recorded call, which must be of kind.
func (s *fakeSession) expect(t testing.TB, kind string) event {
	t.Helper()
	ev := s.next(t)
	if ev.kind != kind {
		t.Fatalf("session event = %s (%+v), want %s", ev.kind, ev, kind)
	}
	return ev
}

// expectClosed skips events until Close and checks its reason and the
// exactly-once contracts.
func (s *fakeSession) expectClosed(t testing.TB, want CloseReason) {
	t.Helper()
	for {
		ev := s.next(t)
		if ev.kind != "close" {
			continue
		}
		if ev.reason != want {
			t.Fatalf("Session.Close(%v), want %v", ev.reason, want)
		}
		break
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != 1 {
		t.Fatalf("Session.Close called %d times", s.closed)
	}
	for sub, n := range s.unsubs {
		if n != 1 {
			t.Fatalf("Unsubscribe(%q) called %d times", sub.ID(), n)
		}
	}
	if s.overlap {
		t.Fatal("Session calls overlapped")
	}
}

// env is a Server behind a real loopback HTTP server.
type env struct {
	srv      *Server
	hs       *httptest.Server
	url      string
	client   *http.Client
	sessions chan *fakeSession
	opened   chan struct{}
}

// startEnv starts a Server whose Handler opens fake sessions configured by
// setup (may be nil). Cleanup shuts everything down.
func startEnv(t testing.TB, opts Options, setup func(*fakeSession)) *env {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.CoalesceDelay == 0 {
		opts.CoalesceDelay = -1 // tests of coalescing ask for it
	}
	e := &env{sessions: make(chan *fakeSession, 64), opened: make(chan struct{}, 64)}
	e.serve(t, handlerFunc(func(r *http.Request) (Session, error) {
		e.opened <- struct{}{}
		s := newFakeSession()
		if setup != nil {
			setup(s)
		}
		e.sessions <- s
		return s, nil
	}), opts)
	return e
}

// serve starts e's Server with h behind a loopback HTTP server, until the
// test's cleanup shuts both down.
func (e *env) serve(t testing.TB, h Handler, opts Options) {
	t.Helper()
	e.srv = NewServer(h, opts)
	e.hs = httptest.NewServer(e.srv)
	e.url = "ws" + strings.TrimPrefix(e.hs.URL, "http") + "/graphql"
	e.client = &http.Client{Transport: &http.Transport{}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		e.hs.Close()
		e.client.CloseIdleConnections()
	})
}

// session returns the session the Handler opened most recently.
func (e *env) session(t testing.TB) *fakeSession {
	t.Helper()
	select {
	case s := <-e.sessions:
		return s
	case <-time.After(waitFor):
		t.Fatal("no session opened")
		return nil
	}
}

type handlerFunc func(r *http.Request) (Session, error)

func (f handlerFunc) Open(r *http.Request) (Session, error) { return f(r) }

// client is a test WebSocket client speaking raw frames.
type client struct {
	t testing.TB
	c *websocket.Conn
}

// dial connects offering subprotocols.
func (e *env) dial(t testing.TB, subprotocols ...string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
		Subprotocols: subprotocols,
		HTTPClient:   e.client,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &client{t: t, c: c}
}

func (cl *client) send(msg string) {
	cl.t.Helper()
	cl.sendType(websocket.MessageText, msg)
}

func (cl *client) sendType(typ websocket.MessageType, msg string) {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := cl.c.Write(ctx, typ, []byte(msg)); err != nil {
		cl.t.Fatalf("send %s: %v", msg, err)
	}
}

// read returns the next message, or the read error.
func (cl *client) read() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, b, err := cl.c.Read(ctx)
	return string(b), err
}

// expect reads one message, which must be exactly want.
func (cl *client) expect(want string) {
	cl.t.Helper()
	got, err := cl.read()
	if err != nil {
		cl.t.Fatalf("expecting %s: %v", want, err)
	}
	if got != want {
		cl.t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// expectClose reads until the connection closes: no further message may
// arrive, and the close status must be code (and reason, if not empty).
func (cl *client) expectClose(code CloseCode, reason string) {
	cl.t.Helper()
	msg, err := cl.read()
	if err == nil {
		cl.t.Fatalf("got message %s, want close %d", msg, code)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		cl.t.Fatalf("read error %v, want close %d", err, code)
	}
	if CloseCode(ce.Code) != code {
		cl.t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Reason, code)
	}
	if reason != "" && ce.Reason != reason {
		cl.t.Fatalf("close reason %q, want %q", ce.Reason, reason)
	}
}

// initTransport runs connection_init/ack on a graphql-transport-ws client.
func (cl *client) initTransport() {
	cl.t.Helper()
	cl.send(`{"type":"connection_init"}`)
	cl.expect(`{"type":"connection_ack"}`)
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }

// pushFlush pushes p to sub through f and lets f write, as a deliverer
// that routed one event and has nothing more does.
func pushFlush(f *Fanout, sub *Subscription, p []byte) bool {
	ok := sub.Push(f, p)
	f.Idle()
	return ok
}

// writeEngines runs fn for each way a write round writes: through
// io_uring (Options.IOUring on; Linux only) and with write(2) (off).
func writeEngines(t *testing.T, fn func(t *testing.T, engine IOUringMode)) {
	t.Helper()
	t.Run("io_uring", func(t *testing.T) {
		requireURing(t)
		fn(t, IOUringOn)
	})
	t.Run("write", func(t *testing.T) { fn(t, IOUringOff) })
}

func requireURing(t *testing.T) {
	t.Helper()
	uringtest.Require(t, IOUringStatus())
}

// checkEngine checks that e's write rounds wrote through the engine the
// test asked for: at least min connection writes sent by io_uring when
// on, none when off.
func checkEngine(t *testing.T, e *env, engine IOUringMode, min uint64) {
	t.Helper()
	submits, sends := e.srv.IOUringStats()
	switch {
	case engine == IOUringOff && (submits != 0 || sends != 0):
		t.Fatalf("io_uring off, yet %d submits carried %d sends", submits, sends)
	case engine != IOUringOff && (sends < min || submits == 0 || submits > sends):
		t.Fatalf("io_uring: %d submits carried %d sends; want at least %d sends", submits, sends, min)
	}
}
