//go:build integration

package integration

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/node"
)

// TestBundledHAProxySendsClientAddresses checks ops/haproxy.cfg: haproxy
// accepts it (-c), and a node behind it (trusted_proxies: the balancer,
// proxy_protocol: required, as docker-compose.yml sets them) passes its
// health check and keys the per-IP connection rate on each client's own
// address: two clients are limited apart although both arrive from the
// balancer. CI installs haproxy (.ci/run).
func TestBundledHAProxySendsClientAddresses(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy is needed to check ops/haproxy.cfg (apt-get install haproxy): %v", err)
	}
	bundled := filepath.Join(repoRoot(t), "ops", "haproxy.cfg")
	if out, err := exec.Command(bin, "-c", "-f", bundled).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c %s: %v\n%s", bundled, err, out)
	}

	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.ProxyProtocol = node.ProxyProtocolRequired
		c.Limits.ConnRatePerIP = limits.Rate(1.0 / 3600) // one connection per address
		c.Limits.ConnBurstPerIP = 1
	})
	lbAddr := runHAProxy(t, bin, bundled, e.node.Addr())

	client := &http.Client{Timeout: 2 * time.Second}
	// A plain GET of /graphql reaches the node (426: no upgrade) once
	// the health check passed; until then haproxy answers 503 itself.
	waitFor(t, 15*time.Second, "haproxy to route /graphql to the node", func() bool {
		resp, err := client.Get("http://" + lbAddr + "/graphql")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUpgradeRequired
	})
	// Only /graphql is public: metrics and readiness stay on the nodes.
	for _, path := range []string{"/metrics", "/readyz", "/healthz", "/debug/pprof/"} {
		resp, err := client.Get("http://" + lbAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s through the balancer: %d, want 404", path, resp.StatusCode)
		}
	}
	dialFrom := func(from string) int {
		t.Helper()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		tr := &http.Transport{DialContext: d.DialContext}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, "ws://"+lbAddr+"/graphql", &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"},
			HTTPClient:   &http.Client{Transport: tr},
		})
		if err != nil {
			if resp != nil {
				return resp.StatusCode
			}
			t.Fatalf("dial from %s through haproxy: %v", from, err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return http.StatusSwitchingProtocols
	}
	if code := dialFrom("127.0.0.2"); code != http.StatusSwitchingProtocols {
		t.Fatalf("first client through haproxy: %d", code)
	}
	if code := dialFrom("127.0.0.2"); code != http.StatusTooManyRequests {
		t.Fatalf("the same client again: %d, want 429 (keyed on the client's address)", code)
	}
	if code := dialFrom("127.0.0.3"); code != http.StatusSwitchingProtocols {
		t.Fatalf("another client through the same haproxy: %d, want 101 (not limited as the balancer)", code)
	}
}

// TestEdgeKeepsDirectWrites: connections pass through the node's edge
// listener (pending caps, PROXY protocol), and ws still writes events to
// their sockets directly, the common path, not through each connection's
// write goroutine.
func TestEdgeKeepsDirectWrites(t *testing.T) {
	e := newEnv(t)
	c := dialTransport(t, e.ws)
	c.subscribe("s", roomQuery, map[string]any{"room": "edge"}, "")
	waitFor(t, 10*time.Second, "the subscription", func() bool { return e.node.Stats().Subscriptions == 1 })
	for i := range 3 {
		e.publish("chat.edge", map[string]any{"id": strconv.Itoa(i), "room": "edge", "text": "x"})
		c.next("s")
	}
	mfs, err := e.node.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	direct := -1.0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "fraiseql_connection_flushes_total" && l.GetName() == "path" && l.GetValue() == "direct" {
					direct = m.GetCounter().GetValue()
				}
			}
		}
	}
	if direct < 1 {
		t.Fatalf("direct flushes = %v after 3 events: the edge's connection hides the socket from ws", direct)
	}
}

var serverLine = regexp.MustCompile(`(?m)^\s*server node-\d .*\n`)

// runHAProxy runs haproxy on a loopback port with the bundled config, its
// servers replaced by the node at nodeAddr; it returns haproxy's address.
// The process is killed at cleanup.
func runHAProxy(t *testing.T, bin, bundled, nodeAddr string) string {
	t.Helper()
	raw, err := os.ReadFile(bundled)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lbAddr := ln.Addr().String()
	ln.Close()
	cfg := string(raw)
	for old, repl := range map[string]string{
		"bind :8080":     "bind " + lbAddr,
		"maxconn 100000": "maxconn 1000", // needs no raised descriptor limit
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("ops/haproxy.cfg no longer has %q; update this test", old)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	if n := len(serverLine.FindAllString(cfg, -1)); n != 3 {
		t.Fatalf("ops/haproxy.cfg has %d node server lines, want 3; update this test", n)
	}
	first := true
	cfg = serverLine.ReplaceAllStringFunc(cfg, func(string) string {
		if !first {
			return ""
		}
		first = false
		return "  server node-1 " + nodeAddr + "\n"
	})
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy (pid %s) output:\n%s", strconv.Itoa(cmd.Process.Pid), out)
		}
	})
	return lbAddr
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
