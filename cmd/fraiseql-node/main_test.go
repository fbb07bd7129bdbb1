package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/ws"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConfigFileEnvAndFlagPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "node.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:9000\nnats:\n  max_age: 1h\nlimits:\n  max_query_bytes: 1000\n"), 0o600)
	cfg, err := loadConfig(file, []string{
		"FRAISEQL_NATS_MAX_AGE=2h",
		"FRAISEQL_LIMITS_INIT_TIMEOUT=5s",
		"FRAISEQL_URL=ws://ignored", // the example client's variable: not ours
		"OTHER=x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9000" || cfg.NATS.MaxAge != 2*time.Hour || cfg.Limits.MaxQueryBytes != 1000 ||
		time.Duration(cfg.Limits.InitTimeout) != 5*time.Second {
		t.Fatalf("cfg = listen %s max_age %v max_query_bytes %d init_timeout %v",
			cfg.Listen, cfg.NATS.MaxAge, cfg.Limits.MaxQueryBytes, cfg.Limits.InitTimeout)
	}
}

func TestInvalidConfigNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, yaml string
		env        []string
		wantKey    string
	}{
		{"unknown key", "lisen: x\n", nil, "lisen"},
		{"bad duration", "nats:\n  max_age: soon\n", nil, "max_age"},
		{"bad env value", "", []string{"FRAISEQL_LIMITS_MAX_QUERY_BYTES=lots"}, "limits.max_query_bytes"},
		{"negative limit", "limits:\n  max_query_bytes: -5\n", nil, "limits.max_query_bytes"},
		{"negative filter operands", "", []string{"FRAISEQL_LIMITS_MAX_FILTER_OPERANDS=-1"}, "limits.max_filter_operands"},
		{"bad tenant", "tenant: a.b\n", nil, "tenant"},
		{"bad log format", "log:\n  format: xml\n", nil, "log.format"},
		{"bad prefix", "nats:\n  prefix: \"a.>\"\n", nil, "prefix"},
		{"negative max replays", "", []string{"FRAISEQL_NATS_MAX_REPLAYS=-1"}, "nats.max_replays"},
		{"replay queue below -1", "nats:\n  max_replay_queue: -2\n", nil, "nats.max_replay_queue"},
		{"unknown ingest mode", "", []string{"FRAISEQL_NATS_INGEST=all"}, "nats.ingest"},
		{"write delay over the bound", "ws:\n  write_delay: 1001ms\n", nil, "ws.write_delay"},
		{"negative write delay", "", []string{"FRAISEQL_WS_WRITE_DELAY=-1ms"}, "ws.write_delay"},
		{"coalesce delay over the bound", "ws:\n  coalesce_delay: 100000001ns\n", nil, "ws.coalesce_delay"},
		{"negative coalesce delay", "", []string{"FRAISEQL_WS_COALESCE_DELAY=-1ns"}, "ws.coalesce_delay"},
		{"unknown compression", "ws:\n  compression: gzip\n", nil, "ws.compression"},
		{"negative compression threshold", "", []string{"FRAISEQL_WS_COMPRESSION_THRESHOLD=-1"}, "ws.compression_threshold"},
		{"negative compression context conns", "ws:\n  compression_context_conns: -1\n", nil, "ws.compression_context_conns"},
		{"unknown sse compression", "", []string{"FRAISEQL_WS_SSE_COMPRESSION=br"}, "ws.sse_compression"},
		{"unknown io_uring mode", "", []string{"FRAISEQL_WS_IO_URING=always"}, "ws.io_uring"},
		{"ops listen not an address", "ops_listen: metrics\n", nil, "ops_listen"},
		{"drain longer than the shutdown timeout", "shutdown:\n  drain_delay: 20s\n  drain_window: 10s\n  timeout: 30s\n", nil, "drain_delay"},
		{"negative drain window", "", []string{"FRAISEQL_SHUTDOWN_DRAIN_WINDOW=-1s"}, "drain_window"},
		{"ops listen is the public one", "listen: 127.0.0.1:9000\nops_listen: 127.0.0.1:9000\n", nil, "ops_listen"},
		{"malformed origin pattern", "ws:\n  origin_patterns: [\"app.[a-.com\"]\n", nil, "ws.origin_patterns"},
		{"any origin with cookie auth", "auth:\n  hs256_secret: 0123456789abcdef0123456789abcdef\n  cookie: session\nws:\n  origin_patterns: [\"*\"]\n", nil, "ws.origin_patterns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			os.WriteFile(file, []byte(tc.yaml), 0o600)
			var stdout, stderr bytes.Buffer
			env := append([]string{"FRAISEQL_DATA_DIR=" + dir}, tc.env...)
			code := run(context.Background(), []string{"config", "check", "--config", file}, env, nil, &stdout, &stderr)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantKey) {
				t.Fatalf("error does not name %q: %s", tc.wantKey, stderr.String())
			}
		})
	}
}

