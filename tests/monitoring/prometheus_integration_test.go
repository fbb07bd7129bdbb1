//go:build integration

package monitoring

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.yaml.in/yaml/v3"

	"github.com/fraiseql/subscriptions/bridges/redis"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/node"
	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// TestDashboardsAndAlertsReturnData starts a node (embedded NATS, the
// Redis bridge), drives a scripted session through it (subscribe,
// publish, a refused subscribe, a slow client cut off, a resume), has a
// real Prometheus scrape its ops listener, then evaluates every panel
// expression of every dashboard and every alert expression through
// Prometheus's HTTP API: each must return data. A misspelt metric, a
// label that does not exist or a broken expression fails here.
func TestDashboardsAndAlertsReturnData(t *testing.T) {
	prom := tool(t, "prometheus")
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	n, cl := startNode(t, redisURL)
	promURL := startPrometheus(t, prom, n.OpsAddr())

	session(t, n, cl)
	// rate() over the dashboards' windows needs two scrapes after the session.
	waitScrapes(t, promURL, 4)

	var exprs []string
	dashboards, _ := filepath.Glob(repoPath(t, "ops/grafana/dashboards/*.json"))
	if len(dashboards) != 3 {
		t.Fatalf("found %d dashboards, want 3", len(dashboards))
	}
	for _, f := range dashboards {
		exprs = append(exprs, panelExprs(t, f)...)
	}
	alerts := alertExprs(t, repoPath(t, "ops/prometheus/rules/fraiseql.rules.yml"))
	if len(alerts) < 8 {
		t.Fatalf("found %d alert rules", len(alerts))
	}
	for _, e := range alerts {
		exprs = append(exprs, asBool(e))
	}
	t.Logf("%d expressions (%d alerts)", len(exprs), len(alerts))
	for _, e := range exprs {
		if got := queryCount(t, promURL, e); got == 0 {
			t.Errorf("no data: %s", e)
		}
	}
	if dir := os.Getenv("FRAISEQL_DASHBOARD_DATA"); dir != "" && !t.Failed() {
		renderData(t, n, cl, promURL, dashboards, dir)
	}
}

// comparison matches a comparison with a number literal, to be made bool.
var comparison = regexp.MustCompile(`\s(==|!=|>=|<=|>|<)\s+(-?[0-9][0-9.]*)`)

// asBool makes an alert expression's comparisons return 0 or 1 instead of
// filtering, so that it returns data on a healthy node too.
func asBool(expr string) string { return comparison.ReplaceAllString(expr, " $1 bool $2") }

