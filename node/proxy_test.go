package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pires/go-proxyproto"

	"github.com/fraiseql/subscriptions/limits"
)

// proxyHeader is a PROXY protocol header (version 1 or 2) naming src as the
// client of a TCP connection to the node.
func proxyHeader(t testing.TB, version byte, src string) []byte {
	t.Helper()
	h := &proxyproto.Header{
		Version:           version,
		Command:           proxyproto.PROXY,
		TransportProtocol: proxyproto.TCPv4,
		SourceAddr:        &net.TCPAddr{IP: net.ParseIP(src), Port: 5555},
		DestinationAddr:   &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 8080},
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wsVia dials ws://addr/graphql, writing prefix (a PROXY header) first on
// the TCP connection and sending header as the upgrade request's headers.
// It returns the HTTP status of a refused upgrade, or 101.
func wsVia(t testing.TB, addr string, prefix []byte, header http.Header) (int, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, a)
		if err == nil && len(prefix) > 0 {
			_, err = c.Write(prefix)
		}
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPClient:   &http.Client{Transport: tr},
		HTTPHeader:   header,
	})
	if err != nil {
		if resp != nil {
			return resp.StatusCode, err
		}
		return 0, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return http.StatusSwitchingProtocols, nil
}

// oneConnPerIP makes conn_rate_per_ip admit one connection per address
// (burst 1, practically no refill), so that a second connection from the
// same client address gets 429: the limiter shows which address it keyed.
func oneConnPerIP(c *Config) {
	c.Limits.ConnRatePerIP = limits.Rate(1.0 / 3600)
	c.Limits.ConnBurstPerIP = 1
}

// logBuffer collects a node's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func trusted(cidrs ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range cidrs {
		out = append(out, netip.MustParsePrefix(c))
	}
	return out
}

// TestProxyProtocolFromTrustedProxy: behind a trusted proxy, the PROXY
// header's source is the client: the per-IP connection rate keys on it
// (two clients of one proxy are limited apart), and so do the logs.
func TestProxyProtocolFromTrustedProxy(t *testing.T) {
	for _, version := range []byte{1, 2} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			logs := &logBuffer{}
			n := startNode(t, func(c *Config) {
				c.TrustedProxies = trusted("127.0.0.0/8")
				c.ProxyProtocol = ProxyProtocolRequired
				c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				c.Limits.InitTimeout = limits.Duration(100 * time.Millisecond)
				oneConnPerIP(c)
			})
			if code, err := wsVia(t, n.Addr(), proxyHeader(t, version, "203.0.113.7"), nil); code != 101 {
				t.Fatalf("first client: %d %v", code, err)
			}
			if code, _ := wsVia(t, n.Addr(), proxyHeader(t, version, "203.0.113.7"), nil); code != http.StatusTooManyRequests {
				t.Fatalf("the same client again: %d, want 429 (conn_rate_per_ip keyed on the PROXY source)", code)
			}
			if code, err := wsVia(t, n.Addr(), proxyHeader(t, version, "203.0.113.8"), nil); code != 101 {
				t.Fatalf("another client of the same proxy: %d %v (limited as the proxy?)", code, err)
			}
			// The init timeout closes the connections; ws logs each by its address.
			waitFor(t, "a log line naming the client", func() bool {
				return strings.Contains(logs.String(), "remote=203.0.113.7:5555")
			})
			if strings.Contains(logs.String(), `msg="ws: closing" remote=127.0.0.1`) {
				t.Fatalf("a connection was logged by the proxy's address:\n%s", logs)
			}
		})
	}
}

