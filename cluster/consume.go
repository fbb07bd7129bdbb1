package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Event is one stream message on a "<prefix>.<tenant>.<topic>" subject.
// Handlers must treat it, and Data, as read-only: the same Event may be
// routed to many subscriptions.
type Event struct {
	Subject string    // full subject
	Tenant  string    // the token after the prefix
	Topic   string    // the rest of the subject after the tenant
	Seq     uint64    // stream sequence
	Time    time.Time // when the stream stored it
	Data    []byte    // body as published
	Cursor  string    // Cluster.Cursor(Tenant, Seq), computed once per event
	// TraceParent is the publisher's W3C traceparent header, "" when it
	// set none.
	TraceParent string
}

// Consumer is a running Consume. Stop ends it.
type Consumer struct {
	c    *Cluster
	fn   func(*Event)
	name string // the node id: every consumer's name starts with it

	// Only open and run use these.
	cons   string          // the server consumer run reads, "" before the first
	prefix string          // "<node id>_<random>" of the consumers' names
	serial int             // numbers the consumers open creates
	ctx    context.Context // cancelled by signalStop: bounds open's requests and repairs
	cancel context.CancelFunc
	// deletes counts the best-effort deletions of replaced consumers in
	// flight; Stop waits for them.
	deletes sync.WaitGroup
	// repairs counts the interest consumer's repair reads; runInterest
	// waits for them.
	repairs sync.WaitGroup

	// For the stall watchdog (watch): written by run, read by watch.
	next        atomic.Uint64 // the stream sequence run waits for
	progressAt  atomic.Int64  // when run last advanced next (unix ns)
	stalledAt   atomic.Int64  // when watch declared a stall; 0: none
	stallResets atomic.Uint64 // iterators watch stopped (tests)

	stopOnce  sync.Once
	stop      chan struct{} // closed by signalStop
	done      chan struct{} // closed when run returns
	watchDone chan struct{} // closed when watch returns
	reset     chan struct{} // cap 1: watch asks run to abandon a stalled iterator

	mu sync.Mutex
	it jetstream.MessagesContext // current iterator; nil between iterators
}

// consumerRetry bounds the wait before re-creating an iterator that ended
// without Stop (its server consumer went away, a heartbeat was missed,
// a message was lost, or watch stopped a stalled one); it doubles from
// 50ms. Kept short so that delivery resumes within about a second of a
// new stream leader.
const consumerRetry = time.Second

// Consumer liveness. The server sends an idle heartbeat every
// consumerHeartbeat; an iterator that misses two (its consumer's server
// died) ends, and run re-creates the consumer. consumerInactive lets the
// server delete a consumer nobody pulls from (a killed node's, or one
// left behind by a re-creation) after that long, rather than after the
// library's default of 5 minutes. The watchdog checks every stallCheck
// whether events wait in the stream while none has been delivered for
// stallAfter.
const (
	consumerInactive = 15 * time.Second
	stallCheck       = 500 * time.Millisecond
	stallAfter       = 2 * time.Second
	streamRefresh    = 10 * time.Second
	// createFirst and consumerRequest bound each attempt to create a
	// consumer: the first waits createFirst, each next one twice as long
	// up to consumerRequest. In the first seconds after a server dies
	// the meta leader may still place a new consumer on it (the server
	// still counts as current), and that request gets no answer; a
	// short attempt gives up on it soon and the next one, under a fresh
	// name, is placed anew. A live server answers in milliseconds.
	createFirst     = 500 * time.Millisecond
	consumerRequest = 2 * time.Second
)

// Variables so that a test can slow the heartbeats down and see the
// watchdog recover on its own.
var (
	consumerExpiry    = 5 * time.Second
	consumerHeartbeat = 500 * time.Millisecond
)

