package cluster_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  cluster.Config
		key  string // "" means valid
	}{
		{"zero value", cluster.Config{}, ""},
		{"external", cluster.Config{URL: "nats://a:4222,nats://b:4222", User: "u", Password: "p"}, ""},
		{"prefix with dot", cluster.Config{Prefix: "a.b"}, "nats.prefix"},
		{"prefix wildcard", cluster.Config{Prefix: ">"}, "nats.prefix"},
		{"stream with dot", cluster.Config{Stream: "EV.ENTS"}, "nats.stream"},
		{"negative max age", cluster.Config{MaxAge: -time.Second}, "nats.max_age"},
		{"max bytes below -1", cluster.Config{MaxBytes: -2}, "nats.max_bytes"},
		{"replicas", cluster.Config{Replicas: 7}, "nats.replicas"},
		{"max msg size", cluster.Config{MaxMsgSize: -1}, "nats.max_msg_size"},
		{"dup window over max age", cluster.Config{MaxAge: time.Minute, DuplicateWindow: time.Hour}, "nats.duplicate_window"},
		{"cert without key", cluster.Config{URL: "nats://x", TLSCert: "c.pem"}, "nats.tls_cert"},
		{"bad port", cluster.Config{Embedded: cluster.EmbeddedConfig{Port: 70000}}, "nats.embedded.port"},
		{"creds for embedded", cluster.Config{Token: "t"}, "nats.url"},
		{"empty url entry", cluster.Config{URL: "nats://a:4222,"}, "nats.url"},
		{"max replays negative", cluster.Config{MaxReplays: -1}, "nats.max_replays"},
		{"max replays 1", cluster.Config{MaxReplays: 1}, ""},
		{"max replay queue unbounded", cluster.Config{MaxReplayQueue: -1}, ""},
		{"max replay queue below -1", cluster.Config{MaxReplayQueue: -2}, "nats.max_replay_queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.key+":") {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.key)
			}
		})
	}
}

func TestOpenEmbeddedRandomPort(t *testing.T) {
	c := open(t, cluster.Config{})
	u, err := url.Parse(c.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	if host != "127.0.0.1" || port == "4222" || port == "0" {
		t.Fatalf("embedded server at %s, want 127.0.0.1 on a random port (not 4222)", c.ClientURL())
	}
	if err := c.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if c.Prefix() != "fraiseql" {
		t.Fatalf("Prefix = %q", c.Prefix())
	}
	if !c.Conn().IsConnected() || c.JetStream() == nil {
		t.Fatal("not connected")
	}
}

func TestOpenExternal(t *testing.T) {
	url := clustertest.RunServer(t)
	c := open(t, cluster.Config{URL: url, Name: "node-a"})
	if err := c.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got := c.ClientURL(); got != url {
		t.Fatalf("ClientURL = %q, want %q", got, url)
	}
}

func TestOpenUnreachableHonoursContext(t *testing.T) {
	// A port nobody listens on: Open retries until ctx ends.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := cluster.Open(ctx, cluster.Config{URL: "nats://" + addr}, testLog()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open = %v, want DeadlineExceeded", err)
	}
}

