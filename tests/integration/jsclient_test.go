//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

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

// TestLegacyAndBrowserClients: subscriptions-transport-ws (the legacy
// graphql-ws subprotocol) in Node.js, and graphql-ws's browser build in
// headless Chromium (a page on another origin, allowed by
// ws.origin_patterns), each with a token in {authToken}, a variable and a
// fragment, receive the projected event.
func TestLegacyAndBrowserClients(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "clients", "js")
	nodeBin := needNPMPackages(t, dir, "subscriptions-transport-ws", "playwright-core", "graphql-ws", "ws")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is required for the browser client test: apt-get install chromium (or set CHROMIUM): %v", err)
	}
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
