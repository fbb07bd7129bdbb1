package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// metricValue returns the value of the Cluster's collector named name
// (with the label value, if any).
func metricValue(t *testing.T, c *cluster.Cluster, name, label string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, col := range c.Collectors() {
		reg.MustRegister(col)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

// TestReplayLargeBacklog replays more events than one read returns, by
// count (600 > 256) and by bytes (40 events of 20 KB > 256 KiB), with
// other subjects interleaved.
func TestReplayLargeBacklog(t *testing.T) {
	c := open(t, cluster.Config{})
	var small, big []uint64
	body := `{"pad":"` + strings.Repeat("x", 20_000) + `"}`
	for i := range 600 {
		small = append(small, mustPublish(t, c, "acme", "chat.small", "{}", "").Seq)
		mustPublish(t, c, "acme", "chat.other", "{}", "")
		if i < 40 {
			big = append(big, mustPublish(t, c, "acme", "chat.big", body, "").Seq)
		}
	}
	for _, tc := range []struct {
		topic string
		want  []uint64
	}{{"chat.small", small}, {"chat.big", big}} {
		for _, after := range []uint64{0, tc.want[0], tc.want[len(tc.want)/2]} {
			seqs, last, err := replayAll(t, c, "acme", tc.topic, after)
			want := tc.want
			for len(want) > 0 && want[0] <= after {
				want = want[1:]
			}
			if err != nil || last != 1240 || !equal(seqs, want) {
				t.Fatalf("%s after %d: %d events (%v…), last %d, %v; want %d", tc.topic, after, len(seqs), seqs[:min(3, len(seqs))], last, err, len(want))
			}
		}
	}
}

// TestReplayCancelMidway cancels the context in the middle of a read's
// events: Replay returns ctx's error and delivers nothing after.
func TestReplayCancelMidway(t *testing.T) {
	c := open(t, cluster.Config{})
	for range 300 {
		mustPublish(t, c, "acme", "chat", "{}", "")
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	n := 0
	_, err := c.Replay(ctx, "acme", "chat", 0, func(*cluster.Event) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 10 {
		t.Fatalf("Replay = %v after %d events; want context.Canceled after 10", err, n)
	}
}

// TestReplayEventFields checks what a replayed Event carries.
func TestReplayEventFields(t *testing.T) {
	c := open(t, cluster.Config{})
	before := time.Now().Add(-time.Second)
	r := mustPublish(t, c, "acme", "chat.r1", `{"id":"1"}`, "msg-1")
	var got *cluster.Event
	if _, err := c.Replay(testCtx(t), "acme", "chat.r1", 0, func(e *cluster.Event) error { got = e; return nil }); err != nil || got == nil {
		t.Fatalf("Replay: %v, %v", got, err)
	}
	if got.Subject != "fraiseql.acme.chat.r1" || got.Tenant != "acme" || got.Topic != "chat.r1" || got.Seq != r.Seq ||
		string(got.Data) != `{"id":"1"}` || got.Cursor != c.Cursor("acme", r.Seq) || got.Time.Before(before) || got.Time.After(time.Now()) {
		t.Fatalf("event = %+v", got)
	}
}

// TestReplaySharesFirstRead: replays of one subject that arrive while a
// read waits for its slot share it, whatever their cursors, and each
// gets exactly the events after its own cursor.
func TestReplaySharesFirstRead(t *testing.T) {
	c := open(t, cluster.Config{MaxReplays: 1})
	var seqs []uint64
	for range 20 {
		seqs = append(seqs, mustPublish(t, c, "acme", "chat", "{}", "").Seq)
		mustPublish(t, c, "acme", "other", "{}", "")
	}
	release := c.HoldReplaySlotsForTest()
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() { // owned by wg
			defer wg.Done()
			after := seqs[i] // each its own cursor
			got, last, err := replayAll(t, c, "acme", "chat", after)
			if err == nil && (last != 40 || !equal(got, seqs[i+1:])) {
				err = fmt.Errorf("after %d: %v, last %d; want %v", after, got, last, seqs[i+1:])
			}
			errs[i] = err
		}()
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if w := c.ReplayWaitersForTest("fraiseql.acme.chat"); w != n {
			return fmt.Errorf("%d replays wait for the shared read, want %d", w, n)
		}
		return nil
	})
	release()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := metricValue(t, c, "fraiseql_replay_shared_total", ""); got != n-1 {
		t.Errorf("fraiseql_replay_shared_total = %v, want %d", got, n-1)
	}
}

// TestReplayQueueLimit: with every read slot busy, replays queue up to
// MaxReplayQueue (limit-1 and limit are admitted and complete once slots
// free up); limit+1 fails at once with ErrReplayBusy, counted.
func TestReplayQueueLimit(t *testing.T) {
	const limit = 3
	c := open(t, cluster.Config{MaxReplays: 1, MaxReplayQueue: limit})
	for i := range limit + 1 {
		mustPublish(t, c, "acme", fmt.Sprintf("chat.r%d", i), "{}", "")
	}
	release := c.HoldReplaySlotsForTest()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, limit)
	for i := range limit { // distinct subjects: no sharing
		wg.Add(1)
		go func() { // owned by wg
			defer wg.Done()
			got, _, err := replayAll(t, c, "acme", fmt.Sprintf("chat.r%d", i), 0)
			if err == nil && len(got) != 1 {
				err = fmt.Errorf("chat.r%d: %v", i, got)
			}
			errs <- err
		}()
		want := int64(i + 1) // limit-1, then limit
		checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if q := c.ReplaysQueuedForTest(); q != want {
				return fmt.Errorf("%d replays queued, want %d", q, want)
			}
			return nil
		})
	}
	// limit+1: refused at once.
	_, err := c.Replay(testCtx(t), "acme", fmt.Sprintf("chat.r%d", limit), 0, func(*cluster.Event) error { return nil })
	if !errors.Is(err, cluster.ErrReplayBusy) || !strings.Contains(err.Error(), "nats.max_replay_queue") {
		t.Fatalf("Replay past the queue = %v, want ErrReplayBusy naming nats.max_replay_queue", err)
	}
	if got := metricValue(t, c, "fraiseql_replays_total", "busy"); got != 1 {
		t.Errorf(`fraiseql_replays_total{result="busy"} = %v, want 1`, got)
	}
	if got := metricValue(t, c, "fraiseql_replay_reads_queued", ""); got != limit {
		t.Errorf("fraiseql_replay_reads_queued = %v, want %d", got, limit)
	}
	release()
	released = true
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("queued replay: %v", err)
		}
	}
	if got := metricValue(t, c, "fraiseql_replays_total", "ok"); got != limit {
		t.Errorf(`fraiseql_replays_total{result="ok"} = %v, want %d`, got, limit)
	}
}

