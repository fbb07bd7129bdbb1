//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// TestJSClientResumesAcrossRestart runs the npm client of clients/js three
// ways — directly, under Apollo Client's GraphQLWsLink and under urql's
// subscriptionExchange — with a token in Apollo's connectionParams
// {authToken}, a variable and a fragment. The node is stopped (1001),
// events are published while it is down, and a new node starts on the same
// address: each client must retry through the refused connections, resume
// from its last cursor, and see every event once, in order.
func TestJSClientResumesAcrossRestart(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "clients", "js")
	nodeBin := needNPMPackages(t, dir, "graphql-ws", "@apollo/client", "@urql/core", "ws")
	natsURL := startNATS(t)
	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stopFirst := startNodeOn(t, natsURL, ln, v)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub, err := cluster.Open(ctx, cluster.Config{URL: natsURL}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	next := 0
	publish := func() {
		t.Helper()
		next++
		body := fmt.Sprintf(`{"id":"%d","room":"js","text":"m%d","author":{"name":"ann"}}`, next, next)
		pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer pcancel()
		if _, err := pub.Publish(pctx, "acme", "chat.js", []byte(body), ""); err != nil {
			t.Fatalf("publish %d: %v", next, err)
		}
	}

	js := startJSClients(t, nodeBin, dir, "ws://"+addr+"/graphql", token(t, testSecret, "acme", "ann", nil))
	clients := []string{"direct", "apollo", "urql"}

	// The subscriptions register after connection_ack: publish until each
	// client has received its first event.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatalf("not every client received an event after 100 publishes: %v", js.summary())
		}
		publish()
		time.Sleep(100 * time.Millisecond)
		if js.allHave(clients, 1) {
			break
		}
	}
	for range 5 {
		publish()
	}
	waitFor(t, 20*time.Second, "every client at the last event before the restart", func() bool { return js.allReached(clients, next) })

	stopFirst() // 1001 to every client; the address refuses connections now
	for range 5 {
		publish() // missed while no node runs
	}
	waitFor(t, 20*time.Second, "every client to see the connection refused", func() bool { return js.allRefused(clients) })

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	startNodeOn(t, natsURL, ln2, v)
	for range 5 {
		publish()
	}
	waitFor(t, 60*time.Second, "every client at the last event after the restart", func() bool { return js.allReached(clients, next) })

	for _, c := range clients {
		ids := js.ids(c)
		first := ids[0]
		for i, id := range ids {
			if id != first+i {
				t.Fatalf("%s received %v: a gap or a duplicate at %d (events %d..%d published)", c, ids, i, first, next)
			}
		}
		if got := js.closes(c); !slices.Contains(got, 1001) {
			t.Errorf("%s saw closes %v, want 1001 when the node stopped", c, got)
		}
	}
	if errs := js.errors(); len(errs) > 0 {
		t.Fatalf("clients reported errors: %v", errs)
	}
}

// needNPMPackages returns the path of Node.js, and fails the test, saying
// how to install them, when it or the npm packages of dir are missing.
func needNPMPackages(t *testing.T, dir string, packages ...string) string {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("Node.js is required for the npm client tests: install nodejs (>= 20) and npm, then run `make deps`")
	}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			t.Fatalf("npm package %s is not installed in %s: run `make deps` (npm ci --prefix %s)", p, dir, dir)
		}
	}
	return nodeBin
}

// startNodeOn starts a node with auth v serving on ln; stop (also run at
// cleanup) shuts it down once.
func startNodeOn(t *testing.T, natsURL string, ln net.Listener, v *auth.Verifier) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := cluster.Open(ctx, cluster.Config{URL: natsURL}, testLogger(t))
	if err != nil {
		t.Fatalf("cluster.Open: %v", err)
	}
	n, err := node.New(node.Config{Schema: demoSchema(t), Logger: testLogger(t), Auth: v, OpsListen: "127.0.0.1:0"}, cl)
	if err != nil {
		cl.Close()
		t.Fatalf("node.New: %v", err)
	}
	if err := n.Start(ctx, ln); err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.Shutdown(sctx); err != nil {
				t.Errorf("node.Shutdown: %v", err)
			}
			cl.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// jsClients is clients/js/test/clients.mjs running, and what it reported.
type jsClients struct {
	mu     sync.Mutex
	data   map[string][]int
	closed map[string][]int
	refuse map[string]int
	errs   []string
}

func startJSClients(t *testing.T, nodeBin, dir, url, tok string) *jsClients {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, nodeBin, "test/clients.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FRAISEQL_URL="+url, "FRAISEQL_TOKEN="+tok, "ROOM=js")
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	js := &jsClients{data: map[string][]int{}, closed: map[string][]int{}, refuse: map[string]int{}}
	done := make(chan struct{})
	go func() { // ends when the process closes stdout (killed at cleanup)
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev struct {
				Client, Event, ID, Message string
				Code                       int
				Codes                      []string
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			js.mu.Lock()
			switch ev.Event {
			case "data":
				id, _ := strconv.Atoi(ev.ID)
				js.data[ev.Client] = append(js.data[ev.Client], id)
			case "closed":
				js.closed[ev.Client] = append(js.closed[ev.Client], ev.Code)
			case "connection-error":
				js.refuse[ev.Client]++
			case "error", "complete":
				js.errs = append(js.errs, sc.Text())
			}
			js.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cmd.Wait() })
	return js
}

