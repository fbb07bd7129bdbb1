package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Ingest modes (Config.Ingest).
const (
	// IngestStream: one ordered consumer per node over every subject.
	IngestStream = "stream"
	// IngestInterest: the stream republishes every stored event on
	// "_live.<prefix>.<tenant>.<topic>"; a node holds one core NATS
	// subscription per subject it has subscribers for (Interest), so
	// NATS routes each event only to the nodes that want it.
	IngestInterest = "interest"
)

// livePrefix is the first token of the subjects the stream republishes
// to in interest mode: "_live.<prefix>.>" never overlaps "<prefix>.>".
const livePrefix = "_live"

// Interest ingest tuning; variables so that tests can shrink them.
var (
	// liveBuffer is the messages of every core subscription waiting for
	// the ingest loop; when full, NATS drops the next ones and reports a
	// slow consumer, and the loop repairs from the stream. It bounds the
	// memory they hold to liveBuffer × the largest event.
	liveBuffer = 1024
	// liveHeld bounds the events of a subject held while its interest
	// starts (before its base sequence is known); past it they are
	// dropped and read from the stream instead.
	liveHeld = 1024
	// resyncRetry is the wait before retrying a failed repair.
	resyncRetry = time.Second
	// interestRefresh is how often the consumer checks the stream: its
	// identity (cursors; a recreated stream restarts its sequences) and
	// its RePublish (a node of an older version may have removed it).
	interestRefresh = streamRefresh
)

// liveSubject returns the republish subject of a stream subject.
func liveSubject(subj string) string { return livePrefix + "." + subj }

// rePublishOf returns the stream's RePublish source and destination for
// prefix.
func rePublishOf(prefix string) (src, dst string) {
	return prefix + ".>", liveSubject(prefix + ".>")
}

// ingest is the interest-mode state of a Cluster: the subjects this node
// has interest in, and the loop of the running interest consumer.
type ingest struct {
	mu    sync.Mutex
	feeds map[string]*feed // by stream subject; guarded by mu
	k     *Consumer        // the running interest consumer; guarded by mu

	msgs   chan *nats.Msg // every core subscription delivers here
	starts chan start     // subjects whose base sequence is known
	resync chan struct{}  // cap 1: check every subject against the stream
	reset  chan struct{}  // cap 1: the stream was recreated

	// dropLive, if set, drops the republished messages it returns true
	// for, as a lossy network would (tests).
	dropLive atomic.Pointer[func(*nats.Msg) bool]
}

// feed is one subject's interest.
type feed struct {
	r     *replayer
	refs  int                // guarded by ingest.mu
	sub   *nats.Subscription // guarded by ingest.mu
	ready chan struct{}      // closed once err is set or the feed is started
	err   error              // why it could not start; set before ready closes

	// Owned by the ingest loop:
	started bool
	last    uint64      // stream sequence of the last event delivered (or the base)
	held    []*nats.Msg // arrived before the start was processed
	lost    bool        // held overflowed: repair up to the stream's last
}

type start struct {
	f    *feed
	base uint64
}

func newIngest() *ingest {
	return &ingest{
		feeds:  make(map[string]*feed),
		msgs:   make(chan *nats.Msg, liveBuffer),
		starts: make(chan start, 64),
		resync: make(chan struct{}, 1),
		reset:  make(chan struct{}, 1),
	}
}

// kick asks the loop to check every subject against the stream (after a
// reconnect or a slow-consumer drop).
func (in *ingest) kick() {
	select {
	case in.resync <- struct{}{}:
	default:
	}
}