// TestReplayQueuedCanceled: a replay waiting for a slot ends with its
// context, and leaves the queue.
func TestReplayQueuedCanceled(t *testing.T) {
	c := open(t, cluster.Config{MaxReplays: 1})
	mustPublish(t, c, "acme", "chat", "{}", "")
	release := c.HoldReplaySlotsForTest()
	defer release()
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { // ends when ctx is canceled
		_, err := c.Replay(ctx, "acme", "chat", 0, func(*cluster.Event) error { return nil })
		done <- err
	}()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if q := c.ReplaysQueuedForTest(); q != 1 {
			return fmt.Errorf("%d queued", q)
		}
		return nil
	})
	cancel()
	if err := recv(t, done, 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Replay = %v, want context.Canceled", err)
	}
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if q := c.ReplaysQueuedForTest(); q != 0 {
			return fmt.Errorf("%d still queued", q)
		}
		return nil
	})
}

// TestReplayWithoutDirectGet: a stream that does not allow direct gets
// fails the replay with an error that says so.
func TestReplayWithoutDirectGet(t *testing.T) {
	c := open(t, cluster.Config{})
	mustPublish(t, c, "acme", "chat", "{}", "")
	st, err := c.JetStream().Stream(testCtx(t), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := c.JetStream().UpdateStream(testCtx(t), cfg); err != nil {
		t.Fatal(err)
	}
	_, err = c.Replay(testCtx(t), "acme", "chat", 0, func(*cluster.Event) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "allow_direct") {
		t.Fatalf("Replay = %v, want an error naming allow_direct", err)
	}
}

// TestReplayClose: Close ends the replays waiting for a slot.
func TestReplayClose(t *testing.T) {
	c, err := cluster.Open(testCtx(t), cluster.Config{MaxReplays: 1, Embedded: cluster.EmbeddedConfig{StoreDir: t.TempDir()}}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	mustPublish(t, c, "acme", "chat", "{}", "")
	release := c.HoldReplaySlotsForTest()
	done := make(chan error, 1)
	go func() { // ends at Close
		_, err := c.Replay(testCtx(t), "acme", "chat", 0, func(*cluster.Event) error { return nil })
		done <- err
	}()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if w := c.ReplayWaitersForTest("fraiseql.acme.chat"); w != 1 {
			return fmt.Errorf("%d waiting", w)
		}
		return nil
	})
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }() // ends when Close returns
	if err := recv(t, done, 10*time.Second); !errors.Is(err, cluster.ErrClosed) {
		t.Errorf("Replay = %v, want ErrClosed", err)
	}
	if err := recv(t, closed, 20*time.Second); err != nil {
		t.Error(err)
	}
	release()
}

