//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/query"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleakOptions()...)
}

// repoRoot is the repository root, found from this file's path.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func demoSchema(t testing.TB) *query.Schema {
	t.Helper()
	sdl, err := os.ReadFile(filepath.Join(repoRoot(t), "cmd", "fraiseql-node", "demo.graphql"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := query.LoadSchema("demo.graphql", string(sdl))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLogger discards below warn unless -v.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is one test's NATS server, cluster connection and node.
type env struct {
	t    testing.TB
	url  string // NATS
	cl   *cluster.Cluster
	node *node.Node
	ws   string // ws://…/graphql
}

// startNATS runs an in-process JetStream server for the test.
func startNATS(t testing.TB) string {
	t.Helper()
	return clustertest.RunServer(t)
}

// startNode starts a node against the NATS server at url.
func startNode(t testing.TB, url string, mutate func(*node.Config, *cluster.Config)) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startNodeListening(t, url, ln, mutate)
}

// startNodeListening is startNode serving on ln.
func startNodeListening(t testing.TB, url string, ln net.Listener, mutate func(*node.Config, *cluster.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// FRAISEQL_TEST_INGEST=interest runs the suite with nats.ingest: interest.
	ccfg := cluster.Config{URL: url, Ingest: os.Getenv("FRAISEQL_TEST_INGEST")}
	ncfg := node.Config{Schema: demoSchema(t), Logger: testLogger(t), OpsListen: "127.0.0.1:0"}
	if mutate != nil {
		mutate(&ncfg, &ccfg)
	}
	cl, err := cluster.Open(ctx, ccfg, testLogger(t))
	if err != nil {
		t.Fatalf("cluster.Open: %v", err)
	}
	n, err := node.New(ncfg, cl)
	if err != nil {
		cl.Close()
		t.Fatalf("node.New: %v", err)
	}
	if err := n.Start(ctx, ln); err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	e := &env{t: t, url: url, cl: cl, node: n, ws: "ws://" + n.Addr() + "/graphql"}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(sctx); err != nil {
			t.Errorf("node.Shutdown: %v", err)
		}
		cl.Close()
	})
	return e
}

// newEnv starts NATS and one node.
func newEnv(t testing.TB) *env {
	t.Helper()
	return startNode(t, startNATS(t), nil)
}

// publish publishes one event for tenant public and returns its stream sequence.
func (e *env) publish(topic string, body any) uint64 {
	e.t.Helper()
	data, ok := body.([]byte)
	if !ok {
		var err error
		if s, isStr := body.(string); isStr {
			data = []byte(s)
		} else if data, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.cl.Publish(ctx, "public", topic, data, "")
	if err != nil {
		e.t.Fatalf("publish %s: %v", topic, err)
	}
	return res.Seq
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// client is a raw WebSocket client speaking one of the two protocols. One
// goroutine reads the connection into msgs (coder/websocket closes a
// connection whose Read is cancelled, so reads never time out directly);
// it answers pings and skips keep-alives.
type client struct {
	t    testing.TB
	c    *websocket.Conn
	ctx  context.Context
	stop context.CancelFunc
	msgs chan message
	err  error // why msgs was closed; read after msgs is drained
}

func dial(t testing.TB, url string, subprotocols ...string) *client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	c, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{Subprotocols: subprotocols})
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(4 << 20)
	cl := &client{t: t, c: c, ctx: ctx, stop: cancel, msgs: make(chan message, 1024)}
	done := make(chan struct{})
	go func() { // owned by cl: ends when the connection closes (Cleanup closes it)
		defer close(done)
		defer close(cl.msgs)
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				cl.err = err
				return
			}
			var m message
			if err := json.Unmarshal(data, &m); err != nil {
				cl.err = fmt.Errorf("bad message %q: %w", data, err)
				return
			}
			m.raw = data
			switch m.Type {
			case "ping":
				wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
				c.Write(wctx, websocket.MessageText, []byte(`{"type":"pong"}`))
				wcancel()
				continue
			case "ka", "pong":
				continue
			}
			cl.msgs <- m
		}
	}()
	t.Cleanup(func() { c.CloseNow(); cancel(); <-done })
	return cl
}

// dialTransport dials graphql-transport-ws and completes connection_init/ack.
func dialTransport(t testing.TB, url string) *client {
	t.Helper()
	c := dial(t, url, "graphql-transport-ws")
	c.send(`{"type":"connection_init"}`)
	c.expectType("connection_ack")
	return c
}

func (c *client) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// message is a protocol message as received.
type message struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
	raw     []byte
}

// errNoMessage means nothing arrived in time; the connection is still open.
var errNoMessage = errors.New("no message in time")

// readErr returns the next message, errNoMessage after d, or the error that
// ended the connection.
func (c *client) readErr(d time.Duration) (message, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return message{}, c.err
		}
		return m, nil
	case <-t.C:
		return message{}, errNoMessage
	}
}

func (c *client) read() message {
	c.t.Helper()
	m, err := c.readErr(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *client) expectType(typ string) message {
	c.t.Helper()
	m := c.read()
	if m.Type != typ {
		c.t.Fatalf("got %s message %s, want type %s", m.Type, m.raw, typ)
	}
	return m
}

// expectNothing asserts that no message arrives within d and the
// connection stays open.
func (c *client) expectNothing(d time.Duration) {
	c.t.Helper()
	m, err := c.readErr(d)
	switch {
	case err == nil:
		c.t.Fatalf("got unexpected message %s", m.raw)
	case err != errNoMessage:
		c.t.Fatalf("connection ended: %v", err)
	}
}

// expectClose reads until the connection closes and checks the close code.
func (c *client) expectClose(code websocket.StatusCode) {
	c.t.Helper()
	for {
		m, err := c.readErr(10 * time.Second)
		if err == nil {
			c.t.Logf("message before close: %s", m.raw)
			continue
		}
		if err == errNoMessage {
			c.t.Fatalf("connection still open, want close %d", code)
		}
		if got := websocket.CloseStatus(err); got != code {
			c.t.Fatalf("closed with %v (%v), want %d", got, err, code)
		}
		return
	}
}

func (c *client) subscribe(id, query string, vars map[string]any, cursor string) {
	c.t.Helper()
	p := map[string]any{"query": query}
	if vars != nil {
		p["variables"] = vars
	}
	if cursor != "" {
		p["extensions"] = map[string]any{"cursor": cursor}
	}
	b, _ := json.Marshal(map[string]any{"id": id, "type": "subscribe", "payload": p})
	c.send(string(b))
}

// result is a decoded `next` payload.
type result struct {
	Data       map[string]json.RawMessage `json:"data"`
	Errors     []gqlError                 `json:"errors"`
	Extensions struct {
		Cursor  string `json:"cursor"`
		Dropped int    `json:"dropped"`
	} `json:"extensions"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func (c *client) next(id string) result {
	c.t.Helper()
	m := c.expectType("next")
	if m.ID != id {
		c.t.Fatalf("next for id %q, want %q: %s", m.ID, id, m.raw)
	}
	var r result
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		c.t.Fatalf("bad next payload %s: %v", m.Payload, err)
	}
	return r
}

// errorCode expects an `error` message for id and returns its first code.
func (c *client) errorCode(id string) string {
	c.t.Helper()
	m := c.expectType("error")
	if m.ID != id {
		c.t.Fatalf("error for id %q, want %q: %s", m.ID, id, m.raw)
	}
	var errs []gqlError
	if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) == 0 {
		c.t.Fatalf("bad error payload %s: %v", m.Payload, err)
	}
	code, _ := errs[0].Extensions["code"].(string)
	return code
}
