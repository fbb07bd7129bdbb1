package cluster

import (
	"context"
	"testing"
	"time"
)

// TestLeaderNext: the leader's answer that completes a follower's stale
// read is the subject's first event in [from, last], or none.
func TestLeaderNext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Open(ctx, Config{Embedded: EmbeddedConfig{StoreDir: t.TempDir()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var seqs []uint64
	for range 3 {
		r, err := c.Publish(ctx, "acme", "chat", []byte(`{"n":1}`), "")
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seq)
		if _, err := c.Publish(ctx, "acme", "other", []byte(`{}`), ""); err != nil {
			t.Fatal(err)
		}
	}
	r := &replayer{c: c, subj: "fraiseql.acme.chat", tenant: "acme", topic: "chat"}
	for _, tc := range []struct {
		from, last, want uint64 // want 0: none
	}{
		{1, 6, seqs[0]},
		{seqs[0] + 1, 6, seqs[1]},
		{seqs[2], seqs[2], seqs[2]},
		{seqs[1] + 1, seqs[2] - 1, 0}, // the next one is past last
		{seqs[2] + 1, 6, 0},           // none after
	} {
		e, err := r.leaderNext(ctx, tc.from, tc.last)
		if err != nil {
			t.Fatalf("leaderNext(%d, %d): %v", tc.from, tc.last, err)
		}
		switch {
		case tc.want == 0 && e != nil:
			t.Errorf("leaderNext(%d, %d) = seq %d, want none", tc.from, tc.last, e.Seq)
		case tc.want != 0 && (e == nil || e.Seq != tc.want || string(e.Data) != `{"n":1}` || e.Tenant != "acme" ||
			e.Topic != "chat" || e.Cursor != c.Cursor("acme", tc.want) || e.Time.IsZero()):
			t.Errorf("leaderNext(%d, %d) = %+v, want seq %d", tc.from, tc.last, e, tc.want)
		}
	}
}
