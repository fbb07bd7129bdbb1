package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// Node is one edge server. Create it with New, run it with Start, stop it
// with Shutdown. Its methods are safe for concurrent use.
type Node struct {
	cfg      Config
	log      *slog.Logger
	cl       *cluster.Cluster
	compiler atomic.Pointer[query.Compiler] // replaced by ReloadSchema
	reload   reloader
	wss      *ws.Server
	idx      *index
	met      *metrics
	om       *opsMetrics

	admin    registry      // initialised connections and revocations, for the admin API
	fleet    *fleet        // the admin API's actions on every node; set by Start before serving
	tracer   trace.Tracer  // nil: tracing off (Config.TracerProvider)
	idPrefix string        // random, per node start: the connection ids' prefix
	connSeq  atomic.Uint64 // the connection ids' counter
	guards   *guards
	edge     *edge
	sm       *streamMetrics // graphql-sse single connection mode (sse_forward.go)
	reg      *prometheus.Registry
	mux      *http.ServeMux // the public listener's: /graphql, /healthz, bare /readyz
	ops      *http.ServeMux // the ops listener's: /metrics, detailed /readyz, pprof

	sched *scheduler // routes events on workers, by subject

	mu          sync.Mutex // guards started, consumer, consumerErr, stopRetry, httpSrv, ln, opsSrv, opsLn
	started     bool
	consumer    *cluster.Consumer // nil until it starts (retryConsumer)
	consumerErr error             // why it has not started yet
	stopRetry   context.CancelFunc
	stopStreams func() // stops answering other nodes' stream calls (sse_forward.go)
	httpSrv     *http.Server
	ln          net.Listener
	opsSrv      *http.Server // nil without Config.OpsListen
	opsLn       net.Listener

	shutdown  atomic.Bool    // Shutdown began
	draining  atomic.Bool    // Drain or Shutdown began: /readyz answers 503
	refusing  atomic.Bool    // upgrades are refused (503): Drain's delay is over, or Shutdown began
	consuming atomic.Bool    // the event consumer runs: without it a subscription would miss events
	bg        sync.WaitGroup // the HTTP serve goroutine

	checksMu sync.Mutex
	checks   []readiness // guarded by checksMu
}

// readiness is an extra /readyz check, e.g. a bridge's.
type readiness struct {
	name     string
	required bool
	check    func() error
}

// AddReadiness adds a check to /readyz. While it returns an error, /readyz
// names the check and the error; if required, the node also reports not
// ready (503), else it stays ready (200) and reports itself degraded.
func (n *Node) AddReadiness(name string, required bool, check func() error) {
	n.checksMu.Lock()
	defer n.checksMu.Unlock()
	n.checks = append(n.checks, readiness{name, required, check})
}

