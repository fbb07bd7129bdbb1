package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
	compiler *query.Compiler
	wss      *ws.Server
	idx      *index
	met      *metrics
	guards   *guards
	reg      *prometheus.Registry
	mux      *http.ServeMux

	// Only the consumer goroutine uses these (route and flush).
	scratch    []byte    // route's projection buffer
	dirty      []sink    // subscriptions whose connection awaits a Flush
	unflushed  int       // events routed since the last flush
	flushEvery int       // flush at least every this many events
	lastFlush  time.Time // kept when WriteDelay is set

	mu       sync.Mutex // guards consumer, httpSrv, ln
	consumer *cluster.Consumer
	httpSrv  *http.Server
	ln       net.Listener

	shutdown atomic.Bool
	bg       sync.WaitGroup // the HTTP serve goroutine

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
		compiler: query.NewCompiler(cfg.Schema, cfg.queryOptions(), cfg.PlanCache),
		idx:      newIndex(),
		reg:      prometheus.NewRegistry(),
		// A connection may be pushed every event of a batch: keep a batch
		// well inside its write queue.
		flushEvery: max(1, min(64, cmp.Or(max(cfg.WS.WriteQueue, 0), ws.DefaultWriteQueue)/4)),
	}
	n.met = newMetrics(n.reg, func() float64 { _, p := n.idx.counts(); return float64(p) })
	n.guards = newGuards(cfg.Limits, n.reg)
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.reg.MustRegister(cl.Collectors()...)
	n.wss = ws.NewServer(n, cfg.WS)
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
	n.registerQueueMetrics()

	n.mux = http.NewServeMux()
	n.mux.Handle("/graphql", n.wss)
	n.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	n.mux.HandleFunc("/readyz", n.serveReady)
	n.mux.Handle("/metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	return n, nil
}

// Handler returns the node's HTTP handler: /graphql, /healthz, /readyz, /metrics.
func (n *Node) Handler() http.Handler { return n.mux }

// Registry returns the node's Prometheus registry, so that other components
// (bridges) can add their collectors to /metrics.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Start starts the node's JetStream consumer and serves HTTP on ln (nil: listen on
// Config.Listen). It returns once the node is serving.
func (n *Node) Start(ctx context.Context, ln net.Listener) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shutdown.Load() || n.consumer != nil {
		return errors.New("node: already started or shut down")
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", n.cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", n.cfg.Listen, err)
		}
	}
	consumer, err := n.cl.ConsumeBatches(ctx, n.route, n.idle)
	if err != nil {
		ln.Close()
		return fmt.Errorf("start consumer: %w", err)
	}
	n.consumer, n.ln = consumer, ln
	n.httpSrv = &http.Server{Handler: n.mux, ReadHeaderTimeout: 10 * time.Second}
	n.bg.Add(1)
	go func() { // owned by n.bg; ends when httpSrv shuts down
		defer n.bg.Done()
		if err := n.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
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

// Shutdown stops the node: /readyz turns 503 and new upgrades are refused,
// every WebSocket is closed with 1001 (clients reconnect elsewhere and
// resume by cursor), then the HTTP server and the consumer stop. It waits
// for all of the node's goroutines or ctx, and is idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
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
	srv, consumer := n.httpSrv, n.consumer
	n.mu.Unlock()
	if srv != nil {
		err = errors.Join(err, srv.Shutdown(ctx))
	}
	if consumer != nil {
		consumer.Stop()
	}
	n.bg.Wait()
	return err
}

func (n *Node) serveReady(w http.ResponseWriter, r *http.Request) {
	if n.shutdown.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := n.cl.Ready(ctx); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	n.mu.Lock()
	started := n.consumer != nil
	n.mu.Unlock()
	if !started {
		http.Error(w, "not ready: consumer not started", http.StatusServiceUnavailable)
		return
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
			http.Error(w, "not ready: "+c.name+": "+err.Error(), http.StatusServiceUnavailable)
			return
		default:
			degraded = append(degraded, c.name+": "+err.Error())
		}
	}
	if len(degraded) > 0 {
		fmt.Fprintln(w, "ready (degraded)")
		for _, d := range degraded {
			fmt.Fprintln(w, d)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}
