package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
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
		{"bad tenant", "tenant: a.b\n", nil, "tenant"},
		{"bad log format", "log:\n  format: xml\n", nil, "log.format"},
		{"bad prefix", "nats:\n  prefix: \"a.>\"\n", nil, "prefix"},
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

func TestConfigCheckPrintsEffectiveConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"config", "check"}, []string{"FRAISEQL_NATS_PASSWORD=hunter2"}, nil, &stdout, &stderr)
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

// TestTour runs the README tour in-process: serve with the embedded NATS
// server, subscribe over WebSocket, `publish` (which finds the server
// through nats.url), and receive the projected event.
func TestTour(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"FRAISEQL_DATA_DIR=" + dataDir}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() { // ends when ctx is cancelled
		var stderr bytes.Buffer
		code := run(ctx, []string{"--listen", "127.0.0.1:0", "--log-level", "warn"}, env, nil, outW, &stderr)
		if code != exitOK {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
		outW.Close()
		done <- code
	}()
	addrRE := regexp.MustCompile(`ws://(127\.0\.0\.1:\d+)/graphql`)
	sc := bufio.NewScanner(outR)
	var addr string
	for addr == "" && sc.Scan() {
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("serve printed no ws:// address")
	}
	go io.Copy(io.Discard, outR) // ends when serve closes outW

	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
	defer dcancel()
	c, _, err := websocket.Dial(dctx, "ws://"+addr+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	write := func(s string) {
		if err := c.Write(dctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() map[string]json.RawMessage {
		for {
			_, data, err := c.Read(dctx)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			json.Unmarshal(data, &m)
			if string(m["type"]) == `"ping"` {
				continue
			}
			return m
		}
	}
	write(`{"type":"connection_init"}`)
	if m := read(); string(m["type"]) != `"connection_ack"` {
		t.Fatalf("want connection_ack, got %v", m)
	}
	write(`{"id":"1","type":"subscribe","payload":{"query":"subscription { messageAdded(room: \"r1\") { id text author { name } } }"}}`)

	// The subscription is registered asynchronously to this client; publish
	// until the first event arrives (bounded), then check it.
	got := make(chan map[string]json.RawMessage, 1)
	go func() { got <- read() }()
	var m map[string]json.RawMessage
	for i := 0; m == nil && i < 50; i++ {
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"publish", "chat.r1", `{"id":"1","room":"r1","text":"hello","author":{"name":"ann"},"secret":"x"}`}, env, nil, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("publish exited %d: %s", code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "published to fraiseql.public.chat.r1") {
			t.Fatalf("publish printed %q", stdout.String())
		}
		select {
		case m = <-got:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if m == nil {
		t.Fatal("no event received")
	}
	var payload struct {
		Data json.RawMessage `json:"data"`
	}
	json.Unmarshal(m["payload"], &payload)
	if string(m["type"]) != `"next"` || string(payload.Data) != `{"messageAdded":{"id":"1","text":"hello","author":{"name":"ann"}}}` {
		t.Fatalf("got %s %s", m["type"], m["payload"])
	}
	c.Close(websocket.StatusNormalClosure, "")
	cancel()
	<-done
	if _, err := os.Stat(filepath.Join(dataDir, natsURLFile)); !os.IsNotExist(err) {
		t.Errorf("nats.url left behind after shutdown: %v", err)
	}
}
