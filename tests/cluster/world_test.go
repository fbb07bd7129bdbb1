//go:build chaos

package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// natsServer is one server of the NATS cluster: fixed client, route and
// monitoring ports and a store dir, so that a restart rejoins as itself.
type natsServer struct {
	*proc
	serverName string
	port       int // client
	routePort  int
	httpPort   int
}

func (s *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// healthy reports whether the server's JetStream is up and current
// (the monitoring endpoint /healthz answers 200).
func (s *natsServer) healthy() bool {
	return s.running() && httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.httpPort))
}

// connections is the number of client connections the server has
// (from /varz); -1 when it cannot tell.
func (s *natsServer) connections() int {
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", s.httpPort))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct {
		Connections int `json:"connections"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return -1
	}
	return v.Connections
}

// consumerLeaders counts, by server name, the stream's consumers each
// server leads (from /jsz; the nodes' ordered consumers are R1, so their
// leader is their only home). Empty when the server cannot tell.
func (s *natsServer) consumerLeaders() map[string]int {
	out := map[string]int{}
	resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz?accounts=true&consumers=true", s.httpPort))
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var v struct {
		Accounts []struct {
			Streams []struct {
				Name      string `json:"name"`
				Consumers []struct {
					Name    string `json:"name"`
					Cluster struct {
						Leader string `json:"leader"`
					} `json:"cluster"`
				} `json:"consumer_detail"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return out
	}
	for _, a := range v.Accounts {
		for _, st := range a.Streams {
			for _, c := range st.Consumers {
				out[c.Cluster.Leader]++
			}
		}
	}
	return out
}

// waitHealthy waits until the server is healthy.
func (s *natsServer) waitHealthy() error {
	return poll(startTimeout, func() error {
		if !s.running() {
			return fmt.Errorf("%s exited (%s)", s.name, s.exitState())
		}
		if !s.healthy() {
			return fmt.Errorf("%s: /healthz not 200: %w", s.name, errNotYet)
		}
		return nil
	})
}

// node is one fraiseql-node process. Each run listens on new random
// ports; ws is the current run's endpoint.
type node struct {
	*proc
	idx int

	mu  sync.Mutex
	ws  string // ws://127.0.0.1:port/graphql
	ops string // host:port of the operations listener (/metrics)
	// live: clients may (re)connect here; false from the moment the test
	// stops or drains it (a load balancer watching /readyz would stop
	// routing to it then).
	live atomic.Bool
}

func (n *node) endpoint() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ws
}

var (
	wsAddrRE  = regexp.MustCompile(`ws://(127\.0\.0\.1:\d+)/graphql`)
	opsAddrRE = regexp.MustCompile(`operations:\s+http://(127\.0\.0\.1:\d+)/metrics`)
)

