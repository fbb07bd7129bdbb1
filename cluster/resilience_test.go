package cluster_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// TestConsumeSurvivesServerRestart restarts the only server (same port,
// same store) under a running consumer: events published after the
// restart are delivered, in order, with no gap.
func TestConsumeSurvivesServerRestart(t *testing.T) {
	s := clustertest.StartServer(t, clustertest.Options(t.TempDir()))
	c := open(t, cluster.Config{URL: s.ClientURL()})
	events := make(chan *cluster.Event, 100)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()

	first := mustPublish(t, c, "acme", "chat", `{"n":1}`, "")
	if e := recv(t, events, 10*time.Second); e.Seq != first.Seq {
		t.Fatalf("seq %d, want %d", e.Seq, first.Seq)
	}

	clustertest.RestartServer(t, s)
	checkFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		return c.Ready()
	})

	var want []uint64
	for i := range 5 {
		want = append(want, mustPublish(t, c, "acme", "chat", `{"n":`+string(rune('2'+i))+`}`, "").Seq)
	}
	for _, w := range want {
		// The ordered consumer re-creates itself after the reconnect
		// (with backoff), so allow for a few seconds.
		if e := recv(t, events, 30*time.Second); e.Seq != w {
			t.Fatalf("after restart: seq %d, want %d", e.Seq, w)
		}
	}
	if got := testutil.ToFloat64(c.Collectors()[2].(prometheus.Counter)); got < 1 {
		t.Fatalf("reconnects = %v, want >= 1", got)
	}
}

// TestConsumeDeliversEventsStoredDuringOutage publishes while this node is
// cut off (straight to the restarted server from another connection)
// before the consumer has delivered anything: nothing may be lost.
func TestConsumeDeliversEventsStoredDuringOutage(t *testing.T) {
	s := clustertest.StartServer(t, clustertest.Options(t.TempDir()))
	c := open(t, cluster.Config{URL: s.ClientURL()})
	events := make(chan *cluster.Event, 100)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()

	s = clustertest.RestartServer(t, s)
	other := open(t, cluster.Config{URL: s.ClientURL()})
	r := mustPublish(t, other, "acme", "chat", "{}", "")
	if e := recv(t, events, 30*time.Second); e.Seq != r.Seq {
		t.Fatalf("seq %d, want %d", e.Seq, r.Seq)
	}
}

// TestR3Cluster runs the stream with 3 replicas on 3 routed servers,
// with the node connected to all of them.
func TestR3Cluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	urls, _ := clustertest.RunCluster(t, 3)
	c := open(t, cluster.Config{URL: strings.Join(urls, ","), Replicas: 3})
	if got := streamConfig(t, c, "EVENTS").Replicas; got != 3 {
		t.Fatalf("replicas = %d, want 3", got)
	}
	// The cursor key is as durable as the events it serves.
	if got := streamConfig(t, c, "KV_"+cluster.CursorKeyBucket).Replicas; got != 3 {
		t.Fatalf("bucket %s replicas = %d, want 3", cluster.CursorKeyBucket, got)
	}
	// A second node on another server sees the same stream and cursors.
	c2 := open(t, cluster.Config{URL: urls[2], Replicas: 3})
	events := make(chan *cluster.Event, 100)
	k, err := c2.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	var want []uint64
	for range 10 {
		want = append(want, mustPublish(t, c, "acme", "chat", "{}", "").Seq)
	}
	for _, w := range want {
		e := recv(t, events, 10*time.Second)
		if e.Seq != w {
			t.Fatalf("seq %d, want %d", e.Seq, w)
		}
		if seq, err := c.ParseCursor(e.Tenant, e.Cursor); err != nil || seq != w {
			t.Fatalf("cursor from node 2 on node 1: %d, %v", seq, err)
		}
	}
	seqs, last, err := replayAll(t, c2, "acme", "chat", want[4])
	if err != nil || last != want[9] || !equal(seqs, want[5:]) {
		t.Fatalf("Replay = %v, last %d, %v", seqs, last, err)
	}
}

// TestCloseWhileServerDown closes a node whose server is gone, with a
// consumer and a lease running: Close must return promptly and leave no
// goroutine behind (TestMain checks).
func TestCloseWhileServerDown(t *testing.T) {
	s := clustertest.StartServer(t, clustertest.Options(t.TempDir()))
	c, err := cluster.Open(testCtx(t), cluster.Config{URL: s.ClientURL()}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Consume(testCtx(t), func(*cluster.Event) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lease(testCtx(t), "x", time.Second); err != nil {
		t.Fatal(err)
	}
	clustertest.StopServer(s)
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if c.Ready() == nil {
			return errTest("still ready")
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // let the consumer start re-creating itself
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

// TestEmbeddedCluster starts three nodes, each embedding a server routed
// to the others, and creates an R3 stream on them: the scale-out shape
// without external NATS.
func TestEmbeddedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	var routes []string
	var ports []int
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		routes = append(routes, "nats://"+l.Addr().String())
		l.Close()
	}
	nodes := make([]*cluster.Cluster, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			c, err := cluster.Open(testCtx(t), cluster.Config{
				Replicas: 3,
				Name:     "node" + strconv.Itoa(i),
				Embedded: cluster.EmbeddedConfig{
					StoreDir:    t.TempDir(),
					ServerName:  "n" + strconv.Itoa(i),
					ClusterName: "fq",
					ClusterPort: ports[i],
					Routes:      routes,
				},
			}, testLog())
			nodes[i] = c
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, c := range nodes {
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	events := make(chan *cluster.Event, 10)
	k, err := nodes[2].Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	r := mustPublish(t, nodes[0], "acme", "chat", "{}", "")
	if e := recv(t, events, 10*time.Second); e.Seq != r.Seq {
		t.Fatalf("seq %d, want %d", e.Seq, r.Seq)
	}
	if got := streamConfig(t, nodes[1], "EVENTS").Replicas; got != 3 {
		t.Fatalf("replicas %d, want 3", got)
	}
}
