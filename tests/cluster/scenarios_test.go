//go:build chaos

package cluster

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The standard load: two rooms, clients spread over the three nodes.
var twoRooms = []string{"r1", "r2"}

func standard(w *world) *scenario {
	n := size(45, 300)
	rate := float64(size(30, 50))
	return start(w, twoRooms, rate, 16, func(w *world) []clientConfig { return spread(w, n, twoRooms) })
}

// TestNodeSIGKILL kills a node outright: its clients see the TCP
// connection end, reconnect to the other nodes and resume by cursor. The
// node is then started again and takes clients. Every other client speaks
// GraphQL over SSE and resumes with Last-Event-ID.
func TestNodeSIGKILL(t *testing.T) {
	w := newWorld(t, worldConfig{})
	s := start(w, twoRooms, float64(size(30, 50)), 16, func(w *world) []clientConfig {
		cfgs := spread(w, size(45, 300), twoRooms)
		for i := range cfgs {
			cfgs[i].sse = i%2 == 1
		}
		return cfgs
	})
	s.run(2 * time.Second)
	s.fault("SIGKILL node1")
	w.killNode(w.nodes[0])
	s.run(4 * time.Second)
	w.restartNode(w.nodes[0])
	s.note("node1 restarted %v after the kill", time.Since(s.faultAt).Round(time.Millisecond))
	s.run(3 * time.Second)
	r := s.finish()
	if r.disconnects < len(s.cs.all)/3-1 {
		t.Errorf("%d disconnects, want at least the third of %d clients that were on node1", r.disconnects, len(s.cs.all))
	}
	noCodedErrors(t, r)
}

// TestNodeSIGTERM drains a node: /readyz goes 503, then its connections
// are closed with 1001 over the drain window, and the node exits 0. The
// clients resume elsewhere.
func TestNodeSIGTERM(t *testing.T) {
	onlyFull(t)
	w := newWorld(t, worldConfig{})
	s := standard(w)
	s.run(2 * time.Second)
	s.fault("SIGTERM node1")
	w.drainNode(w.nodes[0])
	s.note("node1 drained and exited in %v", time.Since(s.faultAt).Round(time.Millisecond))
	s.run(3 * time.Second)
	w.restartNode(w.nodes[0])
	s.run(3 * time.Second)
	r := s.finish()
	if r.closes["close 1001"] < len(s.cs.all)/3-1 {
		t.Errorf("%d closes with 1001 (going away), want about a third of %d clients; closes: %s", r.closes["close 1001"], len(s.cs.all), fmtCounts(r.closes))
	}
	noCodedErrors(t, r)
}

// TestRollingRestart drains and restarts every node in turn, as a deploy
// does, waiting for each to be ready before the next.
func TestRollingRestart(t *testing.T) {
	onlyFull(t)
	w := newWorld(t, worldConfig{})
	s := standard(w)
	s.run(2 * time.Second)
	s.fault("rolling restart of node1, node2, node3")
	for _, n := range w.nodes {
		t0 := time.Now()
		w.drainNode(n)
		w.restartNode(n)
		s.note("%s drained and back in %v", n.name, time.Since(t0).Round(time.Millisecond))
		s.run(2 * time.Second)
	}
	s.run(2 * time.Second)
	r := s.finish()
	if r.disconnects < len(s.cs.all) {
		t.Errorf("%d disconnects, want at least one per client (%d): every node was drained", r.disconnects, len(s.cs.all))
	}
	noCodedErrors(t, r)
}

// TestStreamLeaderKilled SIGKILLs the NATS server that leads the R3
// stream: publishes stall until a new leader is elected (and are retried
// with the same Nats-Msg-Id), nodes connected to it reconnect to another
// server. The server is restarted after 5 s.
func TestStreamLeaderKilled(t *testing.T) {
	onlyFull(t)
	w := newWorld(t, worldConfig{})
	s := standard(w)
	s.run(2 * time.Second)
	leader := streamLeader(t, s.pub)
	s.fault(fmt.Sprintf("SIGKILL the stream leader %s (consumers led by server %v)", leader, w.server(leader).consumerLeaders()))
	w.killServer(w.server(leader))
	s.run(5 * time.Second)
	if l, err := s.pub.streamLeader(); err == nil {
		s.note("new stream leader %s", l)
	}
	d := w.restartServer(w.server(leader))
	s.note("%s restarted and healthy in %v", leader, d.Round(time.Millisecond))
	s.run(3 * time.Second)
	r := s.finish()
	noCodedErrors(t, r)
}