// TestReplayR3 replays from a 3-server cluster (R3 stream; direct gets
// may be answered by any replica, a follower possibly behind the leader)
// while events keep arriving: every replay gets exactly its subject's
// events after its cursor up to its last, in order.
func TestReplayR3(t *testing.T) {
	if testing.Short() {
		t.Skip("3-server cluster; skipped with -short")
	}
	urls, _ := clustertest.RunCluster(t, 3)
	c := open(t, cluster.Config{URL: urls[1], Replicas: 3, Name: "r3"})
	var mu sync.Mutex
	seqs := map[string][]uint64{}
	publish := func(topic string) {
		r, err := c.Publish(context.Background(), "acme", topic, []byte("{}"), "")
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		seqs[topic] = append(seqs[topic], r.Seq)
		mu.Unlock()
	}
	for i := range 100 {
		publish(fmt.Sprintf("chat.r%d", i%2))
	}
	var pub sync.WaitGroup
	pub.Add(1)
	go func() { // owned by pub
		defer pub.Done()
		for i := range 200 {
			publish(fmt.Sprintf("chat.r%d", i%2))
		}
	}()
	type result struct {
		topic       string
		after, last uint64
		got         []uint64
		err         error
	}
	results := make(chan result, 200)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() { // owned by wg
			defer wg.Done()
			res := result{topic: fmt.Sprintf("chat.r%d", i%2), after: uint64(i % 100)}
			res.got, res.last, res.err = replayAll(t, c, "acme", res.topic, res.after)
			results <- res
		}()
	}
	wg.Wait()
	pub.Wait()
	close(results)
	for res := range results {
		var want []uint64
		for _, s := range seqs[res.topic] {
			if s > res.after && s <= res.last {
				want = append(want, s)
			}
		}
		if res.err != nil || !equal(res.got, want) {
			t.Fatalf("%s after %d (last %d): %v, %v; want %v", res.topic, res.after, res.last, res.got, res.err, want)
		}
	}
	t.Logf("stale follower reads completed from the leader: %v", metricValue(t, c, "fraiseql_replay_stale_reads_total", ""))
}

// TestReplaySlots: MaxReplays reads run at once (limit-1 and limit busy
// still let a read through); with all of them busy (limit+1) a read
// waits for one to free up.
func TestReplaySlots(t *testing.T) {
	const limit = 3
	c := open(t, cluster.Config{MaxReplays: limit})
	mustPublish(t, c, "acme", "chat", "{}", "")
	for _, held := range []int{limit - 2, limit - 1} { // the replay's read is then the limit-1th, the limit-th
		release := c.HoldSomeReplaySlotsForTest(held)
		got, _, err := replayAll(t, c, "acme", "chat", 0)
		release()
		if err != nil || len(got) != 1 {
			t.Fatalf("with %d slots busy: %v, %v", held, got, err)
		}
	}
	release := c.HoldSomeReplaySlotsForTest(limit)
	done := make(chan error, 1)
	go func() { // ends once a slot frees up
		_, _, err := replayAll(t, c, "acme", "chat", 0)
		done <- err
	}()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if q := c.ReplaysQueuedForTest(); q != 1 {
			return fmt.Errorf("%d queued, want 1", q)
		}
		return nil
	})
	noRecv(t, done, 50*time.Millisecond)
	release()
	if err := recv(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