// TestProxyHeaderFromUntrustedPeerIsRefused: a client that is not a
// trusted proxy cannot choose its address with a PROXY header.
func TestProxyHeaderFromUntrustedPeerIsRefused(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.TrustedProxies = trusted("192.0.2.0/24") // not the test's 127.0.0.1
		c.ProxyProtocol = ProxyProtocolOptional
		oneConnPerIP(c)
	})
	for _, version := range []byte{1, 2} {
		if code, err := wsVia(t, n.Addr(), proxyHeader(t, version, "203.0.113.7"), nil); err == nil || code == 101 {
			t.Fatalf("v%d PROXY header from an untrusted peer was honoured (%d)", version, code)
		}
	}
	if got := metricValue(t, n, "fraiseql_proxy_header_errors_total", "reason", proxyUntrusted); got != 2 {
		t.Fatalf("untrusted PROXY headers counted %v, want 2", got)
	}
	// The same peer without a header is an ordinary client, keyed by its own address.
	if code, err := wsVia(t, n.Addr(), nil, nil); code != 101 {
		t.Fatalf("plain client: %d %v", code, err)
	}
	if code, _ := wsVia(t, n.Addr(), nil, nil); code != http.StatusTooManyRequests {
		t.Fatalf("plain client again: %d, want 429", code)
	}
}

// TestProxyProtocolRequiredOrOptional: with required, a trusted peer that
// sends no header is closed; with optional, it is served as itself.
func TestProxyProtocolRequiredOrOptional(t *testing.T) {
	for _, mode := range []string{ProxyProtocolRequired, ProxyProtocolOptional} {
		t.Run(mode, func(t *testing.T) {
			n := startNode(t, func(c *Config) {
				c.TrustedProxies = trusted("127.0.0.1/32")
				c.ProxyProtocol = mode
			})
			code, err := wsVia(t, n.Addr(), nil, nil)
			missing := metricValue(t, n, "fraiseql_proxy_header_errors_total", "reason", proxyMissing)
			switch {
			case mode == ProxyProtocolRequired && (code == 101 || missing != 1):
				t.Fatalf("no header, required: %d %v, counted %v; want closed and counted", code, err, missing)
			case mode == ProxyProtocolOptional && code != 101:
				t.Fatalf("no header, optional: %d %v; want served", code, err)
			}
		})
	}
}

// TestMalformedProxyHeaderIsClosed: a broken header from a trusted peer
// closes the connection and is counted; nothing of it reaches HTTP.
func TestMalformedProxyHeaderIsClosed(t *testing.T) {
	n := startNode(t, func(c *Config) {
		c.TrustedProxies = trusted("127.0.0.1/32")
		c.ProxyProtocol = ProxyProtocolOptional
	})
	v2 := proxyHeader(t, 2, "203.0.113.7")
	v2[13] = 0xff // unknown address family and protocol
	for i, bad := range [][]byte{
		[]byte("PROXY TCP4 not-an-ip 127.0.0.1 5555 8080\r\n"),
		[]byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555\r\n"),
		[]byte("PROXY " + strings.Repeat("X", 200) + "\r\n"),
		v2,
	} {
		c := dialFrom(t, "", n.Addr())
		if _, err := c.Write(append(bad, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"...)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := c.Read(make([]byte, 64)); err == nil {
			t.Fatalf("malformed header %d: the connection was served (%d bytes)", i, b)
		} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatalf("malformed header %d: the connection was left open", i)
		}
	}
	waitFor(t, "4 invalid headers counted", func() bool {
		return metricValue(t, n, "fraiseql_proxy_header_errors_total", "reason", proxyInvalid) == 4
	})
}