// TestFollowerKilledAndRestarted SIGKILLs a NATS server that follows the
// stream (the one hosting the most of the nodes' consumers, then the one
// with the most client connections, so that nodes lose their connection
// too), and restarts it 3 s later.
func TestFollowerKilledAndRestarted(t *testing.T) {
	w := newWorld(t, worldConfig{})
	s := standard(w)
	s.run(2 * time.Second)
	leader := streamLeader(t, s.pub)
	// The worst follower to lose: the one leading the most of the nodes'
	// consumers, then the one with the most client connections.
	var victim *natsServer
	score := func(s *natsServer) int { return 1000*s.consumerLeaders()[s.serverName] + s.connections() }
	for _, srv := range w.nats {
		if srv.serverName != leader && (victim == nil || score(srv) > score(victim)) {
			victim = srv
		}
	}
	s.fault(fmt.Sprintf("SIGKILL follower %s (%d client connections; stream leader %s; consumers led by server %v)",
		victim.serverName, victim.connections(), leader, victim.consumerLeaders()))
	w.killServer(victim)
	s.run(3 * time.Second)
	d := w.restartServer(victim)
	s.note("%s restarted and healthy in %v", victim.serverName, d.Round(time.Millisecond))
	s.run(3 * time.Second)
	r := s.finish()
	noCodedErrors(t, r)
}

// TestNATSServerRestart stops the NATS server with the most client
// connections gracefully (SIGTERM) and starts it again: every node on it
// reconnects to another server, and its replica catches up.
func TestNATSServerRestart(t *testing.T) {
	onlyFull(t)
	w := newWorld(t, worldConfig{})
	s := standard(w)
	s.run(2 * time.Second)
	victim := w.nats[0]
	for _, srv := range w.nats {
		if srv.connections() > victim.connections() {
			victim = srv
		}
	}
	s.fault(fmt.Sprintf("restart NATS server %s (%d client connections; consumers led by server %v)",
		victim.serverName, victim.connections(), victim.consumerLeaders()))
	if err := victim.stop(syscall.SIGTERM, exitTimeout); err != nil {
		t.Fatal(err)
	}
	d := w.restartServer(victim)
	s.note("%s back and healthy in %v", victim.serverName, d.Round(time.Millisecond))
	s.run(4 * time.Second)
	r := s.finish()
	noCodedErrors(t, r)
}

// TestSlowReader has one client stop reading while its room carries big
// events: the node must cut it off (write timeout or full queue) without
// slowing the other clients of the same room on the same node, and the
// client, once it reads again, resumes by cursor with nothing missing.
func TestSlowReader(t *testing.T) {
	w := newWorld(t, worldConfig{nodeEnv: []string{"FRAISEQL_WS_WRITE_TIMEOUT=3s"}})
	rooms := []string{"big", "r1"}
	fast := size(5, 10)
	n := size(30, 150)
	s := start(w, rooms, 30, 32<<10, func(w *world) []clientConfig {
		node1 := w.nodes[0].endpoint()
		cfgs := []clientConfig{{room: "big", withText: true, first: node1, endpoints: w.endpoints, rcvBuf: 4096}}
		for range fast {
			cfgs = append(cfgs, clientConfig{room: "big", withText: true, first: node1, endpoints: w.endpoints})
		}
		for i := range n {
			cfgs = append(cfgs, clientConfig{room: "r1", endpoints: w.endpoints, first: w.endpoints()[i%3]})
		}
		return cfgs
	})
	s.run(2 * time.Second)
	slow := s.cs.all[0]
	pause := 12 * time.Second
	s.fault(fmt.Sprintf("client 0 stops reading for %v (room big, 32 KiB events, 4 KiB receive buffer)", pause))
	slow.pause(pause)
	s.run(pause + 5*time.Second)
	r := s.finish()
	if st := r.perClient[slow]; st.disconnects == 0 {
		t.Errorf("the node never disconnected the client that stopped reading for %v", pause)
	} else {
		t.Logf("slow client: %d disconnects (%s)", st.disconnects, fmtCounts(slow.closes))
	}
	var worst time.Duration
	for _, c := range s.cs.all[1 : 1+fast] {
		st := r.perClient[c]
		if st.disconnects > 0 {
			t.Errorf("fast client %d in the slow client's room was disconnected %d times", c.id, st.disconnects)
		}
		worst = max(worst, st.maxLag)
	}
	t.Logf("fast clients in room big on node1: worst delivery lag %v", worst)
	if worst > pause/2 {
		t.Errorf("fast clients in the slow client's room lagged up to %v: the slow reader held them back", worst)
	}
	noCodedErrors(t, r)
}