func streamConfig(t *testing.T, c *cluster.Cluster, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := c.JetStream().Stream(testCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config
}

func TestStreamSettingsCreatedAndUpdated(t *testing.T) {
	url := clustertest.RunServer(t)
	cfg := cluster.Config{
		URL: url, Prefix: "fq", Stream: "EV", MaxAge: time.Hour, MaxBytes: 64 << 20,
		MaxMsgSize: 4096, DuplicateWindow: time.Minute,
	}
	c1 := open(t, cfg)
	got := streamConfig(t, c1, "EV")
	want := jetstream.StreamConfig{
		Subjects: []string{"fq.>"}, Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage,
		MaxAge: time.Hour, MaxBytes: 64 << 20, Replicas: 1, Duplicates: time.Minute, Discard: jetstream.DiscardOld,
	}
	if strings.Join(got.Subjects, ",") != "fq.>" || got.Retention != want.Retention || got.Storage != want.Storage ||
		got.MaxAge != want.MaxAge || got.MaxBytes != want.MaxBytes || got.Replicas != 1 ||
		got.Duplicates != want.Duplicates || got.Discard != want.Discard || got.MaxMsgSize < 4096 {
		t.Fatalf("stream config = %+v", got)
	}
	id := c1.StreamIDForTest()

	cfg.MaxAge = 2 * time.Hour
	c2 := open(t, cfg)
	if got := streamConfig(t, c2, "EV"); got.MaxAge != 2*time.Hour {
		t.Fatalf("MaxAge after second Open = %v, want 2h", got.MaxAge)
	}
	if c2.StreamIDForTest() != id {
		t.Fatal("updating the stream changed its identity")
	}
	// Cursors survive an update.
	if _, err := c2.ParseCursor("acme", c1.Cursor("acme", 7)); err != nil {
		t.Fatalf("ParseCursor across update: %v", err)
	}
}

func TestOpenIncompatibleStream(t *testing.T) {
	url := clustertest.RunServer(t)
	c := open(t, cluster.Config{URL: url, Stream: "OTHER", Prefix: "other"})
	// Someone made EVENTS a memory work queue; storage cannot be changed.
	if _, err := c.JetStream().CreateStream(testCtx(t), jetstream.StreamConfig{
		Name: "EVENTS", Subjects: []string{"fraiseql.>"}, Storage: jetstream.MemoryStorage, Retention: jetstream.WorkQueuePolicy,
	}); err != nil {
		t.Fatal(err)
	}
	_, err := cluster.Open(testCtx(t), cluster.Config{URL: url}, testLog())
	if err == nil || !strings.Contains(err.Error(), `"EVENTS"`) {
		t.Fatalf("Open = %v, want an error naming the stream", err)
	}
	t.Log(err)
}

func TestCloseIdempotentAndErrClosed(t *testing.T) {
	c, err := cluster.Open(testCtx(t), cluster.Config{Embedded: cluster.EmbeddedConfig{StoreDir: t.TempDir()}}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.Consume(testCtx(t), func(*cluster.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	k.Stop() // after Close: still fine
	if _, err := c.Publish(testCtx(t), "a", "b", nil, ""); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Publish after Close = %v", err)
	}
	if _, err := c.Consume(testCtx(t), func(*cluster.Event) {}); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Consume after Close = %v", err)
	}
	if _, err := c.Replay(testCtx(t), "a", "b", 0, nil); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Replay after Close = %v", err)
	}
	if err := c.Ready(); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Ready after Close = %v", err)
	}
}

func TestPublishConsumeOrder(t *testing.T) {
	c := open(t, cluster.Config{})
	before := mustPublish(t, c, "acme", "chat.r1", `{"n":-1}`, "") // stored before Consume: not delivered
	events := make(chan *cluster.Event, 100)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()

	topics := []string{"chat.r1", "orders.7", "metrics", "chat.r1"}
	var seqs []uint64
	for i := range 20 {
		r := mustPublish(t, c, "acme", topics[i%len(topics)], `{"n":`+strconv.Itoa(i)+`}`, "")
		seqs = append(seqs, r.Seq)
	}
	for i := range 20 {
		e := recv(t, events, 10*time.Second)
		if e.Seq != seqs[i] || e.Seq <= before.Seq {
			t.Fatalf("event %d: seq %d, want %d", i, e.Seq, seqs[i])
		}
		if e.Tenant != "acme" || e.Topic != topics[i%len(topics)] || e.Subject != "fraiseql.acme."+e.Topic {
			t.Fatalf("event %d: %+v", i, e)
		}
		if string(e.Data) != `{"n":`+strconv.Itoa(i)+`}` || e.Time.IsZero() {
			t.Fatalf("event %d: data %q time %v", i, e.Data, e.Time)
		}
		if seq, err := c.ParseCursor(e.Tenant, e.Cursor); err != nil || seq != e.Seq {
			t.Fatalf("event %d: cursor -> %d, %v", i, seq, err)
		}
	}
	noRecv(t, events, 100*time.Millisecond)
}