// New builds a node on an open cluster connection. The caller keeps
// ownership of cl and closes it after Shutdown.
func New(cfg Config, cl *cluster.Cluster) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger,
		cl:       cl,
		idx:      newIndex(),
		reg:      prometheus.NewRegistry(),
		idPrefix: fmt.Sprintf("%08x", rand.Uint32()),
		// A connection may be pushed every event of a batch: keep a batch
		// well inside its write queue.
	}
	n.compiler.Store(query.NewCompiler(cfg.Schema, cfg.queryOptions(), cfg.PlanCache))
	n.reload = newReloader(n.reg)
	if cfg.TracerProvider != nil {
		n.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	n.sched = newScheduler(n, runtime.GOMAXPROCS(0))
	n.met = newMetrics(n.reg, func() float64 { _, p := n.idx.counts(); return float64(p) })
	n.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fraiseql_routing_backlog_events",
			Help: "Events received and waiting for a routing worker (all subjects).",
		}, func() float64 { return float64(n.sched.queued.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fraiseql_routing_overflows_total",
			Help: "Times a subject's events arrived faster than its subscriptions could be routed: its backlog was dropped and its connections closed with 1013 to resume by cursor.",
		}, func() float64 { return float64(n.sched.overflows.Load()) }),
	)
	n.guards = newGuards(cfg.Limits, n.reg)
	n.edge = newEdge(cfg, n.guards.refused, n.reg)
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.reg.MustRegister(cl.Collectors()...)
	wsOpts := cfg.WS
	wsOpts.NodeID = n.idPrefix // stream tokens name the node that holds them
	n.wss = ws.NewServer(n, wsOpts)
	n.registerStreamMetrics()
	for path, v := range map[string]func() uint64{
		"direct": func() uint64 { d, _ := n.wss.FlushStats(); return d },
		"writer": func() uint64 { _, h := n.wss.FlushStats(); return h },
	} {
		n.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fraiseql_connection_flushes_total",
			Help:        "Connection writes of a write round, by path: direct (one non-blocking write by the round itself) or writer (handed to the connection's write goroutine: busy or slow socket).",
			ConstLabels: prometheus.Labels{"path": path},
		}, func() float64 { return float64(v()) }))
	}
	for _, c := range []struct {
		name, help string
		v          func() uint64
	}{
		{"fraiseql_flushes_total", "Write rounds: each writes every connection that was queued events since the last (and is not held for coalescing).",
			func() uint64 { r, _, _ := n.wss.RoundStats(); return r }},
		{"fraiseql_flushed_connections_total", "Connections written by write rounds (one write for all the events a connection was queued in the round).",
			func() uint64 { _, c, _ := n.wss.RoundStats(); return c }},
		{"fraiseql_write_holds_total", "Connection writes held for coalescing (ws.coalesce_delay): the connection was written less than the delay ago.",
			func() uint64 { _, _, h := n.wss.RoundStats(); return h }},
	} {
		n.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(c.v()) }))
	}
	n.registerIOUringMetrics(cfg.WS.IOUring)
	for side, v := range map[string]func() uint64{
		"in":  func() uint64 { in, _ := n.wss.CompressionStats(); return in },
		"out": func() uint64 { _, out := n.wss.CompressionStats(); return out },
	} {
		n.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fraiseql_compression_bytes_total",
			Help:        "Bytes compressed (ws.compression, ws.sse_compression), by side: in (WebSocket next messages, once per connection, and SSE writes) and out (what they took compressed); in - out is what compression saved on the wire.",
			ConstLabels: prometheus.Labels{"side": side},
		}, func() float64 { return float64(v()) }))
	}
	n.registerQueueMetrics()
	n.registerOpsMetrics()

	healthz := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }
	n.mux = http.NewServeMux()
	n.mux.Handle("/graphql", n.edge.proxies.forwarded(n.wss))
	n.mux.HandleFunc("/healthz", healthz)
	n.mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { n.serveReady(w, r, false) })

	n.ops = http.NewServeMux()
	n.ops.HandleFunc("/healthz", healthz)
	n.ops.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { n.serveReady(w, r, true) })
	n.ops.Handle("/metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	n.ops.HandleFunc("/debug/pprof/", pprof.Index)
	n.ops.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	n.ops.HandleFunc("/debug/pprof/profile", pprof.Profile)
	n.ops.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	n.ops.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if cfg.AdminToken != "" {
		n.ops.Handle("/admin/", n.adminHandler())
	}
	return n, nil
}

// Handler returns the node's public HTTP handler: /graphql, /healthz and
// /readyz as a bare status ("ready" or "not ready", 200 or 503), with no
// detail that would tell a client about the node's internals.
func (n *Node) Handler() http.Handler { return n.mux }

// OpsHandler returns the node's operations handler, served on
// Config.OpsListen: /metrics, /healthz, /readyz with the reason of every
// failing or degraded check, and Go's profiles under /debug/pprof/.
// Keep it off the public network.
func (n *Node) OpsHandler() http.Handler { return n.ops }