// TestProxyLatencyAndResets puts a TCP proxy in front of node1 that adds
// 40 ms each way and, for 10 s, resets a tenth of its connections every
// half second. Clients use the proxy, node2 and node3.
func TestProxyLatencyAndResets(t *testing.T) {
	onlyFull(t)
	w := newWorld(t, worldConfig{})
	p, err := startProxy(hostPort(w.nodes[0].endpoint()), 40*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	proxied := "ws://" + p.addr() + "/graphql"
	w.setName(proxied, "proxy→node1")
	endpoints := func() []string {
		return []string{proxied, w.nodes[1].endpoint(), w.nodes[2].endpoint()}
	}
	n := size(45, 300)
	s := start(w, twoRooms, float64(size(30, 50)), 16, func(w *world) []clientConfig {
		cfgs := spread(w, n, twoRooms)
		for i := range cfgs {
			cfgs[i].endpoints = endpoints
		}
		return cfgs
	})
	s.run(2 * time.Second)
	s.fault(fmt.Sprintf("proxy resets 10%% of its %d connections every 500 ms for 10 s", p.open()))
	for range 20 {
		p.resetFraction(0.1)
		s.run(500 * time.Millisecond)
	}
	s.note("proxy: %d connections accepted, %d reset", p.accepted.Load(), p.resets.Load())
	s.run(3 * time.Second)
	r := s.finish()
	if p.resets.Load() == 0 {
		t.Error("the proxy reset no connection")
	}
	noCodedErrors(t, r)
}

// TestResumeStorm puts every client on node1 and kills it: all of them
// resume by cursor on node2 and node3 at once. Coded errors (a replay
// that failed under the load) are counted and reported; the client
// resubscribes with the same cursor, so sequences must still be exact.
func TestResumeStorm(t *testing.T) {
	onlyFull(t)
	w := newWorld(t, worldConfig{})
	rooms := []string{"r1", "r2", "r3", "r4"}
	n := size(90, 1000)
	s := start(w, rooms, 10, 16, func(w *world) []clientConfig {
		cfgs := spread(w, n, rooms)
		for i := range cfgs {
			cfgs[i].first = w.nodes[0].endpoint()
		}
		return cfgs
	})
	s.run(2 * time.Second)
	s.fault(fmt.Sprintf("SIGKILL node1 with all %d clients", n))
	w.killNode(w.nodes[0])
	s.run(8 * time.Second)
	r := s.finish()
	if r.disconnects < n {
		t.Errorf("%d disconnects, want %d", r.disconnects, n)
	}
	t.Logf("coded errors in the storm: %s (known: replays may fail under a big storm; the clients resubscribe)", fmtCounts(r.errs))
}

// TestInterestSplit runs 4 nodes with nats.ingest: interest, each
// serving the clients of a disjoint quarter of 10,000 subjects (one
// client per subject). Each node must consume at most 30 % of the events
// published (its fraiseql_nats_events_consumed_total: a stream-mode node
// consumes all of them), and every client's sequence must be complete.
func TestInterestSplit(t *testing.T) {
	onlyFull(t)
	const nodes, subjects, maxShare = 4, 10_000, 0.30
	w := newWorld(t, worldConfig{nodes: nodes, nodeEnv: []string{"FRAISEQL_NATS_INGEST=interest"}})
	rooms := make([]string, subjects)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("s%05d", i)
	}
	// 500 events/s in all: each subject's every 20 s.
	perRoom := 500.0 / subjects
	s := start(w, rooms, perRoom, 16, func(w *world) []clientConfig {
		cfgs := make([]clientConfig, subjects)
		for i := range cfgs {
			n := w.nodes[i%nodes] // subject i is served by node i mod 4 only
			cfgs[i] = clientConfig{room: rooms[i], first: n.endpoint(), endpoints: func() []string { return []string{n.endpoint()} }}
		}
		return cfgs
	})
	s.fault("none: every subject gets events for 20 s more")
	s.run(20 * time.Second)
	r := s.finish()
	published := r.acked + r.unacked
	for _, n := range w.nodes {
		consumed, err := n.metric("fraiseql_nats_events_consumed_total")
		if err != nil {
			t.Fatal(err)
		}
		share := consumed / float64(published)
		s.note("%s consumed %.0f of %d events published (%.1f %%)", n.name, consumed, published, 100*share)
		if share > maxShare {
			t.Errorf("%s consumed %.1f %% of the events published, want at most %.0f %%", n.name, 100*share, 100*maxShare)
		}
		if consumed == 0 {
			t.Errorf("%s consumed nothing", n.name)
		}
	}
	t.Log(strings.Join(s.notes, "; "))
	noCodedErrors(t, r)
}

// noCodedErrors fails the test on any coded error a client received.
func noCodedErrors(t *testing.T, r *result) {
	t.Helper()
	if len(r.errs) > 0 {
		t.Errorf("clients received coded errors: %s", fmtCounts(r.errs))
	}
}

func streamLeader(t *testing.T, p *publisher) string {
	t.Helper()
	var leader string
	if err := poll(30*time.Second, func() error {
		var err error
		leader, err = p.streamLeader()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return leader
}

// hostPort is the host:port of a ws:// URL.
func hostPort(wsURL string) string {
	const pre = "ws://"
	s := wsURL[len(pre):]
	for i := range len(s) {
		if s[i] == '/' {
			return s[:i]
		}
	}
	return s
}
