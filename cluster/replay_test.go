package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
)

// replayAll collects a Replay's events.
func replayAll(t *testing.T, c *cluster.Cluster, tenant, topic string, after uint64) ([]uint64, uint64, error) {
	t.Helper()
	var seqs []uint64
	last, err := c.Replay(testCtx(t), tenant, topic, after, func(e *cluster.Event) error {
		if e.Tenant != tenant || e.Topic != topic {
			t.Errorf("replayed %s/%s on %s/%s", e.Tenant, e.Topic, tenant, topic)
		}
		if got, err := c.ParseCursor(e.Tenant, e.Cursor); err != nil || got != e.Seq {
			t.Errorf("cursor of seq %d -> %d, %v", e.Seq, got, err)
		}
		seqs = append(seqs, e.Seq)
		return nil
	})
	return seqs, last, err
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReplay(t *testing.T) {
	c := open(t, cluster.Config{})
	var a []uint64 // seqs on acme/chat.r1
	for i := range 10 {
		switch i % 3 {
		case 0:
			a = append(a, mustPublish(t, c, "acme", "chat.r1", "{}", "").Seq)
		case 1:
			mustPublish(t, c, "other", "chat.r1", "{}", "") // another tenant, same topic
		case 2:
			mustPublish(t, c, "acme", "chat.r2", "{}", "")
		}
	}
	const lastSeq = 10

	t.Run("from the start", func(t *testing.T) {
		seqs, last, err := replayAll(t, c, "acme", "chat.r1", 0)
		if err != nil || last != lastSeq || !equal(seqs, a) {
			t.Fatalf("Replay = %v, last %d, %v; want %v, last %d", seqs, last, err, a, lastSeq)
		}
	})
	t.Run("after a cursor", func(t *testing.T) {
		seqs, last, err := replayAll(t, c, "acme", "chat.r1", a[1])
		if err != nil || last != lastSeq || !equal(seqs, a[2:]) {
			t.Fatalf("Replay = %v, last %d, %v; want %v", seqs, last, err, a[2:])
		}
	})
	t.Run("nothing on the subject after", func(t *testing.T) {
		seqs, last, err := replayAll(t, c, "acme", "chat.r1", a[len(a)-1])
		if err != nil || last != lastSeq || len(seqs) != 0 {
			t.Fatalf("Replay = %v, last %d, %v", seqs, last, err)
		}
	})
	t.Run("unknown subject", func(t *testing.T) {
		seqs, last, err := replayAll(t, c, "acme", "nobody.here", 0)
		if err != nil || last != lastSeq || len(seqs) != 0 {
			t.Fatalf("Replay = %v, last %d, %v", seqs, last, err)
		}
	})
	t.Run("caught up", func(t *testing.T) {
		for _, after := range []uint64{lastSeq, lastSeq + 5} {
			seqs, last, err := replayAll(t, c, "acme", "chat.r1", after)
			if err != nil || last != lastSeq || len(seqs) != 0 {
				t.Fatalf("Replay(after %d) = %v, last %d, %v", after, seqs, last, err)
			}
		}
	})
	t.Run("stops at the last sequence of the call", func(t *testing.T) {
		var seqs []uint64
		var live uint64
		last, err := c.Replay(testCtx(t), "acme", "chat.r1", 0, func(e *cluster.Event) error {
			if len(seqs) == 0 { // published during the replay: live, not replayed
				live = mustPublish(t, c, "acme", "chat.r1", "{}", "").Seq
			}
			seqs = append(seqs, e.Seq)
			return nil
		})
		if err != nil || last != lastSeq || !equal(seqs, a) || live <= last {
			t.Fatalf("Replay = %v, last %d, %v (live %d); want %v, last %d", seqs, last, err, live, a, lastSeq)
		}
	})
	t.Run("fn error aborts", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		_, err := c.Replay(testCtx(t), "acme", "chat.r1", 0, func(*cluster.Event) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Fatalf("Replay = %v after %d calls, want stop after 1", err, n)
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Replay(ctx, "acme", "chat.r1", 0, func(*cluster.Event) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Fatalf("Replay = %v, want context.Canceled", err)
		}
	})
	t.Run("bad subject", func(t *testing.T) {
		if _, err := c.Replay(testCtx(t), "*", "chat", 0, nil); !errors.Is(err, cluster.ErrBadTenant) {
			t.Fatalf("Replay = %v", err)
		}
		if _, err := c.Replay(testCtx(t), "acme", ">", 0, nil); !errors.Is(err, cluster.ErrBadTopic) {
			t.Fatalf("Replay = %v", err)
		}
	})
}

func TestReplayExpired(t *testing.T) {
	c := open(t, cluster.Config{})
	// Test-only retention: keep the last 3 messages.
	st, err := c.JetStream().Stream(testCtx(t), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs = 3
	if _, err := c.JetStream().UpdateStream(testCtx(t), cfg); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		mustPublish(t, c, "acme", "chat", "{}", "") // seqs 1..5; 1 and 2 are removed
	}
	for _, after := range []uint64{0, 1} {
		if _, _, err := replayAll(t, c, "acme", "chat", after); !errors.Is(err, cluster.ErrCursorExpired) {
			t.Fatalf("Replay(after %d) = %v, want ErrCursorExpired", after, err)
		}
	}
	seqs, last, err := replayAll(t, c, "acme", "chat", 2)
	if err != nil || last != 5 || !equal(seqs, []uint64{3, 4, 5}) {
		t.Fatalf("Replay(after 2) = %v, last %d, %v", seqs, last, err)
	}
	if _, last, err := replayAll(t, c, "acme", "chat", 5); err != nil || last != 5 {
		t.Fatalf("Replay(after last) = %d, %v: a caught-up cursor is never expired", last, err)
	}
}

// TestReplayThenLive is the resume contract: replay up to last, then take
// live events with seq > last, with no gap and no duplicate, while
// events keep arriving.
func TestReplayThenLive(t *testing.T) {
	c := open(t, cluster.Config{})
	for range 5 {
		mustPublish(t, c, "acme", "chat", "{}", "")
	}
	live := make(chan *cluster.Event, 100)
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) { live <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	done := make(chan struct{})
	go func() { // publisher racing the replay
		defer close(done)
		for range 10 {
			if _, err := c.Publish(context.Background(), "acme", "chat", []byte("{}"), ""); err != nil {
				t.Error(err)
			}
		}
	}()
	var got []uint64
	last, err := c.Replay(testCtx(t), "acme", "chat", 2, func(e *cluster.Event) error {
		got = append(got, e.Seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	for len(got) == 0 || got[len(got)-1] < 15 {
		e := recv(t, live, 10*time.Second)
		if e.Seq > last {
			got = append(got, e.Seq)
		}
	}
	for i, s := range got {
		if s != uint64(3+i) {
			t.Fatalf("resumed sequence %v has a gap or duplicate (last %d)", got, last)
		}
	}
}