// Interest declares that this node needs the events of subject
// ("<prefix>.<tenant>.<topic>") and returns once it will receive them: in
// interest mode (Config.Ingest), the running consumer delivers to its fn
// every event of subject stored after Interest returns (and possibly a
// few stored just before), in order and without gaps, until as many
// Uninterest calls as successful Interest calls. It subscribes to the
// subject's republished events on its first call. In stream mode it does
// nothing. A failed Interest takes no reference: do not Uninterest it.
func (c *Cluster) Interest(ctx context.Context, subject string) error {
	in := c.ingest
	if in == nil {
		return nil
	}
	if c.closed.Load() {
		return ErrClosed
	}
	tenant, topic, ok := parseSubject(c.cfg.Prefix, subject)
	if !ok {
		return fmt.Errorf("interest %q: %w", subject, ErrBadTopic)
	}
	in.mu.Lock()
	if f := in.feeds[subject]; f != nil {
		f.refs++
		in.mu.Unlock()
		select {
		case <-f.ready:
			return f.err // a failed feed is gone, with its references
		case <-ctx.Done():
			c.unref(f)
			return ctx.Err()
		}
	}
	f := &feed{r: &replayer{c: c, subj: subject, tenant: tenant, topic: topic}, refs: 1, ready: make(chan struct{})}
	in.feeds[subject] = f
	c.metrics.interestSubjects.Inc()
	in.mu.Unlock()

	err := c.startFeed(ctx, f)
	if err != nil {
		in.mu.Lock()
		if in.feeds[subject] == f {
			delete(in.feeds, subject)
			c.metrics.interestSubjects.Dec()
		}
		if f.sub != nil {
			_ = f.sub.Unsubscribe()
		}
		in.mu.Unlock()
		f.err = fmt.Errorf("interest %s: %w", subject, err)
	}
	close(f.ready)
	return f.err
}

// startFeed subscribes to f's republished events, then reads the
// subject's last stored sequence: every later event reaches the loop,
// republished or repaired. The loop learns the base through starts.
func (c *Cluster) startFeed(ctx context.Context, f *feed) error {
	in := c.ingest
	sub, err := c.nc.ChanSubscribe(liveSubject(f.r.subj), in.msgs)
	if err != nil {
		return err
	}
	in.mu.Lock()
	f.sub = sub
	in.mu.Unlock()
	// The local server has the subscription once it answers the flush;
	// republished events from the stream leader may still take a route
	// hop to reach it, which the loop's gap checks cover.
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	base, err := c.lastSeqOf(ctx, f.r.subj)
	if err != nil {
		return err
	}
	select {
	case in.starts <- start{f, base}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.flightCtx.Done():
		return ErrClosed
	}
}

// Uninterest drops one reference taken by Interest; the last one ends
// the subject's subscription. In stream mode it does nothing.
func (c *Cluster) Uninterest(subject string) {
	in := c.ingest
	if in == nil {
		return
	}
	in.mu.Lock()
	f := in.feeds[subject]
	in.mu.Unlock()
	if f != nil {
		c.unref(f)
	}
}

// unref drops one reference to f, ending f's subscription with the last.
func (c *Cluster) unref(f *feed) {
	in := c.ingest
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.feeds[f.r.subj] != f {
		return // failed or ended
	}
	if f.refs--; f.refs > 0 {
		return
	}
	delete(in.feeds, f.r.subj)
	c.metrics.interestSubjects.Dec()
	if f.sub != nil {
		_ = f.sub.Unsubscribe()
	}
}

