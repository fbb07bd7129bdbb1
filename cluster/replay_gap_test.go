package cluster_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
)

// replayOrGap collects a ReplayOrGap's start calls and events.
func replayOrGap(t *testing.T, c *cluster.Cluster, after uint64) (starts, seqs []uint64, last uint64, err error) {
	t.Helper()
	last, err = c.ReplayOrGap(testCtx(t), "acme", "chat", after, func(lost uint64) error {
		if len(seqs) > 0 {
			t.Errorf("start(%d) after events %v", lost, seqs)
		}
		starts = append(starts, lost)
		return nil
	}, func(e *cluster.Event) error {
		seqs = append(seqs, e.Seq)
		return nil
	})
	return starts, seqs, last, err
}

// keepLast sets the stream's retention to its last n messages.
func keepLast(t *testing.T, c *cluster.Cluster, n int64) {
	t.Helper()
	st, err := c.JetStream().Stream(testCtx(t), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs = n
	if _, err := c.JetStream().UpdateStream(testCtx(t), cfg); err != nil {
		t.Fatal(err)
	}
}

// ReplayOrGap reports, before any event, whether retention removed events
// after the cursor, and then replays from the first event still stored
// where Replay fails with ErrCursorExpired.
func TestReplayOrGap(t *testing.T) {
	c := open(t, cluster.Config{})
	keepLast(t, c, 3)
	for range 5 {
		mustPublish(t, c, "acme", "chat", "{}", "") // seqs 1..5; 1 and 2 are removed
	}
	for _, tc := range []struct {
		name  string
		after uint64
		lost  uint64
		seqs  []uint64
	}{
		{"from the start, removed", 0, 2, []uint64{3, 4, 5}},
		{"one removed after it", 1, 2, []uint64{3, 4, 5}},
		{"complete: the first stored is next", 2, 0, []uint64{3, 4, 5}},
		{"complete: in the middle", 4, 0, []uint64{5}},
		{"complete: caught up", 5, 0, nil},
		{"complete: ahead of the stream", 9, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			starts, seqs, last, err := replayOrGap(t, c, tc.after)
			if err != nil || last != 5 || !equal(starts, []uint64{tc.lost}) || !equal(seqs, tc.seqs) {
				t.Fatalf("ReplayOrGap(after %d) = start %v, events %v, last %d, %v; want start [%d], events %v, last 5",
					tc.after, starts, seqs, last, err, tc.lost, tc.seqs)
			}
		})
	}
	// The same cursors through Replay: a gap is ErrCursorExpired.
	if _, _, err := replayAll(t, c, "acme", "chat", 1); !errors.Is(err, cluster.ErrCursorExpired) {
		t.Fatalf("Replay(after 1) = %v, want ErrCursorExpired", err)
	}
}

// A stream whose every event was removed: the gap reaches its last
// sequence, and there is nothing to replay.
func TestReplayOrGapEmptyStream(t *testing.T) {
	c := open(t, cluster.Config{})
	for range 4 {
		mustPublish(t, c, "acme", "chat", "{}", "")
	}
	st, err := c.JetStream().Stream(testCtx(t), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	starts, seqs, last, err := replayOrGap(t, c, 1)
	if err != nil || last != 4 || !equal(starts, []uint64{4}) || len(seqs) != 0 {
		t.Fatalf("ReplayOrGap(after 1) = start %v, events %v, last %d, %v; want start [4], no events, last 4", starts, seqs, last, err)
	}
}

// An error from start aborts the replay before any event, and is returned
// as is.
func TestReplayOrGapStartError(t *testing.T) {
	c := open(t, cluster.Config{})
	for range 3 {
		mustPublish(t, c, "acme", "chat", "{}", "")
	}
	stop := errors.New("stop")
	called := 0
	_, err := c.ReplayOrGap(testCtx(t), "acme", "chat", 0, func(uint64) error { return stop }, func(*cluster.Event) error {
		called++
		return nil
	})
	if !errors.Is(err, stop) || called != 0 {
		t.Fatalf("ReplayOrGap = %v after %d events, want the start error before any", err, called)
	}
}

// A resume refused because too many wait (ErrReplayBusy) is refused
// before start: the client retries with the same cursor and gets its
// verdict then.
func TestReplayOrGapBusy(t *testing.T) {
	c := open(t, cluster.Config{MaxReplays: 1, MaxReplayQueue: 1})
	mustPublish(t, c, "acme", "chat", "{}", "")
	mustPublish(t, c, "acme", "other", "{}", "")
	release := c.HoldReplaySlotsForTest()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	queued := make(chan error, 1)
	go func() { // ends once release frees the slot
		_, _, err := replayAll(t, c, "acme", "other", 0)
		queued <- err
	}()
	checkFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if q := c.ReplaysQueuedForTest(); q != 1 {
			return fmt.Errorf("%d replays queued, want 1", q)
		}
		return nil
	})
	starts, _, _, err := replayOrGap(t, c, 0)
	if !errors.Is(err, cluster.ErrReplayBusy) || len(starts) != 0 {
		t.Fatalf("ReplayOrGap past the queue = %v after start %v, want ErrReplayBusy before start", err, starts)
	}
	release()
	released = true
	if err := <-queued; err != nil {
		t.Fatalf("queued replay: %v", err)
	}
}
