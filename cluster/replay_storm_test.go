package cluster_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// TestReplayStormCreatesNoConsumer is the resume storm of a killed node:
// 2,000 replays at once on one node. None may fail, and none may create a
// JetStream consumer: the server caps a stream's consumers (1,000 by
// default; 100 here, so that a consumer per replay fails quickly).
func TestReplayStormCreatesNoConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 replays; skipped with -short")
	}
	opts := clustertest.Options(t.TempDir())
	opts.JetStreamLimits.DefaultMaxConsumers = 100
	url := clustertest.StartServer(t, opts).ClientURL()
	c := open(t, cluster.Config{URL: url, Name: "storm"})

	const subjects, perSubject, replays = 50, 4, 2000
	var want [subjects][]uint64
	for i := range perSubject * subjects {
		s := i % subjects
		want[s] = append(want[s], mustPublish(t, c, "acme", fmt.Sprintf("chat.r%d", s), "{}", "").Seq)
	}

	// Watch the stream's consumer count while the storm runs.
	stop := make(chan struct{})
	var maxConsumers atomic.Int64
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() { // owned by this test; ends when stop closes
		defer watcher.Done()
		st, err := c.JetStream().Stream(testCtx(t), "EVENTS")
		if err != nil {
			t.Error(err)
			return
		}
		for {
			if info, err := st.Info(testCtx(t)); err == nil && int64(info.State.Consumers) > maxConsumers.Load() {
				maxConsumers.Store(int64(info.State.Consumers))
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	var wg sync.WaitGroup
	var failed atomic.Int64
	errs := make(chan error, replays)
	start := make(chan struct{})
	for i := range replays {
		wg.Add(1)
		go func() { // owned by wg
			defer wg.Done()
			<-start
			s := i % subjects
			after := uint64(0)
			if i%2 == 1 { // half resume after their subject's first event
				after = want[s][0]
			}
			var got []uint64
			_, err := c.Replay(testCtx(t), "acme", fmt.Sprintf("chat.r%d", s), after, func(e *cluster.Event) error {
				got = append(got, e.Seq)
				return nil
			})
			exp := want[s]
			if after != 0 {
				exp = exp[1:]
			}
			if err == nil && !equal(got, exp) {
				err = fmt.Errorf("replay of chat.r%d after %d = %v, want %v", s, after, got, exp)
			}
			if err != nil {
				failed.Add(1)
				errs <- err
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	close(stop)
	watcher.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("replay failed: %v", err)
		break
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d replays failed", n, replays)
	}
	info, err := c.JetStream().Stream(testCtx(t), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Consumers; n != 0 || maxConsumers.Load() != 0 {
		t.Errorf("stream has %d consumers after the storm, at most %d during it; want 0", n, maxConsumers.Load())
	}
	t.Logf("%d replays in %v (%.0f/s)", replays, elapsed, float64(replays)/elapsed.Seconds())
}