func panelExprs(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", file, p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

func alertExprs(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

func startNode(t *testing.T, redisURL string) (*node.Node, *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cl, err := cluster.Open(ctx, cluster.Config{URL: clustertest.RunServer(t)}, log)
	if err != nil {
		t.Fatal(err)
	}
	sdl, err := os.ReadFile(repoPath(t, "cmd/fraiseql-node/demo.graphql"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := query.LoadSchema("demo.graphql", string(sdl))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{
		Listen: "127.0.0.1:0", OpsListen: "127.0.0.1:0", Schema: schema, Logger: log,
		MetricsTenants: []string{"public"},
		// Small queues, so that a client that stops reading is cut off soon.
		// A scripted load from one address: the per-user and per-subscription rates would refuse it.
		Limits: limits.Config{ConnRatePerIP: -1, SubscribeRate: -1, EventRate: -1, MaxEventBytes: 64 << 10},
		WS:     ws.Options{MaxQueuedBytes: 128 << 10, WriteTimeout: 2 * time.Second},
	}, cl)
	if err != nil {
		t.Fatal(err)
	}
	b, err := redis.New(redis.Config{URL: redisURL, Prefix: fmt.Sprintf("mon%d", time.Now().UnixNano()), LeaseTTL: time.Second}, cl, log)
	if err != nil {
		t.Fatal(err)
	}
	n.Registry().MustRegister(b.Collectors()...)
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() { // owned by the test: cancelled and waited for at cleanup
		defer close(bdone)
		_ = b.Run(bctx)
	}()
	if err := n.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bcancel()
		<-bdone
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		cl.Close()
	})
	// The bridge reports a leader once Redis answers: without Redis the
	// test cannot tell a bridge panel from a broken one.
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := b.Status()
		if len(st) > 0 && st[0].Leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Redis bridge never led (status %+v): start Redis on %s (REDIS_URL), e.g. redis-server --port 6379", st, redisURL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n, cl
}

// startPrometheus runs prometheus scraping target every second with the
// repository's alert rules, and returns its base URL.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: fraiseql
    static_configs:
      - targets: [%q]
`, repoPath(t, "ops/prometheus/rules/fraiseql.rules.yml"), target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := promClient.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s after 30s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queryCount runs an instant query and returns how many series it
// returned; a query Prometheus refuses fails the test.
func queryCount(t *testing.T, base, expr string) int {
	t.Helper()
	resp, err := promClient.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if r.Status != "success" {
		t.Errorf("%s: %s", expr, r.Error)
		return -1
	}
	return len(r.Data.Result)
}

// waitScrapes waits until Prometheus holds k more samples of up than now.
func waitScrapes(t *testing.T, base string, k int) {
	t.Helper()
	count := func() int {
		resp, err := promClient.Get(base + "/api/v1/query?query=" + url.QueryEscape(`count_over_time(up{job="fraiseql"}[10m])`))
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Result) == 0 {
			return 0
		}
		var v int
		fmt.Sscan(fmt.Sprint(r.Data.Result[0].Value[1]), &v)
		return v
	}
	want := count() + k
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if count() >= want {
			return
		}
	}
	t.Fatalf("prometheus did not scrape the node %d more times in 30s", k)
}

// client is a minimal graphql-transport-ws client.
type client struct {
	t *testing.T
	c *websocket.Conn
}

func dial(t *testing.T, n *node.Node) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+n.Addr()+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	g := &client{t, c}
	g.send(`{"type":"connection_init"}`)
	if typ, _ := g.read(); typ != "connection_ack" {
		t.Fatalf("got %s, want connection_ack", typ)
	}
	return g
}

func (g *client) send(msg string) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		g.t.Fatal(err)
	}
}

// read returns the next message other than the node's keep-alive pings
// (answered with a pong) and pongs.
func (g *client) read() (typ string, payload json.RawMessage) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, b, err := g.c.Read(ctx)
		if err != nil {
			g.t.Fatal(err)
		}
		var m struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			g.t.Fatal(err)
		}
		switch m.Type {
		case "ping":
			g.send(`{"type":"pong"}`)
		case "pong":
		default:
			return m.Type, m.Payload
		}
	}
}

func (g *client) subscribe(id, room, cursor string) {
	ext := ""
	if cursor != "" {
		ext = fmt.Sprintf(`,"extensions":{"cursor":%q}`, cursor)
	}
	g.send(fmt.Sprintf(`{"id":%q,"type":"subscribe","payload":{"query":"subscription { messageAdded(room: \"%s\") { id text } }"%s}}`, id, room, ext))
}

// cursor reads one next message and returns its cursor.
func (g *client) cursor() string {
	g.t.Helper()
	typ, p := g.read()
	if typ != "next" {
		g.t.Fatalf("got %s %s, want next", typ, p)
	}
	var v struct {
		Extensions struct {
			Cursor string `json:"cursor"`
		} `json:"extensions"`
	}
	json.Unmarshal(p, &v)
	return v.Extensions.Cursor
}

// session is the scripted session: subscribe, publish, a refused
// subscribe, a slow client cut off, a resume.
func session(t *testing.T, n *node.Node, cl *cluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	publish := func(room string, k, size int) {
		for i := range k {
			body := fmt.Sprintf(`{"id":"%d","room":%q,"text":%q}`, i, room, strings.Repeat("x", size))
			if _, err := cl.Publish(ctx, "public", "chat."+room, []byte(body), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	a := dial(t, n)
	a.subscribe("1", "r1", "")
	waitFor(t, "a subscription", func() bool { return n.Stats().Subscriptions == 1 })
	publish("r1", 5, 10)
	first := a.cursor()
	for range 4 {
		a.cursor()
	}

	// Refused: a field that does not exist.
	a.send(`{"id":"2","type":"subscribe","payload":{"query":"subscription { nope }"}}`)
	if typ, _ := a.read(); typ != "error" {
		t.Fatalf("a bad subscribe got %s, want error", typ)
	}

	// Resume from the first event: four to replay.
	b := dial(t, n)
	b.subscribe("1", "r1", first)
	for range 4 {
		b.cursor()
	}

	slowClient(t, n, cl)
	a.c.CloseNow()
	b.c.CloseNow()
}

// slowClient subscribes a client to a room of large events that it never
// reads, and publishes until the node cuts it off.
func slowClient(t *testing.T, n *node.Node, cl *cluster.Cluster) {
	slow := dial(t, n)
	subs := n.Stats().Subscriptions
	slow.subscribe("1", "big", "")
	waitFor(t, "the slow client's subscription", func() bool { return n.Stats().Subscriptions > subs })
	before := n.Stats().SlowClients
	body := []byte(fmt.Sprintf(`{"id":"1","room":"big","text":%q}`, strings.Repeat("x", 60<<10)))
	for i := 0; i < 400 && n.Stats().SlowClients == before; i++ { // 24 MiB at most: past any socket buffer
		if _, err := cl.Publish(t.Context(), "public", "chat.big", body, ""); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the client that never reads to be cut off", func() bool { return n.Stats().SlowClients > before })
	slow.c.CloseNow()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
