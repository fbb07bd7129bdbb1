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
	// liveHeld and liveHeldBytes bound, per subject, the events held
	// while its interest starts (before its base sequence is known) or
	// while a repair of the subject is under way: their number, and the
	// sum of their bodies. An event past either is dropped and read from
	// the stream instead, once the subject is idle again.
	liveHeld      = 1024
	liveHeldBytes = 4 << 20
	// repairReads bounds the repairs reading from the stream at once
	// (each subject has at most one); the others wait for a slot.
	repairReads = 8
	// resyncRetry is the wait before checking subjects against the
	// stream once more (after a reconnect, a start), and the longest
	// wait before retrying a failed repair read.
	resyncRetry = time.Second
	// repairFirst and repairAttempt bound each repair read (a direct get
	// answers in milliseconds): the first waits repairFirst, each next
	// one twice as long up to repairAttempt. A request can get no answer
	// just after a reconnect (the reply's route to this node's new
	// server is not known everywhere yet) or with a dying server: it is
	// retried soon, not after the 5 s a resume's read may take.
	repairFirst   = 250 * time.Millisecond
	repairAttempt = time.Second
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

	msgs     chan *nats.Msg  // every core subscription delivers here
	starts   chan start      // subjects whose base sequence is known
	repaired chan repairDone // what each repair read
	resync   chan struct{}   // cap 1: check every subject against the stream
	reset    chan struct{}   // cap 1: the stream was recreated
	slots    chan struct{}   // repairReads: repairs reading at once

	// holdRepair, if set, is called by each repair before it reads
	// (tests: a slow repair).
	holdRepair atomic.Pointer[func(subject string)]
	// noResponders fails that many reads of a starting subject's last
	// sequence with "no responders" (tests: a stream just created).
	noResponders atomic.Int32
	// unanswered makes that many repair reads get no answer (tests: a
	// request lost with a dying server); unansweredWait records how long
	// the last one was to wait for it.
	unanswered     atomic.Int32
	unansweredWait atomic.Int64

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
	started   bool
	last      uint64      // stream sequence of the last event delivered (or the base)
	repairing bool        // a repair of this subject is under way
	held      []*nats.Msg // arrived before the start, or during the repair
	heldBytes int         // the sum of held's bodies
	resync    bool        // check against the stream's last once idle (held overflowed, a resync came)
	gen       uint64      // incremented when the stream is recreated: older repairs are void
}

// repairDone is what one repair read for a subject: evs, the subject's
// events after the feed's last up to upTo (or the first of them, a
// batch: more then says there are others).
type repairDone struct {
	f    *feed
	gen  uint64
	evs  []*Event
	more bool
	upTo uint64
}

type start struct {
	f    *feed
	base uint64
}