// lastSeqOf returns the stream sequence of subj's last stored event, 0
// if it has none, with a direct get (any replica may answer: one behind
// gives an earlier sequence, so the loop reads a few events more).
func (c *Cluster) lastSeqOf(ctx context.Context, subj string) (uint64, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subj})
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, replayReadTimeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(rctx, "$JS.API.DIRECT.GET."+c.cfg.Stream, req)
	if err != nil {
		return 0, fmt.Errorf("last of %s: %w", subj, err)
	}
	switch status := msg.Header.Get(hdrStatus); status {
	case "":
	case "404":
		return 0, nil
	default:
		return 0, fmt.Errorf("last of %s: status %s %s", subj, status, msg.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(msg.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("last of %s: bad %s header %q", subj, hdrSequence, msg.Header.Get(hdrSequence))
	}
	return seq, nil
}

// consumeInterest starts the interest-mode consumer (see Consume).
func (c *Cluster) consumeInterest(fn func(*Event)) (*Consumer, error) {
	in := c.ingest
	k := &Consumer{
		c:         c,
		fn:        fn,
		name:      sanitizeName(c.cfg.Name),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		watchDone: make(chan struct{}),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, ErrClosed
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.k != nil {
		return nil, errors.New("consume: an interest consumer already runs on this connection")
	}
	in.k = k
	c.consumers[k] = struct{}{}
	in.kick()            // subjects declared before: whatever came meanwhile
	go k.runInterest()   // owned by k: signalStop ends it, Stop waits for it
	go k.watchInterest() // owned by k: signalStop ends it, Stop waits for it
	return k, nil
}

// runInterest is the interest consumer's loop: it delivers each subject's
// republished events in order, repairing from the stream any it did not
// receive, until Stop.
//
// Besides gaps that a later event shows (its Nats-Last-Sequence), it
// checks subjects against the stream: all of them after a reconnect or a
// slow-consumer drop (kick), and again resyncRetry later, as a republish
// may still miss this node while its server's interest reaches the
// stream leader over a route; a subject resyncRetry after its interest
// starts, for the same reason; and any whose repair failed.
func (k *Consumer) runInterest() {
	defer close(k.done)
	in := k.c.ingest
	defer func() {
		in.mu.Lock()
		in.k = nil
		in.mu.Unlock()
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var retryC <-chan time.Time
	full := false       // check every subject at retry
	var recheck []*feed // check these at retry
	later := func() {
		if retryC == nil {
			retry.Reset(resyncRetry)
			retryC = retry.C
		}
	}
	for {
		select {
		case <-k.stop:
			return
		case msg := <-in.msgs:
			if f, ok := k.onLive(msg); !ok {
				recheck = append(recheck, f)
				later()
			}
		case s := <-in.starts:
			k.onStart(s)
			recheck = append(recheck, s.f)
			later()
		case <-in.resync:
			k.resyncAll()
			full = true
			later()
		case <-in.reset:
			k.resetAll()
			full = true
			later()
		case <-retryC:
			retryC = nil
			if full {
				full = !k.resyncAll()
				recheck = recheck[:0]
			} else {
				fs := recheck
				recheck = nil
				for _, f := range fs {
					if !k.resyncFeed(f) {
						recheck = append(recheck, f)
					}
				}
			}
			if full || len(recheck) > 0 {
				later()
			}
		}
		if k.stopped() {
			return
		}
	}
}

// watchInterest checks the stream every interestRefresh: a stream
// recreated meanwhile (new identity) restarts every subject from the
// new stream's start; a stream without this node's RePublish (a node of
// an earlier version updated it) gets it back, and every subject is then
// checked against the stream.
func (k *Consumer) watchInterest() {
	defer close(k.watchDone)
	c, in := k.c, k.c.ingest
	t := time.NewTicker(interestRefresh)
	defer t.Stop()
	want := c.streamConfig().RePublish
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.flightCtx, 5*time.Second)
		old := c.streamID.Load()
		info, err := c.streamInfo(ctx)
		if err != nil {
			cancel()
			continue
		}
		if id := info.Created.UnixNano(); old != 0 && id != old {
			select {
			case in.reset <- struct{}{}:
			default:
			}
		}
		if rp := info.Config.RePublish; rp == nil || *rp != *want {
			c.log.Warn("the event stream lost the republish that nats.ingest: interest needs; restoring it", "stream", c.cfg.Stream, "republish", rp)
			cfg := info.Config
			cfg.RePublish = want
			if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
				c.log.Warn("restore the stream's republish", "error", err)
			}
			in.kick()
		}
		cancel()
	}
}

// resetAll restarts every subject from the (recreated) stream's start.
func (k *Consumer) resetAll() {
	in := k.c.ingest
	in.mu.Lock()
	for _, f := range in.feeds {
		f.last = 0 // f is the loop's: only the map needs the lock
	}
	in.mu.Unlock()
	k.resyncAll()
}

// feedOf returns subj's current feed, nil when no one wants it.
func (in *ingest) feedOf(subj string) *feed {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.feeds[subj]
}

// onLive handles one republished message; ok=false means that a repair
// of f failed.
func (k *Consumer) onLive(msg *nats.Msg) (f *feed, ok bool) {
	in := k.c.ingest
	if drop := in.dropLive.Load(); drop != nil && (*drop)(msg) {
		return nil, true
	}
	if f = in.feedOf(msg.Header.Get(hdrSubject)); f == nil {
		return nil, true // interest ended
	}
	if !f.started {
		if len(f.held) < liveHeld {
			f.held = append(f.held, msg)
		} else {
			f.lost = true
		}
		return f, true
	}
	return f, k.live(f, msg)
}

// onStart processes a feed's base sequence and what it held meanwhile.
// The loop checks the feed against the stream resyncRetry later, which
// also repairs whatever failed here.
func (k *Consumer) onStart(s start) {
	f := s.f
	if k.c.ingest.feedOf(f.r.subj) != f {
		return // interest ended meanwhile
	}
	f.started, f.last = true, s.base
	held := f.held
	f.held = nil
	for _, msg := range held {
		if !k.live(f, msg) {
			return
		}
	}
	if f.lost {
		f.lost = false
		k.resyncFeed(f)
	}
}

