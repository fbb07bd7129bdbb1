package node

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/prometheus/client_golang/prometheus"
)

// The node's front door. Per-request limits (max_conns, conn_rate_per_ip)
// run only once a request's header is read; before that an idle socket
// costs a file descriptor and nothing else checks it. The edge listener
// bounds those sockets at accept:
//
//   - a connection is pending from accept until net/http hands it to the
//     WebSocket upgrade (http.StateHijacked) or it closes; a plain HTTP
//     connection (/healthz, /metrics) stays pending while it is open;
//   - limits.max_pending_conns caps pending connections, and
//     limits.max_pending_conns_per_ip those of one client address: over
//     either, the new connection is closed before anything is read;
//   - limits.upgrade_timeout closes a connection that stays pending that
//     long (from accept, from each request and from each idle period).
//
// Behind a trusted proxy the client address comes from the PROXY protocol
// header (read on the connection's own goroutine, within upgrade_timeout)
// and the per-address cap is applied to it then; the proxy's own address
// is never capped per address.

// Limit names of the edge listener, labels of fraiseql_limit_refusals_total.
const (
	limitMaxPending      = "max_pending_conns"
	limitMaxPendingPerIP = "max_pending_conns_per_ip"
	limitUpgradeTimeout  = "upgrade_timeout"
)

// Reasons of fraiseql_proxy_header_errors_total.
const (
	proxyMissing   = "missing"   // a trusted peer sent none and proxy_protocol is required
	proxyUntrusted = "untrusted" // a peer outside trusted_proxies sent one
	proxyInvalid   = "invalid"   // malformed, or not complete within upgrade_timeout
)

// edge admits connections for the node's HTTP server. Its methods are safe
// for concurrent use.
type edge struct {
	log      *slog.Logger
	max      int // max_pending_conns; negative: unlimited
	maxPerIP int // max_pending_conns_per_ip; negative: unlimited
	timeout  time.Duration
	proxies  proxies

	refused     *prometheus.CounterVec // the guards' fraiseql_limit_refusals_total
	proxyErrors *prometheus.CounterVec

	mu      sync.Mutex
	pending int                // guarded by mu
	perIP   map[netip.Addr]int // guarded by mu; keys from sourceKey

	lastLog  atomic.Int64 // unix nanoseconds of the last refusal logged
	unlogged atomic.Int64 // refusals not logged since
}

func newEdge(cfg Config, refused *prometheus.CounterVec, reg *prometheus.Registry) *edge {
	e := &edge{
		log:      cfg.Logger,
		max:      cfg.Limits.MaxPendingConns,
		maxPerIP: cfg.Limits.MaxPendingConnsPerIP,
		timeout:  cfg.Limits.UpgradeTimeout.Std(),
		proxies:  newProxies(cfg),
		refused:  refused,
		proxyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_proxy_header_errors_total",
			Help: "Connections closed for their PROXY protocol header, by reason: missing (from a trusted proxy, proxy_protocol required), untrusted (from a peer outside trusted_proxies), invalid (malformed or late).",
		}, []string{"reason"}),
		perIP: make(map[netip.Addr]int),
	}
	for _, l := range []string{limitMaxPending, limitMaxPendingPerIP, limitUpgradeTimeout} {
		refused.WithLabelValues(l)
	}
	for _, r := range []string{proxyMissing, proxyUntrusted, proxyInvalid} {
		e.proxyErrors.WithLabelValues(r)
	}
	reg.MustRegister(e.proxyErrors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fraiseql_pending_connections",
		Help: "TCP connections accepted that are not WebSockets: before their upgrade, or plain HTTP (limits.max_pending_conns).",
	}, func() float64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return float64(e.pending)
	}))
	return e
}

// listen wraps ln: its Accept admits connections as the edge's limits allow.
// The http.Server serving it must call connState from its ConnState hook.
func (e *edge) listen(ln net.Listener) net.Listener { return &edgeListener{Listener: ln, e: e} }

type edgeListener struct {
	net.Listener
	e *edge
}

// Accept returns the next connection within the pending caps; it closes
// the others itself, so that they never reach the HTTP server.
func (l *edgeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ec := l.e.admit(c); ec != nil {
			return ec, nil
		}
	}
}

