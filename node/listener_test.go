package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
	"github.com/fraiseql/subscriptions/limits"
)

// startNode builds and starts a node on a loopback port; edit changes the
// test's Config first. Per-IP connection rates are off unless edit sets them.
func startNode(t testing.TB, edit func(*Config)) *Node {
	t.Helper()
	return startNodeAt(t, clustertest.RunServer(t), edit)
}

// startNodeAt is startNode on the NATS server at url.
func startNodeAt(t testing.TB, url string, edit func(*Config)) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cl, err := cluster.Open(ctx, cluster.Config{URL: url, Ingest: testIngest()}, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Schema: testSchema(t), Logger: log, Limits: limits.Config{ConnRatePerIP: -1}}
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(cfg, cl)
	if err != nil {
		cl.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		cl.Close()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background(), ln); err != nil {
		t.Fatal(err)
	}
	return n
}

// dialFrom opens a TCP connection to addr from the loopback address from
// ("" for the default) that sends nothing; the test closes it at cleanup.
func dialFrom(t testing.TB, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c within d: a read
// returns EOF or a reset instead of timing out. Nothing is ever sent to c.
func closedWithin(t testing.TB, c net.Conn, d time.Duration) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err == nil {
		t.Fatal("the server sent data on a connection that sent nothing")
	}
	return true
}

// wsClient dials ws://addr/graphql from the loopback address from ("" for
// the default), returning the upgraded connection or the dial's error.
func wsClient(t testing.TB, from, addr string) (*websocket.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPClient:   &http.Client{Transport: tr},
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, nil
}

// metricValue is the value of the metric name whose labels include labels
// (name=value pairs), or -1 if there is none.
func metricValue(t testing.TB, n *Node, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

// waitPending waits until n has want pending connections.
func waitPending(t testing.TB, n *Node, want float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v pending connections", want), func() bool {
		return metricValue(t, n, "fraiseql_pending_connections") == want
	})
}

// waitFor polls cond every 10ms for up to 5s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestIdleSocketsBeyondPendingCapAreClosedAtAccept is the descriptor
// exhaustion attack: sockets that never send a request used to be held
// (10s each) whatever their number. With limits.max_pending_conns 20,
// the 20th pending connection is served, the 21st and later are closed at
// accept, and a WebSocket client gets in again once a slot frees.
func TestIdleSocketsBeyondPendingCapAreClosedAtAccept(t *testing.T) {
	const limit = 20
	n := startNode(t, func(c *Config) {
		c.Limits.MaxPendingConns = limit
		c.Limits.MaxPendingConnsPerIP = -1
		c.Limits.UpgradeTimeout = limits.Duration(time.Minute)
	})
	addr := n.Addr()
	var idle []net.Conn
	for range limit - 1 {
		idle = append(idle, dialFrom(t, "", addr))
	}
	// limit-1 pending: the WebSocket handshake is the limit-th, served.
	if _, err := wsClient(t, "", addr); err != nil {
		t.Fatalf("WebSocket with %d idle sockets pending (cap %d): %v", limit-1, limit, err)
	}
	waitPending(t, n, limit-1)
	idle = append(idle, dialFrom(t, "", addr)) // limit pending
	waitPending(t, n, limit)
	for i := range 5 { // limit+1 and more
		if c := dialFrom(t, "", addr); !closedWithin(t, c, 2*time.Second) {
			t.Fatalf("idle socket %d over the cap (%d) was not closed at accept", limit+1+i, limit)
		}
	}
	if _, err := wsClient(t, "", addr); err == nil {
		t.Fatal("a WebSocket handshake over the pending cap was served")
	}
	if got := metricValue(t, n, "fraiseql_limit_refusals_total", "limit", "max_pending_conns"); got != 6 {
		t.Fatalf("max_pending_conns refusals = %v, want 6", got)
	}
	for _, c := range idle[:limit/2] {
		if closedWithin(t, c, 10*time.Millisecond) {
			t.Fatal("an idle socket within the cap was closed before upgrade_timeout")
		}
	}
	idle[0].Close() // frees a slot
	waitPending(t, n, limit-1)
	if _, err := wsClient(t, "", addr); err != nil {
		t.Fatalf("WebSocket after a slot freed: %v", err)
	}
	waitPending(t, n, limit-1)
	// Upgraded connections hold no slot: with limit-1 idle sockets still
	// pending, WebSockets keep getting in one after another.
	for i := range limit {
		if _, err := wsClient(t, "", addr); err != nil {
			t.Fatalf("WebSocket %d with %d upgraded ones open: %v", i+1, i, err)
		}
		// The client reads 101 just before net/http hands the connection
		// over (StateHijacked): wait for that, as a next handshake at the
		// cap would otherwise race it.
		waitPending(t, n, limit-1)
	}
}

