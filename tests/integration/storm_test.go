//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// The resume storm: the clients of a node that died all resume, at once,
// on one node. Every client holds the cursor of an event of its room and
// has missed the later ones; while the storm runs, every room keeps
// getting live events. A client is live once it got an event published
// after it sent its subscribe; it must get there within stormDeadline,
// with no error, and with every event of its room after its cursor exactly
// once, in order.
//
// The clients run in a child process (this test binary again, running
// TestResumeStormClients): 10,000 clients and the node's 10,000 server
// sockets do not fit one process's file limit.
//
// Size: FRAISEQL_STORM_CLIENTS (default 1,000, a few seconds; the target
// is 10,000):
//
//	FRAISEQL_STORM_CLIENTS=10000 go test -tags integration -count=1 -v -run '^TestResumeStorm$' ./tests/integration/
const (
	stormDeadline = 10 * time.Second
	stormRooms    = 100
	stormHistory  = 10 // events per room before the storm; cursors at the 2nd
	stormTick     = 200 * time.Millisecond
	stormDials    = 512 // handshakes in flight: under the listen backlog (somaxconn)
	stormQuery    = `subscription($room: ID!) { messageAdded(room: $room) { id createdAt } }`
)

// stormSpec is what the parent tells the client process.
type stormSpec struct {
	URL     string
	Clients int
	Cursors []string // per room
	Next    []int    // per room: the id of the first event after the cursor
	Out     string   // result file
}

// stormResult is what the client process reports.
type stormResult struct {
	Live    []float64 // per live client: seconds from the storm's start
	Acked   []float64 // per live client: seconds from the storm's start to connection_ack
	Resume  []float64 // per live client: seconds from its subscribe to live
	Errors  []string  // the first few
	NErrors int
}