// Registry returns the node's Prometheus registry, so that other components
// (bridges) can add their collectors to /metrics.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Start starts the node's JetStream consumer and serves HTTP on ln (nil: listen on
// Config.Listen). It returns once the node is serving.
func (n *Node) Start(ctx context.Context, ln net.Listener) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shutdown.Load() || n.started {
		return errors.New("node: already started or shut down")
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", n.cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", n.cfg.Listen, err)
		}
	}
	var opsLn net.Listener
	if n.cfg.OpsListen != "" {
		var err error
		if opsLn, err = net.Listen("tcp", n.cfg.OpsListen); err != nil {
			ln.Close()
			return fmt.Errorf("ops_listen %s: %w", n.cfg.OpsListen, err)
		}
	}
	if n.cfg.AdminToken != "" {
		f, err := n.startFleet(ctx)
		if err != nil {
			ln.Close()
			if opsLn != nil {
				opsLn.Close()
			}
			return fmt.Errorf("admin API: cluster-wide actions: %w", err)
		}
		n.fleet = f
	}
	stopStreams, err := n.serveStreams()
	if err != nil {
		n.fleet.stop()
		n.fleet = nil
		ln.Close()
		if opsLn != nil {
			opsLn.Close()
		}
		return fmt.Errorf("graphql-sse streams: %w", err)
	}
	n.stopStreams = stopStreams
	n.sched.start()
	n.started = true
	if consumer, err := n.cl.Consume(ctx, n.dispatch); err == nil {
		n.consumer = consumer
		n.consuming.Store(true)
	} else {
		// The stream exists (cluster.Open made sure), so this is the
		// broker's passing state: replicas not ready, a leader election.
		// Serve meanwhile, not ready, and keep trying.
		n.log.Warn("event consumer not started; retrying (the node reports not ready until it starts)", "err", err)
		n.consumerErr = err
		rctx, cancel := context.WithCancel(context.Background())
		n.stopRetry = cancel
		n.bg.Go(func() { n.retryConsumer(rctx) }) // owned by n.bg; Shutdown cancels it
	}
	ln = n.edge.listen(ln) // pending caps, upgrade_timeout, PROXY protocol
	n.ln = ln
	n.httpSrv = &http.Server{Handler: n.mux, ReadHeaderTimeout: 10 * time.Second, ConnState: n.edge.connState}
	n.serve(n.httpSrv, ln, "http server")
	if opsLn != nil {
		n.opsSrv, n.opsLn = &http.Server{Handler: n.ops, ReadHeaderTimeout: 10 * time.Second}, opsLn
		n.serve(n.opsSrv, opsLn, "ops server")
	}
	return nil
}

// consumerRetryMax bounds the wait between two attempts to start the
// consumer; it doubles from 100 ms.
const consumerRetryMax = 5 * time.Second

// retryConsumer starts the consumer that Start could not, with backoff,
// until it starts or ctx ends (Shutdown).
func (n *Node) retryConsumer(ctx context.Context) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, consumerRetryMax) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		consumer, err := n.cl.Consume(sctx, n.dispatch)
		cancel()
		n.mu.Lock()
		switch {
		case err == nil && ctx.Err() != nil: // Shutdown ran meanwhile
			n.mu.Unlock()
			consumer.Stop()
			return
		case err == nil:
			n.consumer, n.consumerErr = consumer, nil
			n.consuming.Store(true)
			n.mu.Unlock()
			n.log.Info("event consumer started; the node is ready")
			return
		}
		n.consumerErr = err
		n.mu.Unlock()
		n.log.Warn("event consumer not started; retrying", "err", err, "retry_in", min(2*wait, consumerRetryMax))
	}
}

// serve runs srv on ln on a goroutine of n.bg, until srv shuts down.
func (n *Node) serve(srv *http.Server, ln net.Listener, what string) {
	n.bg.Add(1)
	go func() { // owned by n.bg; ends when srv shuts down
		defer n.bg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error(what+" stopped", "err", err)
		}
	}()
}

// Addr returns the address the node listens on, once started.
func (n *Node) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// OpsAddr returns the address of the ops listener (Config.OpsListen), once
// started; "" when there is none.
func (n *Node) OpsAddr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.opsLn == nil {
		return ""
	}
	return n.opsLn.Addr().String()
}

// Drain stops the node gently, for a rolling restart behind a load
// balancer: /readyz answers 503 at once while the node still serves and
// accepts connections for Config.DrainDelay (the balancer's health checks
// take it out of rotation meanwhile); then new upgrades are refused and the
// open connections are closed with 1001 spread over Config.DrainWindow in
// random order (their clients reconnect elsewhere and resume by cursor,
// not all at once); then Shutdown. Both waits end early when ctx is done,
// and are cut to fit ctx's deadline (a quarter of what is left for the
// delay, half for the window, the rest for Shutdown).
func (n *Node) Drain(ctx context.Context) error {
	if n.draining.Swap(true) || n.shutdown.Load() {
		return n.Shutdown(ctx)
	}
	delay, window := n.cfg.DrainDelay, n.cfg.DrainWindow
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		delay, window = min(delay, left/4), min(window, left/2)
	}
	n.log.Info("draining: /readyz answers 503; closing connections after the delay", "delay", delay, "window", window, "connections", n.wss.Conns())
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	n.refusing.Store(true)
	if ctx.Err() == nil {
		_ = n.wss.CloseSpread(ctx, window) // ends early only with ctx
	}
	return n.Shutdown(ctx)
}

