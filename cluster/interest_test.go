package cluster_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

func interestCfg(url string) cluster.Config {
	return cluster.Config{URL: url, Prefix: "fq", Stream: "EV", Ingest: cluster.IngestInterest}
}

// collect records the events fn receives, by subject.
type collect struct {
	mu  sync.Mutex
	evs map[string][]*cluster.Event
}

func (c *collect) fn(e *cluster.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.evs == nil {
		c.evs = make(map[string][]*cluster.Event)
	}
	c.evs[e.Subject] = append(c.evs[e.Subject], e)
}

func (c *collect) seqs(subj string) []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []uint64
	for _, e := range c.evs[subj] {
		out = append(out, e.Seq)
	}
	return out
}

// waitSeqs waits until subj's events are exactly want, in order.
func (c *collect) waitSeqs(t *testing.T, subj string, want []uint64) {
	t.Helper()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := c.seqs(subj); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("%s: events %v, want %v", subj, got, want)
		}
		return nil
	})
}

func publishN(t *testing.T, c *cluster.Cluster, topic string, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := range n {
		seqs = append(seqs, mustPublish(t, c, "acme", topic, `{"n":`+strconv.Itoa(i)+`}`, "").Seq)
	}
	return seqs
}

// interestOn starts c's interest consumer, collecting its events, and
// declares interest in subjects.
func interestOn(t *testing.T, c *cluster.Cluster, subjects ...string) *collect {
	t.Helper()
	got := &collect{}
	k, err := c.Consume(testCtx(t), got.fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	for _, s := range subjects {
		if err := c.Interest(testCtx(t), s); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

func TestInterestConfig(t *testing.T) {
	if err := (cluster.Config{Ingest: "all"}).Validate(); err == nil || !errorsContain(err, "nats.ingest:") {
		t.Fatalf("Validate(ingest all) = %v, want an error naming nats.ingest", err)
	}
	if err := (cluster.Config{Ingest: cluster.IngestInterest, Prefix: "_live"}).Validate(); err == nil || !errorsContain(err, "nats.prefix:") {
		t.Fatalf("Validate(interest, prefix _live) = %v, want an error naming nats.prefix", err)
	}
	for _, mode := range []string{"", cluster.IngestStream, cluster.IngestInterest} {
		if err := (cluster.Config{Ingest: mode}).Validate(); err != nil {
			t.Fatalf("Validate(ingest %q) = %v", mode, err)
		}
	}
}

func errorsContain(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// Interest mode adds RePublish to a stream that has none (CreateOrUpdate
// of an existing stream), and a node in stream mode keeps it.
func TestInterestRePublishOnExistingStream(t *testing.T) {
	url := clustertest.RunServer(t)
	streamCfg := interestCfg(url)
	streamCfg.Ingest = ""
	c1 := open(t, streamCfg)
	if got := streamConfig(t, c1, "EV"); got.RePublish != nil {
		t.Fatalf("stream mode: RePublish = %+v, want none", got.RePublish)
	}
	mustPublish(t, c1, "acme", "a", `{}`, "")
	c2 := open(t, interestCfg(url))
	got := streamConfig(t, c2, "EV")
	if got.RePublish == nil || got.RePublish.Source != "fq.>" || got.RePublish.Destination != "_live.fq.>" {
		t.Fatalf("interest mode: RePublish = %+v, want fq.> -> _live.fq.>", got.RePublish)
	}
	c3 := open(t, streamCfg)
	if got := streamConfig(t, c3, "EV"); got.RePublish == nil {
		t.Fatal("a node in stream mode removed the RePublish that interest mode needs")
	}
}

// A node receives a subject's events only between its first Interest and
// its last Uninterest.
func TestInterestFollowsSubscriptions(t *testing.T) {
	c := open(t, interestCfg(clustertest.RunServer(t)))
	var got collect
	k, err := c.Consume(testCtx(t), got.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	if _, err := c.Consume(testCtx(t), got.fn); err == nil {
		t.Fatal("a second interest consumer on one connection started")
	}
	const a, b = "fq.acme.room.a", "fq.acme.room.b"
	publishN(t, c, "room.a", 2) // before any interest: never delivered
	if err := c.Interest(testCtx(t), a); err != nil {
		t.Fatal(err)
	}
	if err := c.Interest(testCtx(t), a); err != nil { // a second subscriber
		t.Fatal(err)
	}
	if subjects, _, _, _ := c.IngestStatsForTest(); subjects != 1 {
		t.Fatalf("fraiseql_ingest_subjects = %v, want 1", subjects)
	}
	sa := publishN(t, c, "room.a", 3)
	publishN(t, c, "room.b", 3)
	got.waitSeqs(t, a, sa)
	c.Uninterest(a) // one subscriber left
	sa = append(sa, publishN(t, c, "room.a", 1)...)
	got.waitSeqs(t, a, sa)
	if n := c.ConsumedForTest(); n != 4 {
		t.Fatalf("consumed = %v, want 4 (room.a only)", n)
	}
	c.Uninterest(a) // none left
	if subjects, _, _, _ := c.IngestStatsForTest(); subjects != 0 {
		t.Fatalf("fraiseql_ingest_subjects = %v, want 0", subjects)
	}
	publishN(t, c, "room.a", 3)
	if err := c.Interest(testCtx(t), b); err != nil {
		t.Fatal(err)
	}
	sb := publishN(t, c, "room.b", 2)
	got.waitSeqs(t, b, sb) // b's events come after a's in the stream
	got.waitSeqs(t, a, sa)
	if n := c.ConsumedForTest(); n != 6 {
		t.Fatalf("consumed = %v, want 6", n)
	}
	if err := c.Interest(testCtx(t), "other.acme.x"); !errors.Is(err, cluster.ErrBadTopic) {
		t.Fatalf("Interest outside the prefix = %v", err)
	}
}

// Republished events that never arrive are read from the stream before
// the next event of their subject is delivered: in order, no duplicate.
func TestInterestRepairsGap(t *testing.T) {
	c := open(t, interestCfg(clustertest.RunServer(t)))
	const a = "fq.acme.room.a"
	got := interestOn(t, c, a)
	var mu sync.Mutex
	dropped := map[uint64]bool{}
	n := 0
	c.DropLiveForTest(func(subj string, seq uint64) bool {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 2 || n == 3 || n == 6 { // the 2nd, 3rd and 6th
			dropped[seq] = true
			return true
		}
		return false
	})
	seqs := publishN(t, c, "room.a", 8)
	publishN(t, c, "room.b", 2) // interleaved subjects do not count as gaps
	got.waitSeqs(t, a, seqs)
	_, gaps, repaired, _ := c.IngestStatsForTest()
	// A check of the subject against the stream may find an event in
	// flight first and read it too: at least, not exactly.
	if gaps < 2 || repaired < 3 {
		t.Fatalf("gaps %v repaired %v, want at least 2 and 3", gaps, repaired)
	}
	mu.Lock()
	if len(dropped) != 3 {
		t.Fatalf("dropped %v", dropped)
	}
	mu.Unlock()
}

// A gap at a subject's end (no later event shows it) is repaired after a
// reconnect.
func TestInterestRepairsTailGapAfterReconnect(t *testing.T) {
	c := open(t, interestCfg(clustertest.RunServer(t)))
	const a = "fq.acme.room.a"
	got := interestOn(t, c, a)
	seqs := publishN(t, c, "room.a", 2)
	got.waitSeqs(t, a, seqs)
	c.DropLiveForTest(func(string, uint64) bool { return true })
	more := publishN(t, c, "room.a", 2)
	time.Sleep(200 * time.Millisecond)
	if s := got.seqs(a); len(s) != 2 {
		t.Fatalf("dropped events delivered: %v", s)
	}
	c.DropLiveForTest(nil)
	if err := c.Conn().ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	got.waitSeqs(t, a, append(seqs, more...))
	if _, _, _, resyncs := c.IngestStatsForTest(); resyncs < 1 {
		t.Fatalf("resyncs = %v, want at least 1", resyncs)
	}
}

// NATS drops republished events when the node reads them too slowly (a
// slow consumer on its connection); they are read from the stream, in
// order, without duplicates.
func TestInterestRepairsSlowConsumerDrops(t *testing.T) {
	defer cluster.SmallLiveBufferForTest(4, 200*time.Millisecond)()
	c := open(t, interestCfg(clustertest.RunServer(t)))
	var got collect
	block := make(chan struct{})
	var once sync.Once
	k, err := c.Consume(testCtx(t), func(e *cluster.Event) {
		once.Do(func() { <-block }) // the first event holds the loop
		got.fn(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	const a, b = "fq.acme.room.a", "fq.acme.room.b"
	for _, s := range []string{a, b} {
		if err := c.Interest(testCtx(t), s); err != nil {
			t.Fatal(err)
		}
	}
	var sa, sb []uint64
	for range 20 {
		sa = append(sa, publishN(t, c, "room.a", 1)...)
		sb = append(sb, publishN(t, c, "room.b", 1)...)
	}
	close(block)
	got.waitSeqs(t, a, sa)
	got.waitSeqs(t, b, sb)
	_, _, repaired, _ := c.IngestStatsForTest()
	if repaired == 0 {
		t.Fatal("nothing was repaired: the test did not make NATS drop events")
	}
}

// Interest after the consumer stopped, or on a closed Cluster, fails;
// in stream mode Interest and Uninterest do nothing.
func TestInterestModes(t *testing.T) {
	url := clustertest.RunServer(t)
	s := open(t, cluster.Config{URL: url, Prefix: "fq", Stream: "EV"})
	if err := s.Interest(testCtx(t), "fq.acme.a"); err != nil {
		t.Fatalf("stream mode Interest = %v", err)
	}
	s.Uninterest("fq.acme.a")
	c := open(t, interestCfg(url))
	c.Close()
	if err := c.Interest(testCtx(t), "fq.acme.a"); !errors.Is(err, cluster.ErrClosed) {
		t.Fatalf("Interest after Close = %v", err)
	}
}

// A node with subscribers on a quarter of the subjects receives a quarter
// of the events with interest ingest, all of them with stream ingest; the
// log shows each connection's messages and bytes in (the measurement in
// docs/architecture.md, Ingest by interest):
//
//	go test -run TestInterestShareOfSubjects -v ./cluster/
func TestInterestShareOfSubjects(t *testing.T) {
	url := clustertest.RunServer(t)
	const subjects, perSubject, wanted = 16, 50, 4
	streamCfg := interestCfg(url)
	streamCfg.Ingest = cluster.IngestStream
	all := open(t, streamCfg)
	some := open(t, interestCfg(url))
	pub := open(t, streamCfg)
	var allN, someN atomic.Int64
	ka, err := all.Consume(testCtx(t), func(*cluster.Event) { allN.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer ka.Stop()
	ks, err := some.Consume(testCtx(t), func(*cluster.Event) { someN.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Stop()
	start := time.Now()
	for i := range wanted {
		if err := some.Interest(testCtx(t), "fq.acme.room."+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("interest in %d new subjects: %v", wanted, time.Since(start))
	a0, s0 := all.Conn().Stats(), some.Conn().Stats()
	for range perSubject {
		for s := range subjects {
			mustPublish(t, pub, "acme", "room."+strconv.Itoa(s), `{"text":"0123456789012345678901234567890123456789"}`, "")
		}
	}
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if a, s := allN.Load(), someN.Load(); a != subjects*perSubject || s != wanted*perSubject {
			return fmt.Errorf("stream ingest consumed %d, interest ingest %d; want %d and %d", a, s, subjects*perSubject, wanted*perSubject)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // nothing more comes
	if a, s := allN.Load(), someN.Load(); a != subjects*perSubject || s != wanted*perSubject {
		t.Fatalf("stream ingest consumed %d, interest ingest %d; want %d and %d", a, s, subjects*perSubject, wanted*perSubject)
	}
	a1, s1 := all.Conn().Stats(), some.Conn().Stats()
	t.Logf("%d events on %d subjects, subscribers on %d", subjects*perSubject, subjects, wanted)
	t.Logf("stream ingest:   consumed %4d, connection in: %4d msgs, %6d bytes", allN.Load(), a1.InMsgs-a0.InMsgs, a1.InBytes-a0.InBytes)
	t.Logf("interest ingest: consumed %4d, connection in: %4d msgs, %6d bytes", someN.Load(), s1.InMsgs-s0.InMsgs, s1.InBytes-s0.InBytes)
}

// A stream deleted and recreated (by a node in stream mode, so without
// RePublish) is noticed: the consumer restores the RePublish and
// delivers the new stream's events, whose sequences start again at 1.
func TestInterestStreamRecreated(t *testing.T) {
	defer cluster.FastInterestRefreshForTest(100 * time.Millisecond)()
	url := clustertest.RunServer(t)
	c := open(t, interestCfg(url))
	var got collect
	k, err := c.Consume(testCtx(t), got.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	const a = "fq.acme.room.a"
	if err := c.Interest(testCtx(t), a); err != nil {
		t.Fatal(err)
	}
	first := publishN(t, c, "room.a", 3)
	got.waitSeqs(t, a, first)
	if err := c.JetStream().DeleteStream(testCtx(t), "EV"); err != nil {
		t.Fatal(err)
	}
	streamCfg := interestCfg(url)
	streamCfg.Ingest = cluster.IngestStream
	s := openAfterDelete(t, streamCfg)
	if got := streamConfig(t, s, "EV"); got.RePublish != nil {
		t.Fatalf("recreated stream has RePublish %+v", got.RePublish)
	}
	second := publishN(t, s, "room.a", 2) // not republished: read from the stream
	if second[0] != 1 {
		t.Fatalf("recreated stream's first sequence %d", second[0])
	}
	want := append(append([]uint64{}, first...), second...)
	got.waitSeqs(t, a, want)
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if streamConfig(t, s, "EV").RePublish == nil {
			return errors.New("RePublish not restored")
		}
		return nil
	})
	got.waitSeqs(t, a, append(want, publishN(t, s, "room.a", 1)...))
}

// Across servers: the stream's leader republishes every event, and NATS
// routes it only to the servers of nodes with interest. A node on a
// server other than the leader's gets every event of its subject, in
// order, from the first one published after Interest returns; a node
// without interest gets none.
func TestInterestAcrossServers(t *testing.T) {
	urls, servers := clustertest.RunCluster(t, 3)
	cfg := func(i int) cluster.Config {
		c := interestCfg(urls[i])
		c.Replicas = 3
		return c
	}
	pub := open(t, cfg(0))
	st, err := pub.JetStream().Stream(testCtx(t), "EV")
	if err != nil {
		t.Fatal(err)
	}
	leader := st.CachedInfo().Cluster.Leader
	var others []int
	for i, s := range servers {
		if s.Name() != leader {
			others = append(others, i)
		}
	}
	if len(others) != 2 {
		t.Fatalf("stream leader %q: want two other servers", leader)
	}
	node, idle := open(t, cfg(others[0])), open(t, cfg(others[1]))
	var got collect
	k, err := node.Consume(testCtx(t), got.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	ki, err := idle.Consume(testCtx(t), func(*cluster.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	defer ki.Stop()
	const a = "fq.acme.room.a"
	if err := node.Interest(testCtx(t), a); err != nil {
		t.Fatal(err)
	}
	seqs := publishN(t, pub, "room.a", 30) // at once: the interest may still be on its way to the leader
	publishN(t, pub, "room.b", 5)
	got.waitSeqs(t, a, seqs)
	time.Sleep(200 * time.Millisecond)
	if n := idle.ConsumedForTest(); n != 0 {
		t.Fatalf("a node without interest consumed %v events", n)
	}
	_, gaps, repaired, _ := node.IngestStatsForTest()
	t.Logf("gaps %v, repaired %v", gaps, repaired)
}

// An event of the largest size is republished like any other (the
// republish headers fit in the room the stream keeps for headers).
func TestInterestLargestEvent(t *testing.T) {
	c := open(t, interestCfg(clustertest.RunServer(t)))
	const a = "fq.acme.room.a"
	got := interestOn(t, c, a)
	// The check of every subject against the stream that starting a
	// consumer asks for may run while the large events are on their way
	// and count them as a gap (harmless: they are read from the stream,
	// their republished copies skipped). A first event, once delivered,
	// shows that check done; gaps are counted from there.
	seqs := publishN(t, c, "room.a", 1)
	got.waitSeqs(t, a, seqs)
	_, gapsBefore, _, _ := c.IngestStatsForTest()
	body := make([]byte, c.MaxMsgSize())
	for i := range body {
		body[i] = 'x'
	}
	for range 3 {
		r, err := c.Publish(testCtx(t), "acme", "room.a", body, strings.Repeat("i", 1000)+strconv.Itoa(len(seqs)))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Seq)
	}
	got.waitSeqs(t, a, seqs)
	if _, gaps, _, _ := c.IngestStatsForTest(); gaps != gapsBefore {
		t.Fatalf("%v gaps: the largest events were not republished", gaps-gapsBefore)
	}
}

// A repair of one subject does not delay another: while subject A's
// missing event is being read from the stream (held here), subject B's
// events are delivered; A's later events wait for the repair, then come
// in order.
func TestInterestRepairDelaysOnlyItsSubject(t *testing.T) {
	c := open(t, interestCfg(clustertest.RunServer(t)))
	const a, b = "fq.acme.room.a", "fq.acme.room.b"
	got := interestOn(t, c, a, b)
	sa := publishN(t, c, "room.a", 1)
	got.waitSeqs(t, a, sa)

	release := c.HoldRepairsForTest(a)
	defer release()
	var dropped atomic.Bool
	c.DropLiveForTest(func(subj string, _ uint64) bool {
		return subj == a && dropped.CompareAndSwap(false, true) // A's next event is lost
	})
	sa = append(sa, publishN(t, c, "room.a", 3)...) // the 2nd and 3rd show the gap
	sb := publishN(t, c, "room.b", 5)
	got.waitSeqs(t, b, sb) // B goes on while A's repair is held
	if s := got.seqs(a); fmt.Sprint(s) != fmt.Sprint(sa[:1]) {
		t.Fatalf("%s delivered %v during its repair, want only %v: later events must wait for the missing one", a, s, sa[:1])
	}
	release()
	got.waitSeqs(t, a, sa)
	got.waitSeqs(t, b, sb)
	if !dropped.Load() {
		t.Fatal("no event was dropped")
	}
}

// A subject's interest starts although no server answers direct gets at
// first (a stream just created, whose replicas' responders have not
// reached every server yet): the read of its last sequence is retried.
func TestInterestStartsThroughNoResponders(t *testing.T) {
	c := open(t, interestCfg(clustertest.RunServer(t)))
	c.NoRespondersForTest(3)
	const a = "fq.acme.room.a"
	got := interestOn(t, c, a)
	seqs := publishN(t, c, "room.a", 3)
	got.waitSeqs(t, a, seqs)
}

// A repair read that gets no answer (its request lost with a dying
// server, or its reply just after a reconnect) is given up after 250 ms
// the first time, not after the 5 s a resume's read may wait, and
// retried: the subject's events then come complete, in order.
func TestInterestUnansweredRepairIsRetried(t *testing.T) {
	c := open(t, interestCfg(clustertest.RunServer(t)))
	const a = "fq.acme.room.a"
	got := interestOn(t, c, a)
	seqs := publishN(t, c, "room.a", 1)
	got.waitSeqs(t, a, seqs)
	wait := c.UnansweredRepairsForTest(1)
	var dropped atomic.Bool
	c.DropLiveForTest(func(string, uint64) bool { return dropped.CompareAndSwap(false, true) })
	seqs = append(seqs, publishN(t, c, "room.a", 3)...)
	got.waitSeqs(t, a, seqs)
	if n := c.RepairErrorsForTest(); n != 1 {
		t.Fatalf("repair errors %v, want 1 (the unanswered read)", n)
	}
	if w := wait(); w <= 0 || w > 250*time.Millisecond {
		t.Fatalf("the unanswered read waited %v, want at most 250ms", w)
	}
}