// admit counts c as pending, or closes it if a cap is reached.
func (e *edge) admit(c net.Conn) *edgeConn {
	peer := addrOf(c.RemoteAddr())
	trusted := e.proxies.trusts(peer)
	ec := &edgeConn{Conn: c, raw: c, e: e, addr: c.RemoteAddr()}
	e.mu.Lock()
	if e.max >= 0 && e.pending >= e.max {
		e.mu.Unlock()
		e.refuse(c, limitMaxPending, peer)
		return nil
	}
	// A trusted proxy's own address is not capped: its clients are, once
	// its PROXY header names them (handshake).
	if !trusted && !e.acquireLocked(ec, peer) {
		e.mu.Unlock()
		e.refuse(c, limitMaxPendingPerIP, peer)
		return nil
	}
	e.pending++
	e.mu.Unlock()
	if policy, ok := e.proxies.policy(trusted); ok {
		ec.pc = proxyproto.NewConn(c, proxyproto.WithPolicy(policy), proxyproto.SetReadHeaderTimeout(e.timeout))
		ec.Conn = ec.pc
		ec.trustedPeer = trusted
	}
	if e.timeout > 0 {
		// Armed only once stored: expire reads ec.timer.
		ec.timer = time.AfterFunc(math.MaxInt64, ec.expire)
		ec.timer.Reset(e.timeout)
	}
	return ec
}

// acquireLocked takes a per-address slot for ec. e.mu must be held.
func (e *edge) acquireLocked(ec *edgeConn, a netip.Addr) bool {
	if !a.IsValid() || e.maxPerIP < 0 {
		return true
	}
	k := sourceKey(a)
	if e.perIP[k] >= e.maxPerIP {
		return false
	}
	e.perIP[k]++
	ec.src, ec.hasSrc = k, true
	return true
}

// release gives back ec's slots. It runs once per connection, when it
// leaves the pending state.
func (e *edge) release(ec *edgeConn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending--
	if ec.hasSrc {
		if e.perIP[ec.src]--; e.perIP[ec.src] <= 0 {
			delete(e.perIP, ec.src)
		}
		ec.hasSrc = false
	}
}

// refuse closes a connection refused by limit and counts it.
func (e *edge) refuse(c net.Conn, limit string, peer netip.Addr) {
	e.refused.WithLabelValues(limit).Inc() // counted before the peer can see the close
	c.Close()
	e.logRefusal("connection refused at accept", "limit", limit, "remote", peer)
}

// logRefusal logs at debug level, at most once a second: a flood of
// refused connections must not become a flood of log lines.
func (e *edge) logRefusal(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := e.lastLog.Load()
	if now-last < int64(time.Second) || !e.lastLog.CompareAndSwap(last, now) {
		e.unlogged.Add(1)
		return
	}
	e.log.Debug(msg, append(args, "unlogged_since", e.unlogged.Swap(0))...)
}

// connState follows net/http's connection states (http.Server.ConnState):
// a hijacked connection is a WebSocket, no longer pending; a request or an
// idle keep-alive period starts a new upgrade_timeout.
func (e *edge) connState(c net.Conn, s http.ConnState) {
	ec, ok := c.(*edgeConn)
	if !ok {
		return
	}
	switch s {
	case http.StateActive, http.StateIdle:
		if ec.timer != nil && ec.state.Load() == statePending {
			ec.timer.Reset(e.timeout)
		}
	case http.StateHijacked:
		ec.leave(stateUpgraded)
	case http.StateClosed:
		ec.leave(stateDone)
	}
}

// edgeConn states.
const (
	statePending  int32 = iota
	stateUpgraded       // handed to the WebSocket upgrade
	stateDone           // closed, expired or refused
)

// edgeConn is an admitted connection: pending until upgraded or closed.
type edgeConn struct {
	net.Conn             // raw, or pc when the PROXY protocol is on
	raw         net.Conn // the accepted socket
	pc          *proxyproto.Conn
	trustedPeer bool // raw's peer is in trusted_proxies
	e           *edge
	timer       *time.Timer  // upgrade_timeout; nil if off
	state       atomic.Int32 // statePending, stateUpgraded or stateDone

	once  sync.Once // handshake
	addr  net.Addr  // the client's address: raw's peer or the PROXY header's source
	hsErr error     // why the handshake closed the connection

	// Guarded by e.mu.
	src    netip.Addr // key of the per-address slot held
	hasSrc bool
}