func (js *jsClients) allHave(clients []string, n int) bool {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, c := range clients {
		if len(js.data[c]) < n {
			return false
		}
	}
	return true
}

func (js *jsClients) allReached(clients []string, last int) bool {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, c := range clients {
		if d := js.data[c]; len(d) == 0 || d[len(d)-1] < last {
			return false
		}
	}
	return true
}

func (js *jsClients) allRefused(clients []string) bool {
	js.mu.Lock()
	defer js.mu.Unlock()
	for _, c := range clients {
		if js.refuse[c] == 0 {
			return false
		}
	}
	return true
}

func (js *jsClients) ids(c string) []int {
	js.mu.Lock()
	defer js.mu.Unlock()
	return slices.Clone(js.data[c])
}

func (js *jsClients) closes(c string) []int {
	js.mu.Lock()
	defer js.mu.Unlock()
	return slices.Clone(js.closed[c])
}

func (js *jsClients) errors() []string {
	js.mu.Lock()
	defer js.mu.Unlock()
	return slices.Clone(js.errs)
}

func (js *jsClients) summary() string {
	js.mu.Lock()
	defer js.mu.Unlock()
	return fmt.Sprintf("data %v, closes %v, refused %v, errors %v", js.data, js.closed, js.refuse, js.errs)
}

// TestLegacyAndBrowserClients: subscriptions-transport-ws (the legacy
// graphql-ws subprotocol) in Node.js, and graphql-ws's browser build in
// headless Chromium (a page on another origin, allowed by
// ws.origin_patterns), each with a token in {authToken}, a variable and a
// fragment, receive the projected event.
func TestLegacyAndBrowserClients(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "clients", "js")
	nodeBin := needNPMPackages(t, dir, "subscriptions-transport-ws", "playwright-core", "graphql-ws", "ws")
	chromium := needChromium(t)
	// The page and the graphql-ws browser build, served from another origin.
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "test", "browser.html"))
	})
	mux.HandleFunc("/graphql-ws.min.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "node_modules", "graphql-ws", "umd", "graphql-ws.min.js"))
	})
	static := httptest.NewServer(mux)
	defer static.Close()

	v, err := auth.New(auth.Config{HS256Secret: testSecret, Audience: "fraiseql"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) {
		c.Auth = v
		c.WS.OriginPatterns = []string{strings.TrimPrefix(static.URL, "http://")}
	})
	tok := token(t, testSecret, "acme", "ann", nil)
	page := static.URL + "/?" + url.Values{"url": {e.ws}, "token": {tok}, "room": {"web"}}.Encode()

	for _, tc := range []struct{ name, script string }{
		{"subscriptions-transport-ws", "test/legacy.mjs"},
		{"browser", "test/browser.mjs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := runScript(t, nodeBin, dir, tc.script,
				"FRAISEQL_URL="+e.ws, "FRAISEQL_TOKEN="+tok, "ROOM=web", "PAGE_URL="+page, "CHROMIUM="+chromium)
			body := `{"id":"w1","room":"web","text":"hello","author":{"name":"ann"},"secret":"x"}`
			deadline := time.After(60 * time.Second)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatal("the client script exited")
					}
					var ev struct {
						Event  string
						Error  string
						Result struct{ Data json.RawMessage }
					}
					json.Unmarshal([]byte(line), &ev)
					if ev.Event == "error" {
						t.Fatalf("client error: %s", ev.Error)
					}
					if ev.Event == "data" {
						if got := string(ev.Result.Data); got != `{"messageAdded":{"id":"w1","text":"hello","author":{"name":"ann"}}}` {
							t.Fatalf("received %s", got)
						}
						return
					}
				case <-tick.C: // the subscription registers asynchronously: publish until it hears
					e.publishTo("acme", "chat.web", body)
				case <-deadline:
					t.Fatal("no event in 60 s")
				}
			}
		})
	}
}

// needChromium returns the path of Chromium ($CHROMIUM, default
// /usr/bin/chromium), and fails the test, saying how to install it, when
// it is missing.
func needChromium(t *testing.T) string {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is required for the browser client test: apt-get install chromium (or set CHROMIUM): %v", err)
	}
	return chromium
}

// runScript runs a Node.js script of dir with env and returns its stdout
// lines; it is killed at cleanup.
func runScript(t *testing.T, nodeBin, dir, script string, env ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, nodeBin, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() { // ends when the process closes stdout
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // the test stopped reading
			}
		}
	}()
	t.Cleanup(func() { cancel(); cmd.Wait() })
	return lines
}