// Consume starts this node's consumer and calls fn for every event stored
// in the stream from now on (events stored before Consume returns a
// consumer are not delivered; use Replay for those).
//
// fn is called sequentially from a single goroutine, in stream order,
// without gaps or duplicates: the consumer is an ephemeral JetStream pull
// consumer, checked message by message like the library's ordered one,
// that after a missed heartbeat, a lost message, a stall or a server
// restart is re-created from the sequence after the last one delivered. A slow fn slows this node's delivery (and only
// it); it must not call Stop or Close.
//
// With Config.Ingest "interest", fn gets only the events of the subjects
// declared with Interest, each subject's in order, without gaps or
// duplicates (see runInterest); one such consumer runs per Cluster.
//
// Messages whose subject is not "<prefix>.<tenant>.<topic>" with a valid
// tenant are logged, counted in fraiseql_nats_events_skipped_total and
// skipped. ctx bounds the setup only; the consumer runs until Stop or
// Close.
func (c *Cluster) Consume(ctx context.Context, fn func(*Event)) (*Consumer, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if c.ingest != nil {
		return c.consumeInterest(fn)
	}
	info, err := c.streamInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	k := &Consumer{
		c:    c,
		fn:   fn,
		name: sanitizeName(c.cfg.Name),

		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		watchDone: make(chan struct{}),
		reset:     make(chan struct{}, 1),
	}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	// "Only new messages" is DeliverByStartSequence at last+1 rather than
	// DeliverNew: if the ordered consumer is re-created before anything
	// was delivered, it restarts from that same sequence, so events
	// stored during the outage are not lost.
	next := info.State.LastSeq + 1
	var it jetstream.MessagesContext
	for attempt := 0; ; attempt++ {
		if it, err = k.open(ctx, next, createTimeout(attempt)); err == nil {
			break
		}
		if ctx.Err() != nil {
			k.abandon()
			return nil, fmt.Errorf("consume: %w", err)
		}
		c.log.Info("create consumer: retrying", "error", err)
	}
	k.it = it
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		it.Stop()
		k.abandon()
		return nil, ErrClosed
	}
	c.consumers[k] = struct{}{}
	c.mu.Unlock()
	k.next.Store(next)
	k.progressAt.Store(time.Now().UnixNano())
	go k.run(it, next) // owned by k: signalStop ends it, Stop waits for it
	go k.watch()       // owned by k: ends with run; Stop waits for it
	return k, nil
}

