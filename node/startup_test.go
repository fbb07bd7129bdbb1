package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// readyz returns the status and body of the ops handler's /readyz, and
// how long it took.
func readyz(t *testing.T, ops *httptest.Server) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(ops.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}

// A consumer that cannot start yet (the broker's passing state: here the
// stream is gone for a while) does not stop the node: it serves, reports
// not ready with the reason, keeps trying, and is ready once the consumer
// starts.
func TestStartRetriesTheConsumer(t *testing.T) {
	url := clustertest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	cl, err := cluster.Open(ctx, cluster.Config{URL: url}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.JetStream().DeleteStream(ctx, cl.StreamName()); err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Schema: testSchema(t), Logger: log}, cl)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx, ln); err != nil {
		t.Fatalf("Start with the stream missing: %v, want it to serve and retry", err)
	}
	ops := httptest.NewServer(n.OpsHandler())
	defer ops.Close()
	if code, body, _ := readyz(t, ops); code != http.StatusServiceUnavailable || !strings.Contains(body, "event consumer not started") {
		t.Fatalf("before the consumer starts: %d %q, want 503 naming the consumer", code, body)
	}
	// Nor does it take subscribers it could not serve without a gap.
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	_, wsResp, err := websocket.Dial(dctx, "ws://"+n.Addr()+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	dcancel()
	if err == nil || wsResp == nil || wsResp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade before the consumer starts: %v, want 503", err)
	}
	cl2, err := cluster.Open(ctx, cluster.Config{URL: url}, log) // recreates the stream
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body, _ := readyz(t, ops)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not ready 20 s after the stream came back: %d %q", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Readiness answers from the node's own state: with NATS gone it says so
// at once (it used to wait for a stream info request to time out).
func TestReadinessAnswersAtOnceWithoutNATS(t *testing.T) {
	s := clustertest.StartServer(t, clustertest.Options(t.TempDir()))
	_, ops := startedNode(t, s.ClientURL())
	if code, body, _ := readyz(t, ops); code != http.StatusOK {
		t.Fatalf("with NATS: %d %q", code, body)
	}
	clustertest.StopServer(s)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, took := readyz(t, ops)
		if took > time.Second {
			t.Fatalf("/readyz took %v with NATS down", took)
		}
		if code == http.StatusServiceUnavailable && strings.Contains(body, "nats:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d %q 10 s after NATS stopped", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A broker-wide outage that every node sees alike — here no stream
// request is answered (the stream is gone, as while it is recreated or
// its replicas have lost their quorum) — does not make a connected node
// unready: answering 503 from every node at once would take the whole
// cluster out of its load balancer. The answer is immediate (it used to
// wait for a stream info request, and answer 503).
func TestReadinessIgnoresStreamOutage(t *testing.T) {
	url := clustertest.RunServer(t)
	cl, ops := startedNode(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.JetStream().DeleteStream(ctx, cl.StreamName()); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.JetStream().Stream(ctx, cl.StreamName()); err == nil {
		t.Fatal("the stream still answers; the test sets up nothing")
	}
	for range 5 {
		code, body, took := readyz(t, ops)
		if code != http.StatusOK || took > time.Second {
			t.Fatalf("connected, stream not answering: %d %q in %v, want 200 at once", code, body, took)
		}
	}
}

// startedNode starts a node on the NATS server at url and serves its ops
// handler; both stop at the end of the test.
func startedNode(t *testing.T, url string) (*cluster.Cluster, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	cl, err := cluster.Open(ctx, cluster.Config{URL: url}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	n, err := New(Config{Schema: testSchema(t), Logger: log}, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx, ln); err != nil {
		t.Fatal(err)
	}
	ops := httptest.NewServer(n.OpsHandler())
	t.Cleanup(ops.Close)
	return cl, ops
}