func newIngest() *ingest {
	return &ingest{
		feeds:    make(map[string]*feed),
		msgs:     make(chan *nats.Msg, liveBuffer),
		starts:   make(chan start, 64),
		repaired: make(chan repairDone, 64),
		resync:   make(chan struct{}, 1),
		reset:    make(chan struct{}, 1),
		slots:    make(chan struct{}, repairReads),
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
	base, err := c.firstLastSeqOf(ctx, f.r.subj)
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

// firstLastSeqOf is lastSeqOf for a subject's start, retried under ctx
// while no server answers direct gets: just after the stream is created
// (or its servers restart) its replicas' direct-get subscriptions take a
// moment to reach every server, and a subscription must not fail for it.
func (c *Cluster) firstLastSeqOf(ctx context.Context, subj string) (uint64, error) {
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		var seq uint64
		var err error
		if n := c.ingest.noResponders.Load(); n > 0 && c.ingest.noResponders.CompareAndSwap(n, n-1) {
			err = fmt.Errorf("last of %s: %w (test)", subj, nats.ErrNoResponders)
		} else {
			seq, err = c.lastSeqOf(ctx, subj)
		}
		if err == nil || !errors.Is(err, nats.ErrNoResponders) {
			return seq, err
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(wait):
		}
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
	k.ctx, k.cancel = context.WithCancel(c.flightCtx) // signalStop cancels it: repairs stop reading
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
// receive, until Stop. It is the only goroutine that calls fn.
//
// A repair reads from the stream on its own goroutine (repair), at most
// repairReads at once: meanwhile the loop holds that subject's later
// events (bounded, see liveHeld) and goes on delivering every other
// subject's, so a slow read delays only its own subject.
//
// Besides gaps that a later event shows (its Nats-Last-Sequence), it
// checks subjects against the stream: all of them after a reconnect or a
// slow-consumer drop (kick), and again resyncRetry later, as a republish
// may still miss this node while its server's interest reaches the
// stream leader over a route; and a subject resyncRetry after its
// interest starts, for the same reason.
func (k *Consumer) runInterest() {
	defer close(k.done)
	in := k.c.ingest
	defer k.repairs.Wait() // they end with k.ctx, which signalStop cancels
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
			k.onLive(msg)
		case s := <-in.starts:
			k.onStart(s)
			recheck = append(recheck, s.f)
			later()
		case r := <-in.repaired:
			k.onRepaired(r)
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
				k.resyncAll()
			} else {
				for _, f := range recheck {
					k.resyncFeed(f)
				}
			}
			full, recheck = false, nil
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

// resetAll restarts every subject from the (recreated) stream's start;
// repairs under way for the old stream are void.
func (k *Consumer) resetAll() {
	in := k.c.ingest
	in.mu.Lock()
	feeds := make([]*feed, 0, len(in.feeds))
	for _, f := range in.feeds {
		feeds = append(feeds, f)
	}
	in.mu.Unlock()
	for _, f := range feeds { // f's fields are the loop's
		f.last = 0
		f.gen++
	}
	k.resyncAll()
}

// feedOf returns subj's current feed, nil when no one wants it.
func (in *ingest) feedOf(subj string) *feed {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.feeds[subj]
}

// onLive handles one republished message.
func (k *Consumer) onLive(msg *nats.Msg) {
	in := k.c.ingest
	if drop := in.dropLive.Load(); drop != nil && (*drop)(msg) {
		return
	}
	if f := in.feedOf(msg.Header.Get(hdrSubject)); f != nil { // else interest ended
		k.live(f, msg)
	}
}

// hold keeps msg of f until f's start or repair is done; past f's bounds
// (liveHeld, liveHeldBytes) it drops msg, to be read from the stream
// once f is idle again.
func (k *Consumer) hold(f *feed, msg *nats.Msg) {
	if len(f.held)+1 > liveHeld || f.heldBytes+len(msg.Data) > liveHeldBytes {
		if !f.resync {
			k.c.metrics.interestHeldDrops.Inc()
		}
		f.resync = true
		return
	}
	f.held = append(f.held, msg)
	f.heldBytes += len(msg.Data)
}

// onStart processes a feed's base sequence and what it held meanwhile.
// The loop checks the feed against the stream resyncRetry later.
func (k *Consumer) onStart(s start) {
	f := s.f
	if k.c.ingest.feedOf(f.r.subj) != f {
		return // interest ended meanwhile
	}
	f.started, f.last = true, s.base
	k.release(f)
}

// release delivers, in order, what f held, until a gap starts a repair
// (which holds the rest again); then, if f dropped events or a resync
// came meanwhile, it checks f against the stream.
func (k *Consumer) release(f *feed) {
	held := f.held
	f.held, f.heldBytes = nil, 0
	for i, msg := range held {
		if k.live(f, msg); f.repairing {
			for _, m := range held[i+1:] {
				k.hold(f, m)
			}
			return
		}
	}
	if f.resync {
		f.resync = false
		k.repair(f, 0)
	}
}

// live delivers one republished message of f, after the events the
// subject stored before it that this node has not delivered, if any
// (Nats-Last-Sequence, the subject's previous sequence, is past the
// last delivered): those are repaired first, and msg is held meanwhile.
func (k *Consumer) live(f *feed, msg *nats.Msg) {
	c := k.c
	seq, err := strconv.ParseUint(msg.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		c.metrics.skippedMetadata.Inc()
		c.log.Warn("skipping republished event without a sequence", "subject", f.r.subj)
		return
	}
	if f.started && !f.repairing && seq <= f.last {
		return // delivered already (repaired)
	}
	if !f.started || f.repairing {
		k.hold(f, msg)
		return
	}
	prev, err := strconv.ParseUint(msg.Header.Get(hdrLastSequence), 10, 64)
	if err != nil || prev > f.last {
		if err == nil {
			c.metrics.interestGaps.Inc()
		}
		k.hold(f, msg)
		k.repair(f, seq-1)
		return
	}
	ev, err := f.r.event(msg)
	if err != nil {
		c.metrics.skippedMetadata.Inc()
		c.log.Warn("skipping republished event", "subject", f.r.subj, "seq", seq, "error", err)
		return
	}
	k.deliverEvent(f, ev)
}

// deliverEvent calls fn with ev and records it as f's last.
func (k *Consumer) deliverEvent(f *feed, ev *Event) {
	f.last = ev.Seq
	k.c.metrics.consumed.Inc()
	k.fn(ev)
}

// repair starts reading f's stored events with last < seq <= upTo (upTo
// 0: up to the subject's last stored event) on a goroutine of its own;
// the loop gets them through ingest.repaired (onRepaired). A read that
// fails (or gets no answer in time, see repairFirst) is retried after
// 100 ms, then twice as long each time up to resyncRetry, until it
// succeeds or the consumer stops. f must not be repairing already.
func (k *Consumer) repair(f *feed, upTo uint64) {
	c, in := k.c, k.c.ingest
	f.repairing = true
	from, gen := f.last+1, f.gen
	k.repairs.Go(func() { // owned by k: ends with k.ctx; runInterest waits for it
		select {
		case in.slots <- struct{}{}:
		case <-k.ctx.Done():
			return
		}
		defer func() { <-in.slots }()
		if hold := in.holdRepair.Load(); hold != nil {
			(*hold)(f.r.subj)
		}
		for wait, attempt := min(100*time.Millisecond, resyncRetry), repairFirst; ; attempt = min(2*attempt, repairAttempt) {
			r, err := k.readRepair(f, from, upTo, attempt)
			if err == nil {
				r.gen = gen
				select {
				case in.repaired <- r:
				case <-k.ctx.Done():
				}
				return
			}
			if k.ctx.Err() != nil {
				return // stopping: not worth a warning
			}
			c.metrics.interestRepairErrors.Inc()
			c.log.Warn("cannot read missed events from the stream; retrying", "subject", f.r.subj, "after", from-1, "error", err, "retry_in", wait)
			select {
			case <-time.After(wait):
			case <-k.ctx.Done():
				return
			}
			wait = min(2*wait, resyncRetry)
		}
	})
}

// readRepair reads one batch of f's events from seq from up to upTo (0:
// the subject's last stored event), waiting up to timeout. It runs on a
// repair's goroutine and reads nothing of f but its replayer.
func (k *Consumer) readRepair(f *feed, from, upTo uint64, timeout time.Duration) (repairDone, error) {
	c := k.c
	r := repairDone{f: f, upTo: upTo}
	ctx, cancel := context.WithTimeout(k.ctx, timeout)
	defer cancel()
	if n := c.ingest.unanswered.Load(); n > 0 && c.ingest.unanswered.CompareAndSwap(n, n-1) {
		deadline, _ := ctx.Deadline()
		c.ingest.unansweredWait.Store(int64(time.Until(deadline)))
		<-ctx.Done()
		return r, fmt.Errorf("direct get: %w (test)", ctx.Err())
	}
	if upTo == 0 {
		last, err := c.lastSeqOf(ctx, f.r.subj)
		if err != nil {
			return r, err
		}
		if r.upTo = last; last >= from {
			c.metrics.interestGaps.Inc()
		}
	}
	if from > r.upTo {
		return r, nil
	}
	var err error
	r.evs, r.more, err = f.r.readBatch(ctx, from, r.upTo, c.cfg.Replicas > 1, nil)
	return r, err
}

// onRepaired delivers what a repair read, then either reads on (the
// batch was not the last) or releases the events f held meanwhile.
func (k *Consumer) onRepaired(r repairDone) {
	f := r.f
	f.repairing = false
	if k.c.ingest.feedOf(f.r.subj) != f {
		return // interest ended meanwhile
	}
	if r.gen != f.gen { // the stream was recreated: read it anew
		f.resync = true
		k.release(f)
		return
	}
	for _, ev := range r.evs {
		if ev.Seq > f.last {
			k.c.metrics.interestRepaired.Inc()
			k.deliverEvent(f, ev)
		}
	}
	if r.more && len(r.evs) > 0 && f.last < r.upTo {
		k.repair(f, r.upTo)
		return
	}
	k.release(f)
}

// resyncFeed checks f against the stream: it repairs f up to the
// subject's last stored event (after the repair under way, if any).
func (k *Consumer) resyncFeed(f *feed) {
	switch {
	case k.c.ingest.feedOf(f.r.subj) != f: // interest ended
	case !f.started: // onStart reads from its base, and the loop checks it later
	case f.repairing:
		f.resync = true
	default:
		k.repair(f, 0)
	}
}

// resyncAll checks every started subject against the stream: events may
// have been lost without a later one showing the gap (a reconnect, a
// slow-consumer drop).
func (k *Consumer) resyncAll() {
	in := k.c.ingest
	in.mu.Lock()
	feeds := make([]*feed, 0, len(in.feeds))
	for _, f := range in.feeds {
		feeds = append(feeds, f)
	}
	in.mu.Unlock()
	k.c.metrics.interestResyncs.Inc()
	for _, f := range feeds {
		k.resyncFeed(f)
	}
}

// hdrLastSequence is the republish header naming the stream sequence of
// the subject's previous message (0 for its first).
const hdrLastSequence = "Nats-Last-Sequence"