// TestCompressionConfig: each compression mode is accepted from the file
// (off unquoted too, a string and not YAML 1.1's false) and reaches the
// transport.
func TestCompressionConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ ws, sse string }{
		{"off", "off"}, {"no_context_takeover", "gzip"}, {"context_takeover", "off"},
	} {
		file := filepath.Join(dir, tc.ws+".yaml")
		os.WriteFile(file, []byte("ws:\n  compression: "+tc.ws+"\n  sse_compression: "+tc.sse+"\n"), 0o600)
		cfg, err := loadConfig(file, []string{"FRAISEQL_DATA_DIR=" + dir})
		if err != nil {
			t.Fatalf("%s: %v", tc.ws, err)
		}
		if err := cfg.validate(); err != nil {
			t.Fatalf("%s: %v", tc.ws, err)
		}
		o := cfg.wsOptions()
		if string(o.Compression) != tc.ws || o.SSECompression != tc.sse {
			t.Fatalf("%s/%s reached the transport as %q/%q", tc.ws, tc.sse, o.Compression, o.SSECompression)
		}
	}
}

// TestWriteDelayBounds: ws.write_delay is accepted from 0 up to its bound
// (1s) and refused past it (see TestInvalidConfigNamesTheKey).
func TestWriteDelayBounds(t *testing.T) {
	for d, out := range checkDurations(t, "FRAISEQL_WS_WRITE_DELAY", "0s", "999ms", "1s") {
		if !strings.Contains(out, "write_delay: "+strings.TrimSuffix(d, "0s")) && d != "0s" {
			t.Fatalf("write_delay %s not in the effective config:\n%s", d, out)
		}
	}
}

// checkDurations runs `config check` with env var set to each value, which
// must be accepted, and returns each run's output by value.
func checkDurations(t *testing.T, env string, values ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	outs := make(map[string]string)
	for _, d := range values {
		var stdout, stderr bytes.Buffer
		env := []string{"FRAISEQL_DATA_DIR=" + dir, env + "=" + d}
		if code := run(context.Background(), []string{"config", "check"}, env, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d: %s", env, code, stderr.String())
		}
		outs[d] = stdout.String()
	}
	return outs
}

// TestCoalesceDelayBounds: ws.coalesce_delay is accepted from 0 (off) up
// to its bound (100ms) and refused past it (see
// TestInvalidConfigNamesTheKey); its default is ws.DefaultCoalesceDelay,
// and 0 turns coalescing off in the transport's options.
func TestCoalesceDelayBounds(t *testing.T) {
	checkDurations(t, "FRAISEQL_WS_COALESCE_DELAY", "0s", "99999999ns", "100ms")
	c := defaultConfig()
	if got := c.wsOptions().CoalesceDelay; got != ws.DefaultCoalesceDelay {
		t.Fatalf("default coalesce delay %v, want %v", got, ws.DefaultCoalesceDelay)
	}
	c.WS.CoalesceDelay = 0
	if got := c.wsOptions().CoalesceDelay; got >= 0 {
		t.Fatalf("coalesce_delay 0 gives the transport %v, want a negative value (off)", got)
	}
}

// TestOpsListenValues: an address, off, and (for tests) port 0 on both.
func TestOpsListenValues(t *testing.T) {
	dir := t.TempDir()
	for _, env := range [][]string{
		{"FRAISEQL_OPS_LISTEN=off"},
		{"FRAISEQL_OPS_LISTEN=0.0.0.0:9100"},
		{"FRAISEQL_LISTEN=127.0.0.1:0", "FRAISEQL_OPS_LISTEN=127.0.0.1:0"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"config", "check"}, append(env, "FRAISEQL_DATA_DIR="+dir), nil, &stdout, &stderr); code != 0 {
			t.Errorf("%v: exit %d: %s", env, code, stderr.String())
		}
	}
}