func TestConsumeSkipsMalformedSubjects(t *testing.T) {
	c := open(t, cluster.Config{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collectors()...)
	events := make(chan *cluster.Event, 10)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	// Published around Publish, straight to NATS: no topic, a bad tenant.
	for _, subj := range []string{"fraiseql.acme", "fraiseql.a%b.chat"} {
		if _, err := c.JetStream().Publish(testCtx(t), subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	good := mustPublish(t, c, "acme", "chat", "{}", "")
	if e := recv(t, events, 10*time.Second); e.Seq != good.Seq {
		t.Fatalf("got seq %d, want %d", e.Seq, good.Seq)
	}
	if n, err := testutil.GatherAndCount(reg, "fraiseql_nats_events_skipped_total"); err != nil || n != 2 {
		t.Fatalf("skipped series = %d, %v", n, err)
	}
	skipped := c.Collectors()[1].(*prometheus.CounterVec).WithLabelValues("bad_subject")
	if got := testutil.ToFloat64(skipped); got != 2 {
		t.Fatalf("skipped{bad_subject} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(c.Collectors()[0].(prometheus.Counter)); got != 1 {
		t.Fatalf("consumed = %v, want 1", got)
	}
	if got := testutil.ToFloat64(c.Collectors()[3].(prometheus.Gauge)); got != 1 {
		t.Fatalf("connected = %v, want 1", got)
	}
}

func TestPublishDedup(t *testing.T) {
	c := open(t, cluster.Config{})
	events := make(chan *cluster.Event, 10)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { events <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	r1 := mustPublish(t, c, "acme", "chat.r1", `{"a":1}`, "pg-42")
	r2 := mustPublish(t, c, "acme", "chat.r1", `{"a":1}`, "pg-42")
	if r1.Duplicate || !r2.Duplicate || r2.Seq != r1.Seq {
		t.Fatalf("first %+v, second %+v; want second a duplicate of the first", r1, r2)
	}
	r3 := mustPublish(t, c, "acme", "chat.r1", `{"a":2}`, "pg-43")
	if e := recv(t, events, 10*time.Second); e.Seq != r1.Seq {
		t.Fatalf("first event seq %d, want %d", e.Seq, r1.Seq)
	}
	if e := recv(t, events, 10*time.Second); e.Seq != r3.Seq {
		t.Fatalf("second event seq %d, want %d (the duplicate must not be delivered)", e.Seq, r3.Seq)
	}
	published := c.Collectors()[4].(*prometheus.CounterVec)
	if ok, dup := testutil.ToFloat64(published.WithLabelValues("ok")), testutil.ToFloat64(published.WithLabelValues("duplicate")); ok != 2 || dup != 1 {
		t.Fatalf("publish_total ok=%v duplicate=%v, want 2 and 1", ok, dup)
	}
}

func TestPublishPayloadLimit(t *testing.T) {
	for _, size := range []int32{0, 64 << 10} { // 0: the 1 MiB default
		t.Run(strconv.Itoa(int(size)), func(t *testing.T) {
			c := open(t, cluster.Config{MaxMsgSize: size})
			limit := c.MaxMsgSize()
			if size == 0 && limit != 1<<20 {
				t.Fatalf("default MaxMsgSize = %d, want 1 MiB", limit)
			}
			r, err := c.Publish(testCtx(t), "acme", "big", make([]byte, limit), "a-long-dedup-id-"+strings.Repeat("x", 200))
			if err != nil {
				t.Fatalf("publish of exactly MaxMsgSize: %v", err)
			}
			if _, err := c.Publish(testCtx(t), "acme", "big", make([]byte, limit+1), ""); !errors.Is(err, cluster.ErrPayloadTooLarge) {
				t.Fatalf("publish of MaxMsgSize+1 = %v, want ErrPayloadTooLarge", err)
			}
			st, err := c.JetStream().Stream(testCtx(t), "EVENTS")
			if err != nil {
				t.Fatal(err)
			}
			if last := st.CachedInfo().State.LastSeq; last != r.Seq {
				t.Fatalf("last seq %d, want %d: the oversized event must not be stored", last, r.Seq)
			}
			tooLarge := c.Collectors()[4].(*prometheus.CounterVec).WithLabelValues("too_large")
			if got := testutil.ToFloat64(tooLarge); got != 1 {
				t.Fatalf("publish_total{too_large} = %v", got)
			}
		})
	}
}

func TestCursor(t *testing.T) {
	srv := clustertest.RunServer(t)
	c := open(t, cluster.Config{URL: srv})
	for _, seq := range []uint64{0, 1, 42, 1<<64 - 1} {
		cur := c.Cursor("acme", seq)
		if got, err := c.ParseCursor("acme", cur); err != nil || got != seq {
			t.Fatalf("ParseCursor(Cursor(%d)) = %d, %v", seq, got, err)
		}
		if url.PathEscape(cur) != cur || len(cur) != 28 {
			t.Fatalf("cursor %q is not URL-safe or not 28 chars", cur)
		}
	}
	cur := c.Cursor("acme", 42)
	// (Characters 1 to 6 hold the stream tag: see TestCursorBitFlips.)
	for _, bad := range []string{
		"", "x", cur[:27], cur + "A", strings.Repeat("A", 28), "!" + cur[1:],
		flip(cur, 0), flip(cur, 7), flip(cur, 15), flip(cur, 27),
	} {
		if _, err := c.ParseCursor("acme", bad); !errors.Is(err, cluster.ErrBadCursor) {
			t.Errorf("ParseCursor(%q) = %v, want ErrBadCursor", bad, err)
		}
	}

	// Delete and recreate the stream: old cursors are expired, for a new
	// Cluster and (after RefreshStream) for the old one.
	if err := c.JetStream().DeleteStream(testCtx(t), "EVENTS"); err != nil {
		t.Fatal(err)
	}
	c2 := openAfterDelete(t, cluster.Config{URL: srv})
	if _, err := c2.ParseCursor("acme", cur); !errors.Is(err, cluster.ErrCursorExpired) {
		t.Fatalf("cursor from the old stream: %v, want ErrCursorExpired", err)
	}
	if err := c.RefreshStream(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ParseCursor("acme", cur); !errors.Is(err, cluster.ErrCursorExpired) {
		t.Fatalf("old Cluster, cursor from the old stream: %v, want ErrCursorExpired", err)
	}
	if c.Cursor("acme", 1) != c2.Cursor("acme", 1) {
		t.Fatal("two Clusters on one stream disagree on cursors")
	}
}

// flip changes the base64 character at i to another valid one.
func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestConnect(t *testing.T) {
	srv := clustertest.RunServer(t)
	if _, err := cluster.Connect(testCtx(t), cluster.Config{}, testLog()); err == nil {
		t.Fatal("Connect without a URL succeeded")
	}
	// No stream yet: Connect does not create one.
	if _, err := cluster.Connect(testCtx(t), cluster.Config{URL: srv}, testLog()); err == nil {
		t.Fatal("Connect created or found a stream that does not exist")
	}
	node := open(t, cluster.Config{URL: srv})
	c, err := cluster.Connect(testCtx(t), cluster.Config{URL: srv}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Publish(testCtx(t), "acme", "chat", []byte("{}"), "")
	if err != nil || r.Seq != 1 {
		t.Fatalf("Publish = %+v, %v", r, err)
	}
	// A publisher needs no cursor key, and may not be allowed to read it.
	if cur := c.Cursor("acme", 1); cur != "" {
		t.Fatalf("Cursor on a Cluster from Connect = %q, want \"\"", cur)
	}
	if _, err := c.ParseCursor("acme", node.Cursor("acme", 1)); !errors.Is(err, cluster.ErrBadCursor) {
		t.Fatalf("ParseCursor on a Cluster from Connect = %v, want ErrBadCursor", err)
	}
}

// TestStopDeliversNoBacklog: Stop does not hand the events read ahead to
// fn: it returns once the call in progress has.
func TestStopDeliversNoBacklog(t *testing.T) {
	c := open(t, cluster.Config{})
	gate := make(chan struct{})
	var calls atomic.Int32
	k, err := c.Consume(testCtx(t), func(*cluster.Event) {
		if calls.Add(1) == 1 {
			<-gate
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		mustPublish(t, c, "acme", "chat.r1", `{"n":`+strconv.Itoa(i)+`}`, "")
	}
	time.Sleep(200 * time.Millisecond) // the backlog reaches the consumer
	stopped := make(chan struct{})
	go func() { k.Stop(); close(stopped) }()
	time.Sleep(50 * time.Millisecond)
	close(gate)
	<-stopped
	if n := calls.Load(); n > 2 {
		t.Fatalf("%d events delivered after Stop began", n-1)
	}
}

// TestStopFromTwoGoroutines stops a consumer from two goroutines at once,
// as a node's Shutdown and its Cluster's Close do (run with -race).
func TestStopFromTwoGoroutines(t *testing.T) {
	c, err := cluster.Open(testCtx(t), cluster.Config{Embedded: cluster.EmbeddedConfig{StoreDir: t.TempDir()}}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.Consume(testCtx(t), func(*cluster.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(k.Stop)
	wg.Go(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
}