// open creates this node's consumer of the stream from sequence start,
// waiting up to timeout for the server's answer, and returns its iterator.
//
// The consumer is what the library's ordered consumer creates: ephemeral,
// R1 in memory, no acks, one per node, delivering every subject in stream
// order; run checks its delivery sequence and re-creates it after the
// last delivered event on any gap. The library's own re-creation is not
// used: it waits up to 10 s for each attempt while holding the lock that
// stopping its iterator needs, so one attempt placed on a dead server
// held delivery for that long.
//
// Each consumer gets a fresh name, "<node id>_<random>_<n>": one left on
// the server by the previous one (its server was cut off, or it is stuck)
// must not block the new one (the server refuses to move an existing
// consumer's start sequence). The previous one, and an attempt that got
// no answer, is deleted in the background if the server answers, and
// expires after consumerInactive if not.
func (k *Consumer) open(ctx context.Context, start uint64, timeout time.Duration) (jetstream.MessagesContext, error) {
	if k.cons != "" {
		k.deleteLater(k.cons)
		k.cons = ""
	}
	if k.prefix == "" {
		k.prefix = fmt.Sprintf("%s_%08x", k.name, rand.Uint32())
	}
	k.serial++
	name := fmt.Sprintf("%s_%d", k.prefix, k.serial)
	if k.c.refuseConsumers.Load() {
		return nil, fmt.Errorf("create consumer %s: %w", name, errRefusedForTest)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cons, err := k.c.js.CreateConsumer(ctx, k.c.cfg.Stream, jetstream.ConsumerConfig{
		Name:              name,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: consumerInactive,
		Replicas:          1,
		MemoryStorage:     true,
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// No answer: its server may have died; it may also exist.
			k.deleteLater(name)
		}
		return nil, fmt.Errorf("create consumer %s on %q at seq %d: %w", name, k.c.cfg.Stream, start, err)
	}
	k.cons = name
	it, err := cons.Messages(jetstream.PullExpiry(consumerExpiry), jetstream.PullHeartbeat(consumerHeartbeat),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return nil, fmt.Errorf("consume %q: %w", k.c.cfg.Stream, err)
	}
	return it, nil
}

// errRefusedForTest is the failure of a consumer creation that a test
// refused (Cluster.refuseConsumers).
var errRefusedForTest = errors.New("refused by a test")

// createTimeout is how long attempt n (0-based) to create a consumer
// waits for the answer: createFirst for the first ones, which covers a
// server that just died; then longer, up to consumerRequest, in case the
// servers are slow rather than gone. Between attempts run delivers from
// the stream directly (bridge), so events wait at most one attempt.
func createTimeout(n int) time.Duration {
	return min(createFirst<<max(n/8, 0), consumerRequest)
}

// deleteLater deletes the server consumer name in the background, best
// effort: it expires after consumerInactive anyway.
func (k *Consumer) deleteLater(name string) {
	k.deletes.Go(func() { // owned by k: Stop waits for it
		ctx, cancel := context.WithTimeout(context.Background(), consumerRequest)
		defer cancel()
		_ = k.c.js.DeleteConsumer(ctx, k.c.cfg.Stream, name)
	})
}

// abandon releases what a Consumer that never ran holds.
func (k *Consumer) abandon() {
	k.cancel()
	if k.cons != "" {
		k.deleteLater(k.cons)
	}
	k.deletes.Wait()
}

// run delivers events until Stop. When an iterator ends without Stop
// (see open), or skips a message, run opens a new one after the last
// delivered sequence.
func (k *Consumer) run(it jetstream.MessagesContext, next uint64) {
	var pumps sync.WaitGroup // every pump ends once its iterator does
	defer close(k.done)
	defer pumps.Wait()
	c := k.c
	var backoff time.Duration // the first re-creation waits for nothing
	for {
		var dseq uint64 // the consumer's delivery sequence of the last message
		msgs := make(chan jetstream.Msg, pumpBuffer)
		quit := make(chan struct{})
		pumps.Go(func() { pump(it, msgs, quit, c.log) }) // ends once it is stopped
	events:
		for {
			var msg jetstream.Msg
			var ok bool
			select {
			case msg, ok = <-msgs:
			case <-k.reset:
				// Stalled: abandon this iterator without waiting for it
				// (stopping it may wait on a dead server); nothing more is
				// read from it, and a new one starts after the last
				// delivered sequence.
				break events
			case <-k.stop:
			}
			if k.stopped() {
				// Stopping: deliver nothing more (select picks at random
				// among ready cases, hence the check).
				break events
			}
			if !ok {
				break
			}
			seq, ok := k.deliver(msg, &dseq, next)
			if !ok {
				break events // a message was lost: re-create after the last delivered
			}
			if seq >= next {
				next = seq + 1
				backoff = 0
				k.progress(next)
			}
		}
		close(quit)
		// Stopping a pull iterator may wait on its connection: not on
		// this goroutine.
		stopping := it
		pumps.Go(stopping.Stop)
		if k.stopped() {
			return
		}
		c.log.Warn("consumer stopped; re-creating it after the last delivered event", "next_seq", next, "retry_in", backoff)
		for attempt := 0; ; attempt++ {
			wait := time.NewTimer(backoff)
		waiting:
			for {
				select {
				case <-k.stop:
					wait.Stop()
					return
				case <-wait.C:
					break waiting
				}
			}
			backoff = min(max(2*backoff, 50*time.Millisecond), consumerRetry)
			// Until a consumer runs again, read what the stream holds
			// after next with direct gets: any replica answers them,
			// with no consumer to place and no meta leader needed, so
			// delivery goes on while the consumer cannot be created (its
			// server just died; the meta leader did).
			if n, ok := k.bridge(next); n > next {
				next = n
				backoff = 0
				k.progress(next)
			} else if !ok && k.stopped() {
				return
			}
			var err error
			it, err = k.open(k.ctx, next, createTimeout(attempt))
			if err != nil {
				if k.stopped() {
					return
				}
				c.log.Info("re-create consumer: retrying", "next_seq", next, "error", err)
				continue
			}
			if !k.setIter(it) {
				it.Stop()
				return
			}
			select {
			case <-k.reset: // asked for during the re-creation: done
			default:
			}
			break
		}
	}
}

// bridgeBatches bounds the direct gets of one bridge: under a steady
// flow the stream always has more, and run must get back to creating a
// consumer.
const bridgeBatches = 8

// bridge delivers the events stored from next on, read with batch direct
// gets (as Replay reads), until the answering replica has no more or
// after bridgeBatches reads, and returns the next sequence to deliver.
// ok=false means a read failed.
func (k *Consumer) bridge(next uint64) (_ uint64, ok bool) {
	c := k.c
	r := &replayer{c: c, subj: c.cfg.Prefix + ".>", all: true}
	var evs []*Event
	for range bridgeBatches {
		ctx, cancel := context.WithTimeout(k.ctx, createFirst)
		var more bool
		var err error
		evs, more, err = r.read(ctx, next, math.MaxUint64, evs[:0])
		cancel()
		for _, ev := range evs {
			if k.stopped() {
				return next, false
			}
			next = ev.Seq + 1
			if ev.Tenant == "" {
				c.metrics.skippedSubject.Inc()
				c.log.Warn("skipping event with a malformed subject", "subject", ev.Subject, "seq", ev.Seq)
				continue
			}
			c.metrics.consumed.Inc()
			c.metrics.bridged.Inc()
			k.fn(ev)
		}
		if err != nil {
			return next, false
		}
		if !more || len(evs) == 0 {
			return next, true
		}
	}
	return next, true
}

// pumpBuffer bounds the messages read ahead of fn; the ordered consumer's
// own flow control bounds what the server sends ahead of that.
const pumpBuffer = 256

// pump moves it's messages to msgs until the iterator ends (on Stop, or
// when the ordered consumer gives up), then closes msgs. Its owner is run,
// which reads msgs until it is closed.
func pump(it jetstream.MessagesContext, msgs chan<- jetstream.Msg, quit <-chan struct{}, log *slog.Logger) {
	defer close(msgs)
	for {
		msg, err := it.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				log.Warn("consumer iterator ended", "error", err)
			}
			return
		}
		select {
		case msgs <- msg:
		case <-quit: // run abandoned this iterator: it reads no more
			return
		}
	}
}