// TestPendingCapPerIP: limits.max_pending_conns_per_ip counts each client
// address apart; one address at its cap does not shut out another.
func TestPendingCapPerIP(t *testing.T) {
	const limit = 5
	n := startNode(t, func(c *Config) {
		c.Limits.MaxPendingConns = -1
		c.Limits.MaxPendingConnsPerIP = limit
		c.Limits.UpgradeTimeout = limits.Duration(time.Minute)
	})
	addr := n.Addr()
	for range limit - 1 {
		dialFrom(t, "127.0.0.1", addr)
	}
	if _, err := wsClient(t, "127.0.0.1", addr); err != nil {
		t.Fatalf("WebSocket at %d pending from its address (cap %d): %v", limit-1, limit, err)
	}
	waitPending(t, n, limit-1)
	dialFrom(t, "127.0.0.1", addr) // limit
	waitPending(t, n, limit)
	if c := dialFrom(t, "127.0.0.1", addr); !closedWithin(t, c, 2*time.Second) {
		t.Fatalf("socket %d from one address (cap %d) was not closed at accept", limit+1, limit)
	}
	if _, err := wsClient(t, "127.0.0.1", addr); err == nil {
		t.Fatal("a WebSocket handshake over the per-address cap was served")
	}
	other := dialFrom(t, "127.0.0.2", addr)
	if _, err := wsClient(t, "127.0.0.2", addr); err != nil {
		t.Fatalf("another address is shut out: %v", err)
	}
	if closedWithin(t, other, 50*time.Millisecond) {
		t.Fatal("another address's pending socket was closed")
	}
	if got := metricValue(t, n, "fraiseql_limit_refusals_total", "limit", "max_pending_conns_per_ip"); got != 2 {
		t.Fatalf("max_pending_conns_per_ip refusals = %v, want 2", got)
	}
}

// TestIdleSocketsAreClosedAfterUpgradeTimeout: a connection that has not
// upgraded within limits.upgrade_timeout is closed, which frees its slot.
func TestIdleSocketsAreClosedAfterUpgradeTimeout(t *testing.T) {
	const limit, timeout = 20, 300 * time.Millisecond
	n := startNode(t, func(c *Config) {
		c.Limits.MaxPendingConns = limit
		c.Limits.UpgradeTimeout = limits.Duration(timeout)
	})
	addr := n.Addr()
	start := time.Now()
	var idle []net.Conn
	for range limit {
		idle = append(idle, dialFrom(t, "", addr))
	}
	for i, c := range idle {
		if !closedWithin(t, c, timeout+5*time.Second) {
			t.Fatalf("idle socket %d still open %v after upgrade_timeout %v", i, time.Since(start), timeout)
		}
	}
	if took := time.Since(start); took < timeout-50*time.Millisecond {
		t.Fatalf("idle sockets closed after %v, before upgrade_timeout %v", took, timeout)
	}
	if _, err := wsClient(t, "", addr); err != nil {
		t.Fatalf("WebSocket after the idle sockets expired: %v", err)
	}
	waitFor(t, "the expiries to be counted", func() bool {
		return metricValue(t, n, "fraiseql_limit_refusals_total", "limit", "upgrade_timeout") == limit
	})
}

// TestPlainHTTPDoesNotLeakPendingSlots: /healthz requests, keep-alive or
// not, hold a slot only while their connection is open, and an idle
// keep-alive connection is closed after upgrade_timeout.
func TestPlainHTTPDoesNotLeakPendingSlots(t *testing.T) {
	const limit, timeout = 3, 500 * time.Millisecond
	n := startNode(t, func(c *Config) {
		c.Limits.MaxPendingConns = limit
		c.Limits.UpgradeTimeout = limits.Duration(timeout)
	})
	get := func(tr *http.Transport) {
		t.Helper()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + n.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz: %s", resp.Status)
		}
	}
	for range 3 * limit { // each on a new connection, closed after
		tr := &http.Transport{}
		get(tr)
		get(tr) // the same, kept-alive connection
		tr.CloseIdleConnections()
	}
	waitFor(t, "no pending connection", func() bool { return metricValue(t, n, "fraiseql_pending_connections") == 0 })
	// Idle keep-alive connections the client never closes expire.
	for range limit {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		get(tr)
	}
	waitFor(t, "idle keep-alive connections to expire", func() bool { return metricValue(t, n, "fraiseql_pending_connections") == 0 })
	if _, err := wsClient(t, "", n.Addr()); err != nil {
		t.Fatal(err)
	}
}

// TestEdgeConnKeepsDirectWrites: ws writes frames straight to the socket
// when its connection is a syscall.Conn; the edge's wrapper must stay one,
// with or without the PROXY protocol.
func TestEdgeConnKeepsDirectWrites(t *testing.T) {
	for _, mode := range []string{ProxyProtocolOff, ProxyProtocolRequired} {
		t.Run(mode, func(t *testing.T) {
			cfg := Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, ProxyProtocol: mode,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			cfg.Limits = cfg.Limits.WithDefaults()
			e := newEdge(cfg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"limit"}), prometheus.NewRegistry())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			eln := e.listen(ln)
			defer eln.Close()
			dialFrom(t, "", ln.Addr().String())
			c, err := eln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc, ok := c.(syscall.Conn)
			if !ok {
				t.Fatalf("%T is not a syscall.Conn", c)
			}
			rc, err := sc.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var fd uintptr
			if err := rc.Control(func(f uintptr) { fd = f }); err != nil || fd == 0 {
				t.Fatalf("no descriptor: %v", err)
			}
		})
	}
}
