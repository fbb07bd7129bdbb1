package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fraiseql/subscriptions/cluster/clustertest"
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
	c := fakeStreamCluster(t, "OLDSERVER")
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

// TestReadBatchStaleFollower: on a replicated stream, a direct get
// answered by a follower that has not applied the newest events yet ends
// early; readBatch takes the next event from the leader and says more.
func TestReadBatchStaleFollower(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := fakeStreamCluster(t, "STALE")
	follower, err := c.nc.Subscribe("$JS.API.DIRECT.GET.STALE", func(m *nats.Msg) {
		reply := nats.NewMsg(m.Reply)
		reply.Header.Set("Status", "404")
		m.RespondMsg(reply) //nolint:errcheck // the test reads the outcome
	})
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Unsubscribe() //nolint:errcheck // closed with the connection
	leader, err := c.nc.Subscribe("$JS.API.STREAM.MSG.GET.STALE", func(m *nats.Msg) {
		m.Respond([]byte(`{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"fraiseql.acme.chat","seq":9,"data":"eyJuIjo5fQ==","time":"2026-12-03T09:00:00Z"}}`)) //nolint:errcheck // the test reads the outcome
	})
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Unsubscribe() //nolint:errcheck // closed with the connection
	r := &replayer{c: c, subj: "fraiseql.acme.chat", tenant: "acme", topic: "chat"}
	evs, more, err := r.readBatch(ctx, 5, 12, true, nil)
	if err != nil || len(evs) != 1 || evs[0].Seq != 9 || string(evs[0].Data) != `{"n":9}` || !more {
		t.Fatalf("readBatch = %+v, more %v, %v; want the leader's seq 9, more", evs, more, err)
	}
	// Not replicated: the follower's answer is final.
	if evs, more, err := r.readBatch(ctx, 5, 12, false, nil); err != nil || len(evs) != 0 || more {
		t.Fatalf("readBatch (one replica) = %+v, more %v, %v; want nothing", evs, more, err)
	}
	// The leader's next event is past last: nothing.
	if evs, more, err := r.readBatch(ctx, 5, 8, true, nil); err != nil || len(evs) != 0 || more {
		t.Fatalf("readBatch (last 8) = %+v, more %v, %v; want nothing", evs, more, err)
	}
}

// fakeStreamCluster is a Cluster connected to a plain NATS server (no
// JetStream), whose stream requests the test answers itself.
func fakeStreamCluster(t *testing.T, stream string) *Cluster {
	t.Helper()
	opts := clustertest.Options(t.TempDir())
	opts.JetStream = false
	url := clustertest.StartServer(t, opts).ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := &Cluster{cfg: Config{Stream: stream, Prefix: DefaultPrefix}, nc: nc, metrics: newMetrics()}
	c.replayMux.nc = nc
	return c
}