// deliver turns msg into an Event and calls fn, unless the event was
// delivered already (before next). It returns msg's stream sequence;
// ok=false means that msg does not follow the consumer's last message
// (*dseq, its delivery sequence; 0 before the first), so one was lost
// (dropped by this client as a slow consumer, or in flight on a
// reconnect): nothing is delivered, and the caller re-creates the
// consumer after the last delivered event.
func (k *Consumer) deliver(msg jetstream.Msg, dseq *uint64, next uint64) (seq uint64, ok bool) {
	c := k.c
	meta, err := msg.Metadata()
	if err != nil {
		c.metrics.skippedMetadata.Inc()
		c.log.Warn("skipping message without JetStream metadata", "subject", msg.Subject(), "error", err)
		return 0, true
	}
	if drop := c.dropConsumed.Load(); drop != nil && (*drop)(meta.Sequence.Stream) {
		return 0, true // lost on the way (tests)
	}
	if d := meta.Sequence.Consumer; d != *dseq+1 {
		c.log.Warn("consumer skipped a message; re-creating it after the last delivered event",
			"delivered", d, "want", *dseq+1, "next_seq", next)
		return 0, false
	}
	*dseq = meta.Sequence.Consumer
	seq = meta.Sequence.Stream
	if seq < next {
		return seq, true
	}
	subj := msg.Subject()
	tenant, topic, ok := parseSubject(c.cfg.Prefix, subj)
	if !ok {
		c.metrics.skippedSubject.Inc()
		c.log.Warn("skipping event with a malformed subject", "subject", subj, "seq", seq)
		return seq, true
	}
	c.metrics.consumed.Inc()
	k.fn(c.event(msg, meta, tenant, topic))
	return seq, true
}

// event builds the Event of a stream message whose subject parsed as
// tenant and topic.
func (c *Cluster) event(msg jetstream.Msg, meta *jetstream.MsgMetadata, tenant, topic string) *Event {
	seq := meta.Sequence.Stream
	return &Event{
		Subject: msg.Subject(),
		Tenant:  tenant,
		Topic:   topic,
		Seq:     seq,
		Time:    meta.Timestamp,
		Data:    msg.Data(),
		Cursor:  c.Cursor(tenant, seq),

		TraceParent: traceParent(msg.Headers()), // map lookups: no allocation
	}
}