// leave moves ec out of pending (to upgraded or done) once, releasing its slots.
func (ec *edgeConn) leave(to int32) bool {
	if !ec.state.CompareAndSwap(statePending, to) {
		return false
	}
	if ec.timer != nil {
		ec.timer.Stop()
	}
	ec.e.release(ec)
	return true
}

// expire closes a connection still pending at upgrade_timeout.
func (ec *edgeConn) expire() {
	if ec.leave(stateDone) {
		ec.e.refused.WithLabelValues(limitUpgradeTimeout).Inc()
		ec.raw.Close()
		ec.e.logRefusal("connection closed: not upgraded within limits.upgrade_timeout", "remote", ec.raw.RemoteAddr())
	}
}

// handshake reads the PROXY header, if the connection may carry one, and
// caps the address it names. It runs once, on the first Read, Write or
// RemoteAddr: on the connection's own goroutine, never on Accept's.
func (ec *edgeConn) handshake() error {
	ec.once.Do(func() {
		if ec.pc == nil {
			return
		}
		// A zero-length read processes the header and returns its error
		// without waiting for data after it.
		if _, err := ec.pc.Read(nil); err != nil {
			reason := proxyInvalid
			switch {
			case errors.Is(err, proxyproto.ErrNoProxyProtocol):
				reason = proxyMissing
			case errors.Is(err, proxyproto.ErrSuperfluousProxyHeader):
				reason = proxyUntrusted
			}
			ec.e.proxyErrors.WithLabelValues(reason).Inc() // counted before the peer can see the close
			ec.fail(fmt.Errorf("proxy protocol header %s: %w", reason, err))
			ec.e.logRefusal("connection closed: PROXY protocol header "+reason, "remote", ec.raw.RemoteAddr(), "err", err)
			return
		}
		ec.addr = ec.pc.RemoteAddr()
		if !ec.trustedPeer {
			return
		}
		src := addrOf(ec.addr)
		if ec.e.proxies.trusts(src) {
			return // LOCAL (the proxy's health check), or a chain of proxies
		}
		e := ec.e
		e.mu.Lock()
		ok := ec.state.Load() != statePending || e.acquireLocked(ec, src)
		e.mu.Unlock()
		if !ok {
			e.refused.WithLabelValues(limitMaxPendingPerIP).Inc()
			ec.fail(errPendingPerIP)
			e.logRefusal("connection refused after PROXY header", "limit", limitMaxPendingPerIP, "remote", src)
		}
	})
	return ec.hsErr
}

var errPendingPerIP = errors.New("limits.max_pending_conns_per_ip reached for this address")

// fail ends a connection during its handshake.
func (ec *edgeConn) fail(err error) {
	ec.hsErr = err
	ec.leave(stateDone)
	ec.raw.Close()
}

func (ec *edgeConn) Read(b []byte) (int, error) {
	if err := ec.handshake(); err != nil {
		return 0, err
	}
	return ec.Conn.Read(b)
}

func (ec *edgeConn) Write(b []byte) (int, error) {
	if err := ec.handshake(); err != nil {
		return 0, err
	}
	return ec.Conn.Write(b)
}

// RemoteAddr is the client's address: from the PROXY header when a trusted
// proxy sent one, else the socket's peer.
func (ec *edgeConn) RemoteAddr() net.Addr {
	ec.handshake()
	return ec.addr
}

// SyscallConn gives the socket's descriptor, so that ws writes frames to
// it directly (ws directWriter) as it does to a bare TCP connection. It is
// used after the upgrade, when the PROXY header is behind.
func (ec *edgeConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := ec.raw.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a socket with a descriptor")
	}
	return sc.SyscallConn()
}

var _ syscall.Conn = (*edgeConn)(nil)

// LocalAddr is the socket's own address (never the PROXY header's).
func (ec *edgeConn) LocalAddr() net.Addr { return ec.raw.LocalAddr() }

func (ec *edgeConn) Close() error {
	ec.leave(stateDone)
	return ec.Conn.Close()
}

// addrOf is a TCP address's IP, or the zero Addr.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// sourceKey is the per-address cap's key: the IPv4 address, or the /64 of
// an IPv6 one (one host usually holds a whole /64).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
