// Package clustertest runs in-process NATS JetStream servers for tests:
// one server, a routed cluster of n, and stop/restart helpers. Every
// server listens on loopback on a random port (never 4222) and is shut
// down in t.Cleanup.
package clustertest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds every wait for a server or cluster to come up.
const readyTimeout = 30 * time.Second

// options remembers how each server was started, so RestartServer can
// start an identical one (same ports, same store directory).
var options sync.Map // *server.Server -> *server.Options

// maxPayload lets a default 1 MiB event plus its headers through, as a
// production server configured for FraiseQL would (NATS's own default,
// 1 MiB, counts headers too and would lower cluster's event size limit).
const maxPayload = 2 << 20

// Options returns the options RunServer uses, with StoreDir set to dir:
// JetStream on, 127.0.0.1, a random port, 2 MiB max_payload, no logging,
// no signal handlers.
func Options(dir string) *server.Options {
	return &server.Options{
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		MaxPayload: maxPayload,
		NoLog:      true,
		NoSigs:     true,
	}
}

// RunServer starts a JetStream server on 127.0.0.1 with a random port
// and StoreDir t.TempDir(), and returns its client URL.
func RunServer(t testing.TB) (url string) {
	t.Helper()
	return StartServer(t, Options(t.TempDir())).ClientURL()
}

// StartServer starts a server with opts, waits until it accepts
// connections and shuts it down in t.Cleanup.
func StartServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	s, err := startServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopServer(s) })
	return s
}

func startServer(opts *server.Options) (*server.Server, error) {
	o := *opts
	s, err := server.NewServer(&o)
	if err != nil {
		return nil, fmt.Errorf("clustertest: new server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("clustertest: server not ready after %v", readyTimeout)
	}
	options.Store(s, &o)
	return s, nil
}

// StopServer shuts s down and waits until it has. It is safe to call
// more than once.
func StopServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
	options.Delete(s)
}

// RestartServer stops s and starts a new server with the same options,
// on the same client port (and cluster port) and store directory, so
// clients reconnect to it and JetStream recovers its streams. The new
// server is shut down in t.Cleanup.
func RestartServer(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	v, ok := options.Load(s)
	if !ok {
		t.Fatal("clustertest: RestartServer: server was not started by clustertest")
	}
	o := *v.(*server.Options)
	o.Port = s.Addr().(*net.TCPAddr).Port
	if ca := s.ClusterAddr(); ca != nil {
		o.Cluster.Port = ca.Port
	}
	StopServer(s)
	// The port was just released; another process may grab it in
	// between, which would fail the test loudly rather than silently.
	var ns *server.Server
	var err error
	for range 20 {
		if ns, err = startServer(&o); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("clustertest: restart on port %d: %v", o.Port, err)
	}
	t.Cleanup(func() { StopServer(ns) })
	return ns
}

// RunCluster starts n routed JetStream servers on loopback (random client
// ports, cluster "fraiseql-test", servers "s1".."sn") and waits until the
// JetStream meta group has a leader and every server is current. It
// returns their client URLs and the servers.
func RunCluster(t testing.TB, n int) (urls []string, servers []*server.Server) {
	t.Helper()
	if n < 1 {
		t.Fatalf("clustertest: RunCluster(%d)", n)
	}
	// Routes must be known up front (nats-server sizes the JetStream meta
	// group from them), so reserve the route ports first.
	ports := freePorts(t, n)
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	for i := range n {
		o := Options(t.TempDir())
		o.ServerName = "s" + strconv.Itoa(i+1)
		o.Cluster = server.ClusterOpts{Name: "fraiseql-test", Host: "127.0.0.1", Port: ports[i]}
		o.Routes = routes
		s := StartServer(t, o)
		servers = append(servers, s)
		urls = append(urls, s.ClientURL())
	}
	WaitJetStreamReady(t, servers)
	return urls, servers
}

// WaitJetStreamReady waits until one of servers is the JetStream meta
// leader and all of them are current.
func WaitJetStreamReady(t testing.TB, servers []*server.Server) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		leader, current := false, true
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				leader = true
			}
			if !s.JetStreamIsCurrent() {
				current = false
			}
		}
		if leader && current {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("clustertest: no JetStream meta leader after %v", readyTimeout)
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("clustertest: reserve port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