// metric reads the value of an unlabelled counter or gauge from the
// node's /metrics.
func (n *node) metric(name string) (float64, error) {
	n.mu.Lock()
	ops := n.ops
	n.mu.Unlock()
	if ops == "" {
		return 0, fmt.Errorf("%s printed no operations address", n.name)
	}
	resp, err := httpClient.Get("http://" + ops + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no metric %s", n.name, name)
}

// startAndWait starts the node and waits for its banner and /readyz.
func (n *node) startAndWait() error {
	if err := n.start(); err != nil {
		return err
	}
	var addr string
	err := poll(startTimeout, func() error {
		if !n.running() {
			return fmt.Errorf("%s exited at start (%s)", n.name, n.exitState())
		}
		m := wsAddrRE.FindStringSubmatch(n.logText())
		if m == nil {
			return fmt.Errorf("%s printed no address: %w", n.name, errNotYet)
		}
		addr = m[1]
		if !httpOK("http://" + addr + "/readyz") {
			return fmt.Errorf("%s: /readyz not 200: %w", n.name, errNotYet)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ops := opsAddrRE.FindStringSubmatch(n.logText())
	n.mu.Lock()
	n.ws = "ws://" + addr + "/graphql"
	n.ops = ""
	if ops != nil {
		n.ops = ops[1]
	}
	n.mu.Unlock()
	n.live.Store(true)
	return nil
}

// worldConfig sizes a world.
type worldConfig struct {
	nodeEnv []string // extra FRAISEQL_* settings for every node
	nodes   int      // how many nodes; 0 means 3
}

// ingestEnv is the nodes' ingest mode setting from CHAOS_INGEST
// ("stream" or "interest"; unset: the node's default), so that the whole
// suite can run in either mode.
func ingestEnv() []string {
	if m := os.Getenv("CHAOS_INGEST"); m != "" {
		return []string{"FRAISEQL_NATS_INGEST=" + m}
	}
	return nil
}

// world is one test's cluster: 3 NATS servers and 3 nodes, with their
// logs in dir (kept, and their tails printed, when the test fails).
type world struct {
	t     *testing.T
	dir   string
	nats  []*natsServer
	nodes []*node
	start time.Time

	mu    sync.Mutex
	names map[string]string // endpoint → node name, over every run
}

// nameOf names the node (or proxy) behind a client endpoint.
func (w *world) nameOf(ep string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.names[ep]; ok {
		return n
	}
	return ep
}

func (w *world) setName(ep, name string) {
	w.mu.Lock()
	w.names[ep] = name
	w.mu.Unlock()
}

// Settings every node gets: the R3 stream, the limits a test load hits
// raised, a short drain.
var baseNodeEnv = []string{
	"FRAISEQL_NATS_REPLICAS=3",
	"FRAISEQL_LIMITS_CONN_RATE_PER_IP=-1",
	"FRAISEQL_LIMITS_MAX_CONNS_PER_USER=-1",
	"FRAISEQL_LIMITS_SUBSCRIBE_RATE=-1",
	"FRAISEQL_LIMITS_EVENT_RATE=-1",
	"FRAISEQL_LIMITS_MAX_PENDING_CONNS_PER_IP=-1", // every client is 127.0.0.1
	"FRAISEQL_SHUTDOWN_DRAIN_DELAY=300ms",
	"FRAISEQL_SHUTDOWN_DRAIN_WINDOW=1s",
	"FRAISEQL_LOG_LEVEL=info",
}

// newWorld starts the NATS cluster, waits until every server is healthy,
// then starts the nodes one after another (the first creates the stream).
// Settings in cfg.nodeEnv win over CHAOS_INGEST's.
func newWorld(t *testing.T, cfg worldConfig) *world {
	t.Helper()
	dir, err := os.MkdirTemp("", "fraiseql-chaos-"+t.Name()+"-")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, dir: dir, start: time.Now(), names: map[string]string{}}
	t.Cleanup(w.close)

	ports, err := freePorts(9)
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3*i+1]))
	}
	for i := range 3 {
		s := &natsServer{serverName: fmt.Sprintf("s%d", i+1), port: ports[3*i], routePort: ports[3*i+1], httpPort: ports[3*i+2]}
		conf := filepath.Join(dir, s.serverName+".conf")
		store := filepath.Join(dir, s.serverName+"-store")
		text := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 2MB
jetstream { store_dir: %q }
cluster {
  name: fraiseql-chaos
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, s.serverName, s.port, s.httpPort, store, s.routePort, strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		s.proc = &proc{name: "nats-" + s.serverName, bin: bins.nats, args: []string{"-c", conf}, env: childEnv(), dir: dir}
		if err := s.start(); err != nil {
			t.Fatal(err)
		}
		w.nats = append(w.nats, s)
	}
	for _, s := range w.nats {
		if err := s.waitHealthy(); err != nil {
			t.Fatalf("NATS cluster: %v", err)
		}
	}
	env := childEnv(append(append(append([]string(nil), baseNodeEnv...), ingestEnv()...), cfg.nodeEnv...)...)
	nodes := cfg.nodes
	if nodes == 0 {
		nodes = 3
	}
	for i := range nodes {
		data := filepath.Join(dir, fmt.Sprintf("node%d-data", i+1))
		n := &node{idx: i, proc: &proc{
			name: fmt.Sprintf("node%d", i+1),
			bin:  bins.node,
			args: []string{"serve", "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0", "--data-dir", data, "--nats-url", w.natsURLs()},
			env:  env,
			dir:  dir,
		}}
		if err := n.startAndWait(); err != nil {
			t.Fatalf("nodes: %v", err)
		}
		w.setName(n.endpoint(), n.name)
		w.nodes = append(w.nodes, n)
	}
	t.Logf("world up in %v: NATS %s; nodes %s (logs in %s)", time.Since(w.start).Round(time.Millisecond), w.natsURLs(), strings.Join(w.endpoints(), " "), dir)
	return w
}