// TestPendingCapPerIPBehindProxy: the per-address pending cap applies to
// the client the PROXY header names, not to the proxy that carries them all.
func TestPendingCapPerIPBehindProxy(t *testing.T) {
	const limit = 3
	n := startNode(t, func(c *Config) {
		c.TrustedProxies = trusted("127.0.0.1/32")
		c.ProxyProtocol = ProxyProtocolRequired
		c.Limits.MaxPendingConnsPerIP = limit
		c.Limits.UpgradeTimeout = limits.Duration(time.Minute)
	})
	idle := func(src string) net.Conn {
		c := dialFrom(t, "", n.Addr())
		if _, err := c.Write(proxyHeader(t, 2, src)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for range limit - 1 {
		idle("203.0.113.7")
	}
	waitPending(t, n, limit-1)
	if code, err := wsVia(t, n.Addr(), proxyHeader(t, 2, "203.0.113.7"), nil); code != 101 {
		t.Fatalf("client at %d pending (cap %d): %d %v", limit-1, limit, code, err)
	}
	waitPending(t, n, limit-1)
	idle("203.0.113.7") // limit
	waitPending(t, n, limit)
	if c := idle("203.0.113.7"); !closedWithin(t, c, 2*time.Second) {
		t.Fatalf("pending connection %d of one client (cap %d) was not closed", limit+1, limit)
	}
	// The proxy's other clients are not affected, however many.
	for i := range limit + 1 {
		idle(fmt.Sprintf("203.0.113.%d", 20+i))
	}
	waitPending(t, n, 2*limit+1)
	if got := metricValue(t, n, "fraiseql_limit_refusals_total", "limit", limitMaxPendingPerIP); got != 1 {
		t.Fatalf("max_pending_conns_per_ip refusals = %v, want 1", got)
	}
}

// TestForwardedHeaderFromTrustedProxyOnly: X-Forwarded-For is read only
// from a trusted proxy, right to left; a client's own header is ignored.
func TestForwardedHeaderFromTrustedProxyOnly(t *testing.T) {
	xff := func(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }
	t.Run("spoofed by an untrusted client", func(t *testing.T) {
		n := startNode(t, func(c *Config) {
			c.TrustedProxies = trusted("192.0.2.0/24")
			oneConnPerIP(c)
		})
		if code, err := wsVia(t, n.Addr(), nil, xff("203.0.113.1")); code != 101 {
			t.Fatalf("first: %d %v", code, err)
		}
		if code, _ := wsVia(t, n.Addr(), nil, xff("203.0.113.2")); code != http.StatusTooManyRequests {
			t.Fatalf("a new X-Forwarded-For from the same untrusted client: %d, want 429", code)
		}
	})
	t.Run("through trusted proxies", func(t *testing.T) {
		n := startNode(t, func(c *Config) {
			c.TrustedProxies = trusted("127.0.0.1/32", "10.0.0.0/8")
			oneConnPerIP(c)
		})
		// The client wrote 198.51.100.1; our proxies appended the client
		// (203.0.113.9) and an inner hop (10.1.2.3).
		if code, err := wsVia(t, n.Addr(), nil, xff("198.51.100.1, 203.0.113.9, 10.1.2.3")); code != 101 {
			t.Fatalf("first: %d %v", code, err)
		}
		if code, _ := wsVia(t, n.Addr(), nil, xff("198.51.100.2, 203.0.113.9, 10.1.2.3")); code != http.StatusTooManyRequests {
			t.Fatalf("same right-most untrusted address, another left-most: %d, want 429", code)
		}
		if code, err := wsVia(t, n.Addr(), nil, xff("198.51.100.1, 203.0.113.10, 10.1.2.3")); code != 101 {
			t.Fatalf("another client: %d %v", code, err)
		}
	})
}

func TestClientAddr(t *testing.T) {
	p := proxies{trusted: trusted("10.0.0.0/8", "2001:db8::/32"), header: ForwardedXFF}
	rfc := p
	rfc.header = ForwardedRFC
	for _, tc := range []struct {
		name    string
		p       proxies
		peer    string
		headers map[string][]string
		want    string // "" means the peer's address is kept
	}{
		{"untrusted peer", p, "203.0.113.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, ""},
		{"trusted peer, no header", p, "10.0.0.1:1", nil, ""},
		{"one hop", p, "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"right-most untrusted", p, "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"1.1.1.1, 198.51.100.1, 10.9.9.9"}}, "198.51.100.1"},
		{"several lines", p, "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"1.1.1.1", "198.51.100.1, 10.9.9.9"}}, "198.51.100.1"},
		{"all trusted", p, "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"10.1.1.1, 10.2.2.2"}}, "10.1.1.1"},
		{"garbage stops the walk", p, "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.1, bogus, 10.2.2.2"}}, "10.2.2.2"},
		{"garbage right-most", p, "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.1, bogus"}}, ""},
		{"ipv6 with port", p, "[2001:db8::1]:1", map[string][]string{"X-Forwarded-For": {"[2001:db8:1::5]:4711, 2600::1"}}, "2600::1"},
		{"forwarded ignored in xff mode", p, "10.0.0.1:1", map[string][]string{"Forwarded": {"for=198.51.100.1"}}, ""},
		{"forwarded", rfc, "10.0.0.1:1", map[string][]string{"Forwarded": {`for=1.1.1.1, for="[2600::1]:4711";proto=https, for=10.3.3.3;by=10.0.0.1`}}, "2600::1"},
		{"forwarded quoted comma", rfc, "10.0.0.1:1", map[string][]string{"Forwarded": {`for=198.51.100.1;x="a,b"`}}, "198.51.100.1"},
		{"forwarded obfuscated", rfc, "10.0.0.1:1", map[string][]string{"Forwarded": {`for=198.51.100.1, for=_hidden`}}, ""},
		{"xff ignored in forwarded mode", rfc, "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.peer, Header: tc.headers}
			a, ok := tc.p.clientAddr(r)
			switch {
			case tc.want == "" && ok:
				t.Fatalf("took %v from the header, want the peer", a)
			case tc.want != "" && (!ok || a.String() != tc.want):
				t.Fatalf("got %v (%v), want %s", a, ok, tc.want)
			}
		})
	}
}

