package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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

// TestReadSingleMessageServer: a server without batch direct gets
// (before 2.11) answers one message without Nats-Num-Pending and no end
// of batch; read takes it and asks for more.
func TestReadSingleMessageServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Open(ctx, Config{Embedded: EmbeddedConfig{StoreDir: t.TempDir()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.cfg.Stream = "OLDSERVER" // requests go to the fake below
	sub, err := c.nc.Subscribe("$JS.API.DIRECT.GET.OLDSERVER", func(m *nats.Msg) {
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set("Nats-Stream", "OLDSERVER")
		reply.Header.Set("Nats-Subject", "fraiseql.acme.chat")
		reply.Header.Set("Nats-Sequence", "7")
		reply.Header.Set("Nats-Time-Stamp", "2026-12-03T09:00:00.123456789Z")
		reply.Data = []byte(`{"n":7}`)
		m.RespondMsg(reply) //nolint:errcheck // the test reads the outcome
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // closed with the connection
	r := &replayer{c: c, subj: "fraiseql.acme.chat", tenant: "acme", topic: "chat"}
	for _, tc := range []struct {
		last uint64
		more bool
	}{{10, true}, {7, false}} {
		evs, more, err := r.read(ctx, 1, tc.last, nil)
		if err != nil || len(evs) != 1 || evs[0].Seq != 7 || string(evs[0].Data) != `{"n":7}` || more != tc.more ||
			evs[0].Time != time.Date(2026, 12, 3, 9, 0, 0, 123456789, time.UTC) {
			t.Fatalf("read(1, %d) = %+v, more %v, %v; want seq 7, more %v", tc.last, evs, more, err, tc.more)
		}
	}
}