// Shutdown stops the node: /readyz turns 503 and new upgrades are refused,
// every WebSocket is closed with 1001 (clients reconnect elsewhere and
// resume by cursor), then the HTTP server and the consumer stop. It waits
// for all of the node's goroutines or ctx, and is idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
	n.draining.Store(true)
	n.refusing.Store(true)
	if !n.shutdown.CompareAndSwap(false, true) {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, shutdownGrace)
		defer cancel()
	}
	// net/http does not close hijacked connections: ws tracks and closes them.
	err := n.wss.Shutdown(ctx)
	n.mu.Lock()
	if n.stopRetry != nil {
		n.stopRetry()
	}
	srv, opsSrv := n.httpSrv, n.opsSrv
	if n.stopStreams != nil {
		n.stopStreams() // its streams closed above
		n.stopStreams = nil
	}
	n.mu.Unlock()
	if srv != nil {
		err = errors.Join(err, srv.Shutdown(ctx))
	}
	if opsSrv != nil { // last: it reported 503 on /readyz meanwhile
		err = errors.Join(err, opsSrv.Shutdown(ctx))
	}
	n.bg.Wait()    // the servers and the consumer's retries have ended
	n.fleet.stop() // no admin request runs any more
	n.mu.Lock()
	consumer := n.consumer
	n.mu.Unlock()
	if consumer != nil {
		consumer.Stop()
	}
	n.sched.shutdown()
	return err
}

// serveReady answers /readyz: 200 when the node can serve, else 503. With
// detail (the ops listener) it names each failing or degraded check;
// without (the public listener) it says only "ready" or "not ready".
func (n *Node) serveReady(w http.ResponseWriter, r *http.Request, detail bool) {
	ready, lines := n.readiness(r.Context())
	switch {
	case !ready && !detail:
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	case !ready:
		http.Error(w, "not ready: "+lines[0], http.StatusServiceUnavailable)
	case !detail || len(lines) == 0:
		fmt.Fprintln(w, "ready")
	default:
		fmt.Fprintln(w, "ready (degraded)")
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

// readiness reports whether the node can serve; if not, lines holds the
// reason, else the checks that fail without making it unready (degraded).
// It answers from state the node keeps, sending no request (bridges'
// checks read their own state too).
func (n *Node) readiness(ctx context.Context) (ready bool, lines []string) {
	if n.draining.Load() {
		return false, []string{"shutting down"}
	}
	if err := n.cl.Ready(); err != nil {
		return false, []string{err.Error()}
	}
	n.mu.Lock()
	started, why := n.consumer != nil, n.consumerErr
	n.mu.Unlock()
	if !started {
		if why != nil {
			return false, []string{"event consumer not started: " + why.Error()}
		}
		return false, []string{"event consumer not started"}
	}
	n.checksMu.Lock()
	checks := slices.Clone(n.checks)
	n.checksMu.Unlock()
	var degraded []string
	for _, c := range checks {
		err := c.check()
		switch {
		case err == nil:
		case c.required:
			return false, []string{c.name + ": " + err.Error()}
		default:
			degraded = append(degraded, c.name+": "+err.Error())
		}
	}
	return true, degraded
}

// registerIOUringMetrics exports the write rounds' use of io_uring
// (ws.io_uring) and logs once whether they use it.
func (n *Node) registerIOUringMetrics(mode ws.IOUringMode) {
	used := 0.0
	switch err := ws.IOUringStatus(); {
	case mode == ws.IOUringOff:
		n.log.Info("write rounds use write(2): ws.io_uring is off")
	case err != nil:
		n.log.Info("write rounds use write(2): io_uring unavailable", "reason", err)
	default:
		used = 1
		n.log.Info("write rounds use io_uring")
	}
	n.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fraiseql_io_uring_enabled",
			Help: "1 if write rounds send through io_uring (ws.io_uring, and the kernel allows it), 0 if they use write(2).",
		}, func() float64 {
			if used == 1 && ws.IOUringStatus() != nil {
				return 0 // a ring failed since: write(2) from then on
			}
			return used
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fraiseql_io_uring_submits_total",
			Help: "io_uring_enter calls of write rounds (each sends up to 64 connection writes).",
		}, func() float64 { s, _ := n.wss.IOUringStats(); return float64(s) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fraiseql_io_uring_sends_total",
			Help: "Connection writes of write rounds sent through io_uring.",
		}, func() float64 { _, s := n.wss.IOUringStats(); return float64(s) }),
	)
}