// live delivers one republished message of f, after the events the
// subject stored before it that this node has not delivered, if any
// (Nats-Last-Sequence, the subject's previous sequence, is past the
// last delivered). false means that repair failed: the message is
// dropped, and a later message or resync repairs from the same place.
func (k *Consumer) live(f *feed, msg *nats.Msg) bool {
	c := k.c
	seq, err := strconv.ParseUint(msg.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		c.metrics.skippedMetadata.Inc()
		c.log.Warn("skipping republished event without a sequence", "subject", f.r.subj)
		return true
	}
	if seq <= f.last {
		return true // delivered already (repaired)
	}
	prev, err := strconv.ParseUint(msg.Header.Get(hdrLastSequence), 10, 64)
	if err != nil || prev > f.last {
		if err == nil {
			c.metrics.interestGaps.Inc()
		}
		if !k.repair(f, seq-1) {
			return false
		}
	}
	ev, err := f.r.event(msg)
	if err != nil {
		c.metrics.skippedMetadata.Inc()
		c.log.Warn("skipping republished event", "subject", f.r.subj, "seq", seq, "error", err)
		return true
	}
	k.deliverEvent(f, ev)
	return true
}

// deliverEvent calls fn with ev and records it as f's last.
func (k *Consumer) deliverEvent(f *feed, ev *Event) {
	f.last = ev.Seq
	k.c.metrics.consumed.Inc()
	k.fn(ev)
}

// repair delivers f's stored events with last < seq <= upTo, read from
// the stream with direct gets. false means a read failed; what was read
// is delivered.
func (k *Consumer) repair(f *feed, upTo uint64) bool {
	c := k.c
	ctx, cancel := context.WithCancel(c.flightCtx)
	defer cancel()
	go func() { // owned by repair: ends when it returns
		select {
		case <-k.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for f.last < upTo {
		evs, more, err := f.r.readBatch(ctx, f.last+1, upTo, c.cfg.Replicas > 1, nil)
		if err != nil {
			if !k.stopped() && !k.c.closed.Load() { // not worth a warning while closing
				c.metrics.interestRepairErrors.Inc()
				c.log.Warn("cannot read missed events from the stream; retrying", "subject", f.r.subj, "after", f.last, "error", err)
			}
			return false
		}
		for _, ev := range evs {
			if ev.Seq > f.last {
				c.metrics.interestRepaired.Inc()
				k.deliverEvent(f, ev)
			}
		}
		if !more || len(evs) == 0 {
			return true // nothing else stored (or retention removed it)
		}
	}
	return true
}

// resyncFeed repairs f up to the subject's last stored event.
func (k *Consumer) resyncFeed(f *feed) bool {
	if k.c.ingest.feedOf(f.r.subj) != f {
		return true // interest ended
	}
	ctx, cancel := context.WithTimeout(k.c.flightCtx, replayReadTimeout)
	last, err := k.c.lastSeqOf(ctx, f.r.subj)
	cancel()
	if err != nil {
		if !k.stopped() && !k.c.closed.Load() { // not worth a warning while closing
			k.c.metrics.interestRepairErrors.Inc()
			k.c.log.Warn("cannot check a subject against the stream; retrying", "subject", f.r.subj, "error", err)
		}
		return false
	}
	if last <= f.last {
		return true
	}
	k.c.metrics.interestGaps.Inc()
	return k.repair(f, last)
}

// resyncAll checks every started subject against the stream: events may
// have been lost without a later one showing the gap (a reconnect, a
// slow-consumer drop).
func (k *Consumer) resyncAll() bool {
	in := k.c.ingest
	in.mu.Lock()
	feeds := make([]*feed, 0, len(in.feeds))
	for _, f := range in.feeds {
		feeds = append(feeds, f)
	}
	in.mu.Unlock()
	k.c.metrics.interestResyncs.Inc()
	ok := true
	for _, f := range feeds {
		if k.stopped() {
			return true
		}
		if !f.started {
			continue // onStart reads from its base
		}
		if !k.resyncFeed(f) {
			ok = false
		}
	}
	return ok
}

// hdrLastSequence is the republish header naming the stream sequence of
// the subject's previous message (0 for its first).
const hdrLastSequence = "Nats-Last-Sequence"