// TestQueuedBytesBounds: ws.max_queued_bytes must hold one event of
// limits.max_event_bytes (limit-1 is refused, limit and limit+1 accepted);
// neither budget may be negative, and the node-wide one may not be below
// the per-connection one.
func TestQueuedBytesBounds(t *testing.T) {
	dir := t.TempDir()
	const ev = 1 << 20 // limits.max_event_bytes by default
	for _, tc := range []struct {
		env     []string
		wantKey string // "" when valid
	}{
		{[]string{fmt.Sprintf("FRAISEQL_WS_MAX_QUEUED_BYTES=%d", ev-1)}, "ws.max_queued_bytes"},
		{[]string{fmt.Sprintf("FRAISEQL_WS_MAX_QUEUED_BYTES=%d", ev)}, ""},
		{[]string{fmt.Sprintf("FRAISEQL_WS_MAX_QUEUED_BYTES=%d", ev+1)}, ""},
		{[]string{"FRAISEQL_WS_MAX_QUEUED_BYTES=-1"}, "ws.max_queued_bytes"},
		{[]string{"FRAISEQL_WS_NODE_QUEUED_BYTES=-1"}, "ws.node_queued_bytes"},
		{[]string{"FRAISEQL_WS_MAX_QUEUED_BYTES=8388608", "FRAISEQL_WS_NODE_QUEUED_BYTES=8388607"}, "ws.node_queued_bytes"},
		{[]string{"FRAISEQL_WS_MAX_QUEUED_BYTES=8388608", "FRAISEQL_WS_NODE_QUEUED_BYTES=8388608"}, ""},
	} {
		var stdout, stderr bytes.Buffer
		env := append([]string{"FRAISEQL_DATA_DIR=" + dir}, tc.env...)
		code := run(context.Background(), []string{"config", "check"}, env, nil, &stdout, &stderr)
		switch {
		case tc.wantKey == "" && code != exitOK:
			t.Errorf("%v: exit %d: %s", tc.env, code, stderr.String())
		case tc.wantKey != "" && (code != exitUsage || !strings.Contains(stderr.String(), tc.wantKey)):
			t.Errorf("%v: exit %d, want %d naming %s: %s", tc.env, code, exitUsage, tc.wantKey, stderr.String())
		}
	}
}

func TestConfigCheckPrintsEffectiveConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"config", "check"}, []string{"FRAISEQL_NATS_PASSWORD=hunter2",
		"FRAISEQL_BRIDGES_POSTGRES_URL=postgres://app:hunter2@db:5432/x"}, nil, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"listen: 127.0.0.1:8080", "max_query_bytes: 65536", "REDACTED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Error("config check printed a secret")
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, nil, nil, &stdout, &stderr); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
}

// serveForTest runs `fraiseql-node` (serve) in-process with env and
// returns its HTTP address; the node stops at cleanup.
func serveForTest(t *testing.T, env []string) string {
	t.Helper()
	addr, _, _ := startServe(t, env)
	return addr
}

// startServe is serveForTest that also returns stop, which cancels serve's
// context with a cause (a stopSignal, as a signal would), and done, closed
// when serve has returned.
func startServe(t *testing.T, env []string) (addr string, stop context.CancelCauseFunc, done <-chan struct{}) {
	t.Helper()
	addr, _, stop, done = startServeArgs(t, nil, env)
	return addr, stop, done
}

// startServeArgs runs serve with extra args and returns its address and
// its start-up banner as well.
func startServeArgs(t *testing.T, args, env []string) (addr, banner string, stop context.CancelCauseFunc, done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	outR, outW := io.Pipe()
	exited := make(chan struct{})
	go func() { // ends when ctx is cancelled
		defer close(exited)
		var stderr bytes.Buffer
		code := run(ctx, append([]string{"--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0", "--log-level", "warn"}, args...), env, nil, outW, &stderr)
		if code != exitOK {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
		outW.Close()
	}()
	t.Cleanup(func() { cancel(nil); <-exited })
	addrRE := regexp.MustCompile(`ws://(127\.0\.0\.1:\d+)/graphql`)
	sc := bufio.NewScanner(outR)
	var b strings.Builder
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil && addr == "" {
			addr = m[1]
		}
		if strings.HasPrefix(sc.Text(), "Publish:") && sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			break
		}
	}
	if addr == "" {
		t.Fatalf("serve printed no ws:// address:\n%s", b.String())
	}
	go io.Copy(io.Discard, outR) // ends when serve closes outW
	return addr, b.String(), cancel, exited
}

// wsSubscriber subscribes over graphql-transport-ws; next returns the
// next result's data, or fails the test after 20 s.
type wsSubscriber struct {
	t    *testing.T
	c    *websocket.Conn
	msgs chan map[string]json.RawMessage
}