func TestResumeStorm(t *testing.T) {
	clients := 1000
	if s := os.Getenv("FRAISEQL_STORM_CLIENTS"); s != "" {
		var err error
		if clients, err = strconv.Atoi(s); err != nil || clients < 1 {
			t.Fatalf("FRAISEQL_STORM_CLIENTS=%q: want a positive count", s)
		}
	}
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) {
		c.Limits.ConnRatePerIP, c.Limits.MaxConnsPerUser, c.Limits.SubscribeRate = -1, -1, -1
		// Every client of this storm comes from 127.0.0.1; a real one comes
		// from many addresses (or names them through a trusted proxy).
		c.Limits.MaxPendingConnsPerIP = -1
	})
	// History: stormHistory events per room, rooms interleaved.
	spec := stormSpec{URL: e.ws, Clients: clients, Cursors: make([]string, stormRooms), Next: make([]int, stormRooms)}
	ids := make([]int, stormRooms) // last id published per room
	publish := func(room int) {
		ids[room]++
		body := fmt.Sprintf(`{"id":"%d","room":"r%d","text":"x","createdAt":"%d"}`, ids[room], room, time.Now().UnixNano())
		pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := e.cl.Publish(pctx, "public", fmt.Sprintf("chat.r%d", room), []byte(body), "")
		if err != nil {
			t.Errorf("publish: %v", err)
			return
		}
		seq := r.Seq
		if ids[room] == 2 {
			spec.Cursors[room] = e.cl.Cursor("public", seq)
			spec.Next[room] = 3
		}
	}
	for range stormHistory {
		for r := range stormRooms {
			publish(r)
		}
	}
	dir := t.TempDir()
	spec.Out = filepath.Join(dir, "result.json")
	specFile := filepath.Join(dir, "spec.json")
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(specFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// Live events during the storm, every stormTick for every room.
	stop := make(chan struct{})
	var pub sync.WaitGroup
	pub.Add(1)
	go func() { // owned by pub; ends when stop closes
		defer pub.Done()
		tick := time.NewTicker(stormTick)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for r := range stormRooms {
					publish(r)
				}
			}
		}
	}()

	cmd := exec.Command(os.Args[0], "-test.run=^TestResumeStormClients$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FRAISEQL_STORM_SPEC="+specFile)
	out, err := cmd.CombinedOutput()
	close(stop)
	pub.Wait()
	if err != nil {
		t.Fatalf("client process: %v\n%s", err, out)
	}
	var res stormResult
	if data, err = os.ReadFile(spec.Out); err != nil {
		t.Fatalf("client process wrote no result: %v\n%s", err, out)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	quantiles := func(xs []float64) func(float64) float64 {
		slices.Sort(xs)
		return func(p float64) float64 {
			if len(xs) == 0 {
				return 0
			}
			return xs[min(len(xs)-1, int(p*float64(len(xs))))]
		}
	}
	q, qa, qr := quantiles(res.Live), quantiles(res.Acked), quantiles(res.Resume)
	t.Logf("%d clients, %d rooms: %d live; time to live p50 %.2fs, p99 %.2fs, max %.2fs; %d errors",
		clients, stormRooms, len(res.Live), q(0.5), q(0.99), q(1), res.NErrors)
	t.Logf("connection_ack p50 %.2fs, max %.2fs; subscribe to live p50 %.2fs, p99 %.2fs, max %.2fs (live events every %v)",
		qa(0.5), qa(1), qr(0.5), qr(0.99), qr(1), stormTick)
	t.Logf("node: replays ok %v, busy %v, shared %v, stream info requests %v",
		nodeMetricLabel(t, e, "fraiseql_replays_total", "ok"), nodeMetricLabel(t, e, "fraiseql_replays_total", "busy"),
		nodeMetric(t, e, "fraiseql_replay_shared_total"), nodeMetric(t, e, "fraiseql_replay_stream_info_total"))
	if res.NErrors > 0 {
		t.Errorf("%d clients failed; first: %v", res.NErrors, res.Errors)
	}
	if len(res.Live) != clients {
		t.Errorf("%d of %d clients went live", len(res.Live), clients)
	}
	if m := q(1); m > stormDeadline.Seconds() {
		t.Errorf("the last client went live after %.2fs, want within %v", m, stormDeadline)
	}
	// No consumer but the node's own.
	st, err := e.cl.JetStream().Stream(context.Background(), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Consumers; n != 1 {
		t.Errorf("stream has %d consumers after the storm, want 1 (the node's)", n)
	}
}

// nodeMetricLabel returns the node's metric name{label value}.
func nodeMetricLabel(t testing.TB, e *env, name, value string) float64 {
	t.Helper()
	mfs, err := e.node.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestResumeStormClients is the client process of TestResumeStorm; it
// does nothing unless FRAISEQL_STORM_SPEC names a spec.
func TestResumeStormClients(t *testing.T) {
	file := os.Getenv("FRAISEQL_STORM_SPEC")
	if file == "" {
		t.Skip("the client process of TestResumeStorm")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var spec stormSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*stormDeadline+20*time.Second)
	defer cancel()
	var (
		mu     sync.Mutex
		res    stormResult
		wg     sync.WaitGroup
		dials  = make(chan struct{}, stormDials)
		start  = make(chan struct{})
		failed atomic.Int64
	)
	fail := func(i int, err error) {
		failed.Add(1)
		mu.Lock()
		res.NErrors++
		if len(res.Errors) < 10 {
			res.Errors = append(res.Errors, fmt.Sprintf("client %d: %v", i, err))
		}
		mu.Unlock()
	}
	var t0 time.Time
	for i := range spec.Clients {
		wg.Add(1)
		go func() { // owned by wg; bounded by ctx
			defer wg.Done()
			<-start
			room := i % len(spec.Cursors)
			acked, live, err := stormClient(ctx, dials, spec, room)
			if err != nil {
				fail(i, err)
				return
			}
			mu.Lock()
			res.Live = append(res.Live, live.Sub(t0).Seconds())
			res.Acked = append(res.Acked, acked.Sub(t0).Seconds())
			res.Resume = append(res.Resume, live.Sub(acked).Seconds())
			mu.Unlock()
		}()
	}
	t0 = time.Now()
	close(start)
	wg.Wait()
	out, _ := json.Marshal(res)
	if err := os.WriteFile(spec.Out, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// stormClient resumes one room and returns when it subscribed (right
// after its connection_ack) and when it went live.
func stormClient(ctx context.Context, dials chan struct{}, spec stormSpec, room int) (sent, live time.Time, _ error) {
	dials <- struct{}{}
	c, _, err := websocket.Dial(ctx, spec.URL, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		<-dials
		return sent, time.Time{}, fmt.Errorf("dial: %w", err)
	}
	defer c.CloseNow()
	write := func(msg string) error { return c.Write(ctx, websocket.MessageText, []byte(msg)) }
	if err := write(`{"type":"connection_init"}`); err != nil {
		<-dials
		return sent, time.Time{}, err
	}
	var m struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	var next struct {
		Data struct {
			MessageAdded struct{ ID, CreatedAt string } `json:"messageAdded"`
		} `json:"data"`
	}
	for m.Type != "connection_ack" {
		_, data, err := c.Read(ctx)
		if err != nil {
			<-dials
			return sent, time.Time{}, fmt.Errorf("waiting for ack: %w", err)
		}
		json.Unmarshal(data, &m)
	}
	<-dials
	sent = time.Now()
	sub, _ := json.Marshal(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": stormQuery, "variables": map[string]any{"room": fmt.Sprintf("r%d", room)},
		"extensions": map[string]any{"cursor": spec.Cursors[room]},
	}})
	if err := write(string(sub)); err != nil {
		return sent, time.Time{}, err
	}
	want := spec.Next[room]
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return sent, time.Time{}, fmt.Errorf("after id %d: %w", want-1, err)
		}
		m.Type = ""
		if err := json.Unmarshal(data, &m); err != nil {
			return sent, time.Time{}, err
		}
		switch m.Type {
		case "ping":
			write(`{"type":"pong"}`)
			continue
		case "pong":
			continue
		case "next":
		default:
			return sent, time.Time{}, fmt.Errorf("after id %d: %s", want-1, data)
		}
		if err := json.Unmarshal(m.Payload, &next); err != nil {
			return sent, time.Time{}, fmt.Errorf("%w: %s", err, data)
		}
		got := next.Data.MessageAdded
		if got.ID != strconv.Itoa(want) {
			return sent, time.Time{}, fmt.Errorf("room r%d: got id %s, want %d (gap or duplicate)", room, got.ID, want)
		}
		want++
		if ns, _ := strconv.ParseInt(got.CreatedAt, 10, 64); ns > sent.UnixNano() {
			live = time.Now()
			c.Close(websocket.StatusNormalClosure, "")
			return sent, live, nil
		}
	}
}