// setIter installs a new iterator; false means Stop was signalled and
// the caller must stop it.
func (k *Consumer) setIter(it jetstream.MessagesContext) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped() {
		return false
	}
	k.it = it
	return true
}

func (k *Consumer) stopped() bool {
	select {
	case <-k.stop:
		return true
	default:
		return false
	}
}

// signalStop asks run to return without waiting for it.
func (k *Consumer) signalStop() {
	k.stopOnce.Do(func() {
		k.cancel()
		k.mu.Lock()
		close(k.stop)
		if k.it != nil {
			k.it.Stop()
		}
		k.mu.Unlock()
	})
}

// Stop ends the consumer and waits until fn has returned for the last
// time. It is idempotent; it must not be called from fn.
func (k *Consumer) Stop() {
	k.signalStop()
	<-k.done
	<-k.watchDone
	// run has returned, so k.cons is the Stop callers'; k.mu orders them,
	// and the deletion is started under it, before any of them waits.
	k.mu.Lock()
	if k.cons != "" {
		k.deleteLater(k.cons)
		k.cons = ""
	}
	k.mu.Unlock()
	k.deletes.Wait()
	k.c.mu.Lock()
	delete(k.c.consumers, k)
	k.c.mu.Unlock()
}

// progress records that run delivered up to next-1 (called per event: two
// atomic stores). A delivery after a stall ends it.
func (k *Consumer) progress(next uint64) {
	now := time.Now().UnixNano()
	k.next.Store(next)
	k.progressAt.Store(now)
	if at := k.stalledAt.Load(); at != 0 && k.stalledAt.CompareAndSwap(at, 0) {
		d := time.Duration(now - at + int64(stallAfter))
		k.c.metrics.stallSeconds.Add(d.Seconds())
		k.c.log.Info("event delivery resumed", "stalled_for", d.Round(time.Millisecond), "next_seq", next)
	}
}

// watch is the stall watchdog. While the stream holds events past the
// last delivered one and none has been delivered for stallAfter, delivery
// (seen at two checks in a row) is stalled — typically the consumer's
// server died and its heartbeats have not been missed yet, or a stream
// leader election left the consumer behind. watch then logs and counts the stall once
// (fraiseql_delivery_stalls_total) and stops the iterator, so that run
// re-creates the consumer after the last delivered sequence (nothing is
// lost). It repeats that every stallAfter while the stall lasts. A stream
// it cannot ask (no leader yet) declares nothing.
func (k *Consumer) watch() {
	defer close(k.watchDone)
	t := time.NewTicker(stallCheck)
	defer t.Stop()
	var lastReset time.Time
	lastRefresh := time.Now()
	waiting := false // the last check saw events waiting
	for {
		select {
		case <-k.done:
			return
		case <-t.C:
		}
		if time.Since(lastRefresh) >= streamRefresh {
			lastRefresh = time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), stallCheck)
			_ = k.c.RefreshStream(ctx) // a stream recreated meanwhile expires older cursors
			cancel()
		}
		since := time.Since(time.Unix(0, k.progressAt.Load()))
		if since < stallAfter {
			waiting = false
			continue
		}
		if time.Since(lastReset) < stallAfter {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), stallCheck)
		info, err := k.c.streamInfo(ctx)
		cancel()
		if err != nil || info.State.LastSeq < k.next.Load() {
			waiting = false
			continue // caught up, or the stream cannot say
		}
		if !waiting {
			// An event stored just now may be on its way after a quiet
			// spell: a stall is events still waiting at the next check.
			waiting = true
			continue
		}
		waiting = false
		last := info.State.LastSeq
		if k.stalledAt.CompareAndSwap(0, time.Now().UnixNano()) {
			k.c.metrics.stalls.Inc()
			k.c.log.Warn("event delivery stalled: the stream holds events this node has not received; re-creating its consumer",
				"next_seq", k.next.Load(), "stream_last_seq", last, "no_progress_for", since.Round(time.Millisecond))
		}
		lastReset = time.Now()
		k.stallResets.Add(1)
		select {
		case k.reset <- struct{}{}: // run abandons the iterator and re-creates it from the next sequence
		default:
		}
	}
}