// natsURLs lists the 3 servers, comma-separated.
func (w *world) natsURLs() string {
	var us []string
	for _, s := range w.nats {
		us = append(us, s.url())
	}
	return strings.Join(us, ",")
}

// endpoints are the WebSocket endpoints of the live nodes.
func (w *world) endpoints() []string {
	var eps []string
	for _, n := range w.nodes {
		if n.live.Load() {
			eps = append(eps, n.endpoint())
		}
	}
	return eps
}

// server returns the NATS server named name ("s1").
func (w *world) server(name string) *natsServer {
	for _, s := range w.nats {
		if s.serverName == name {
			return s
		}
	}
	w.t.Fatalf("no NATS server %q", name)
	return nil
}

// killNode SIGKILLs node n.
func (w *world) killNode(n *node) {
	w.t.Helper()
	n.live.Store(false)
	if err := n.signal(syscall.SIGKILL); err != nil {
		w.t.Fatal(err)
	}
	if err := n.wait(exitTimeout); err != nil {
		w.t.Fatal(err)
	}
}

// drainNode SIGTERMs node n and waits until it has exited by itself.
func (w *world) drainNode(n *node) {
	w.t.Helper()
	n.live.Store(false)
	if err := n.stop(syscall.SIGTERM, exitTimeout); err != nil {
		w.t.Fatalf("%s did not drain: %v", n.name, err)
	}
	if st := n.exitState(); st != "exit status 0" {
		w.t.Errorf("%s after SIGTERM: %s, want exit status 0", n.name, st)
	}
}

// restartNode starts a stopped node again and waits until it is ready.
func (w *world) restartNode(n *node) {
	w.t.Helper()
	if err := n.startAndWait(); err != nil {
		w.t.Fatal(err)
	}
	w.setName(n.endpoint(), n.name)
}

// killServer SIGKILLs NATS server s.
func (w *world) killServer(s *natsServer) {
	w.t.Helper()
	if err := s.signal(syscall.SIGKILL); err != nil {
		w.t.Fatal(err)
	}
	if err := s.wait(exitTimeout); err != nil {
		w.t.Fatal(err)
	}
}

// restartServer starts a stopped NATS server again (same ports, same
// store) and waits until it is healthy: JetStream caught up.
func (w *world) restartServer(s *natsServer) time.Duration {
	w.t.Helper()
	start := time.Now()
	var err error
	for range 20 { // the ports were just released; a restart may race their reuse
		if err = s.start(); err != nil {
			break
		}
		if err = s.waitHealthy(); err == nil || s.running() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		w.t.Fatalf("restart %s: %v", s.name, err)
	}
	return time.Since(start)
}

// close kills every child still running; on failure it prints the tail
// of every log and keeps the directory.
func (w *world) close() {
	var ps []*proc
	for _, n := range w.nodes {
		ps = append(ps, n.proc)
	}
	for _, s := range w.nats {
		ps = append(ps, s.proc)
	}
	for _, p := range ps {
		if p.running() {
			_ = p.signal(syscall.SIGKILL)
		}
	}
	for _, p := range ps {
		if err := p.wait(exitTimeout); err != nil {
			w.t.Errorf("cleanup: %v", err)
		}
	}
	if w.t.Failed() {
		for _, p := range ps {
			w.t.Logf("log of %s:\n%s", p.name, p.tail(60))
		}
		w.t.Logf("logs kept in %s", w.dir)
		return
	}
	if os.Getenv("CHAOS_KEEP_LOGS") != "" {
		w.t.Logf("logs kept in %s (CHAOS_KEEP_LOGS)", w.dir)
		return
	}
	os.RemoveAll(w.dir)
}