func TestProxyConfigValidation(t *testing.T) {
	base := Config{Schema: testSchema(t)}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"required without proxies", func(c *Config) { c.ProxyProtocol = ProxyProtocolRequired }, "proxy_protocol: \"required\" needs trusted_proxies"},
		{"unknown mode", func(c *Config) { c.ProxyProtocol = "yes" }, "proxy_protocol: \"yes\" is not off, optional or required"},
		{"unknown header", func(c *Config) { c.ForwardedHeader = "x-real-ip" }, "forwarded_header: \"x-real-ip\""},
		{"valid", func(c *Config) { c.TrustedProxies = trusted("10.0.0.0/8"); c.ProxyProtocol = ProxyProtocolOptional }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		in   []string
		want string // the prefixes, or the error
	}{
		{[]string{"10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32", "::ffff:10.1.0.0/112", "10.1.2.3/8"}, "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32 10.1.0.0/16 10.0.0.0/8]"},
		{[]string{"10.0.0/8"}, `trusted_proxies: "10.0.0/8" is not a CIDR`},
		{[]string{"proxy.internal"}, `trusted_proxies: "proxy.internal" is not a CIDR`},
	} {
		got, err := ParseTrustedProxies(tc.in)
		var s string
		if err != nil {
			s = err.Error()
		} else {
			s = fmtPrefixes(got)
		}
		if !strings.Contains(s, tc.want) {
			t.Fatalf("ParseTrustedProxies(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}

func fmtPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

// FuzzClientAddr: whatever a trusted proxy's request carries, the client
// address is the peer or an address written in the header, and a header
// from an untrusted peer is never read.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"198.51.100.1", "1.1.1.1, 10.0.0.2", `for="[2600::1]:80";by=x, for=10.1.1.1`, `for="a,b`, ",,", "[::1", "for=_x;for=1.2.3.4"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, header string, rfc bool) {
		p := proxies{trusted: trusted("10.0.0.0/8"), header: ForwardedXFF}
		name := "X-Forwarded-For"
		if rfc {
			p.header, name = ForwardedRFC, "Forwarded"
		}
		r := &http.Request{RemoteAddr: "10.0.0.1:1", Header: http.Header{name: {header}}}
		if a, ok := p.clientAddr(r); ok && !inText(header, a) {
			t.Fatalf("client %v is not in the header %q", a, header)
		}
		r.RemoteAddr = "203.0.113.1:1"
		if a, ok := p.clientAddr(r); ok {
			t.Fatalf("read %v from an untrusted peer's header %q", a, header)
		}
	})
}

// inText reports whether one of text's tokens parses as a.
func inText(text string, a netip.Addr) bool {
	for _, f := range strings.FieldsFunc(text, func(c rune) bool { return strings.ContainsRune(",;= \"[]\t", c) }) {
		if b, err := netip.ParseAddr(f); err == nil && b.Unmap() == a {
			return true
		}
		if b, err := netip.ParseAddrPort(f); err == nil && b.Addr().Unmap() == a {
			return true
		}
	}
	return false
}