func subscribeForTest(t *testing.T, addr, query string) *wsSubscriber {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &wsSubscriber{t: t, c: c, msgs: make(chan map[string]json.RawMessage, 64)}
	done := make(chan struct{})
	go func() { // owned by s: ends when the connection closes at cleanup
		defer close(done)
		defer close(s.msgs)
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			var m map[string]json.RawMessage
			json.Unmarshal(data, &m)
			if string(m["type"]) == `"ping"` {
				continue
			}
			s.msgs <- m
		}
	}()
	t.Cleanup(func() { c.CloseNow(); cancel(); <-done })
	write := func(msg string) {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"type":"connection_init"}`)
	if m := s.next(); string(m["type"]) != `"connection_ack"` {
		t.Fatalf("want connection_ack, got %v", m)
	}
	q, _ := json.Marshal(query)
	write(`{"id":"1","type":"subscribe","payload":{"query":` + string(q) + `}}`)
	return s
}

func (s *wsSubscriber) next() map[string]json.RawMessage {
	s.t.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			s.t.Fatal("connection closed")
		}
		return m
	case <-time.After(20 * time.Second):
		s.t.Fatal("no message in 20 s")
	}
	return nil
}

// TestTour runs the README tour in-process: serve with the embedded NATS
// server, subscribe over WebSocket, `publish` (which finds the server
// through nats.url), and receive the projected event.
func TestTour(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"FRAISEQL_DATA_DIR=" + dataDir}
	addr := serveForTest(t, env)
	sub := subscribeForTest(t, addr, `subscription { messageAdded(room: "r1") { id text author { name } } }`)

	// The subscription registers asynchronously to this client: publish
	// until the first event arrives (bounded), then check it.
	var data string
	for i := 0; data == "" && i < 50; i++ {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"publish", "chat.r1", `{"id":"1","room":"r1","text":"hello","author":{"name":"ann"},"secret":"x"}`}, env, nil, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("publish exited %d: %s", code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "published to fraiseql.public.chat.r1") {
			t.Fatalf("publish printed %q", stdout.String())
		}
		select {
		case m := <-sub.msgs:
			var p struct {
				Data json.RawMessage `json:"data"`
			}
			json.Unmarshal(m["payload"], &p)
			data = string(p.Data)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if data != `{"messageAdded":{"id":"1","text":"hello","author":{"name":"ann"}}}` {
		t.Fatalf("got %q", data)
	}
}

func TestNATSURLFileRemovedAtShutdown(t *testing.T) {
	dataDir := t.TempDir()
	// A stale nats.url that others could read (an older node's, or made
	// by hand) must not keep its mode once it holds a password.
	if err := os.WriteFile(filepath.Join(dataDir, natsURLFile), []byte("nats://127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("serve", func(t *testing.T) {
		serveForTest(t, []string{"FRAISEQL_DATA_DIR=" + dataDir})
		fi, err := os.Stat(filepath.Join(dataDir, natsURLFile))
		if err != nil {
			t.Fatalf("no nats.url while serving: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("nats.url has mode %v, want 0600", fi.Mode().Perm())
		}
		b, err := os.ReadFile(filepath.Join(dataDir, natsURLFile))
		if err != nil {
			t.Fatal(err)
		}
		withCreds, err := url.Parse(strings.TrimSpace(string(b)))
		if err != nil || withCreds.User == nil {
			t.Fatalf("nats.url = %q, want a URL with credentials", b)
		}
		// The server refuses whoever does not present them.
		anon := *withCreds
		anon.User = nil
		if nc, err := nats.Connect(anon.String(), nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
			if nc != nil {
				nc.Close()
			}
			t.Fatalf("anonymous connect to the embedded server = %v, want an authorization error", err)
		}
		nc, err := nats.Connect(withCreds.String(), nats.MaxReconnects(0))
		if err != nil {
			t.Fatalf("connect with nats.url: %v", err)
		}
		nc.Close()
	})
	if _, err := os.Stat(filepath.Join(dataDir, natsURLFile)); !os.IsNotExist(err) {
		t.Errorf("nats.url left behind after shutdown: %v", err)
	}
}

// SIGTERM drains: /readyz answers 503 at once while the node still serves
// for shutdown.drain_delay. SIGINT stops at once; a second signal cuts a
// drain short.
func TestSignalsDrainOrStop(t *testing.T) {
	env := []string{"FRAISEQL_DATA_DIR=" + t.TempDir(), "FRAISEQL_SHUTDOWN_DRAIN_DELAY=30s", "FRAISEQL_SHUTDOWN_DRAIN_WINDOW=1s", "FRAISEQL_SHUTDOWN_TIMEOUT=60s"}
	readyz := func(addr string) int {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("SIGTERM drains, a second signal stops", func(t *testing.T) {
		addr, stop, done := startServe(t, env)
		force := make(chan struct{})
		stop(stopSignal{sig: syscall.SIGTERM, force: force})
		deadline := time.Now().Add(5 * time.Second)
		for readyz(addr) != http.StatusServiceUnavailable {
			if time.Now().After(deadline) {
				t.Fatal("/readyz still ready after SIGTERM")
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case <-done:
			t.Fatal("exited within the 30 s drain delay")
		case <-time.After(300 * time.Millisecond):
		}
		close(force)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a second signal did not stop the drain")
		}
	})
	t.Run("SIGINT stops at once", func(t *testing.T) {
		_, stop, done := startServe(t, env)
		stop(stopSignal{sig: os.Interrupt, force: make(chan struct{})})
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("SIGINT waited for the drain delay")
		}
	})
}
