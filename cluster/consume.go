package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

	cons jetstream.Consumer  // the ordered consumer run reads; only open and run use it
	js   jetstream.JetStream // requests time out after consumerRequest

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
// without Stop (the ordered consumer gave up, or watch stopped a stalled
// one); it doubles from 100ms. Kept short so that delivery resumes within
// about a second of a new stream leader.
const consumerRetry = time.Second

// Consumer liveness. The server sends an idle heartbeat every
// consumerHeartbeat; the ordered consumer re-creates itself when two are
// missed (its server died). consumerInactive lets the server delete a
// consumer nobody pulls from (a killed node's, or one left behind by a
// re-creation) after that long, rather than after the library's default
// of 5 minutes. The watchdog checks every stallCheck whether events wait
// in the stream while none has been delivered for stallAfter.
const (
	consumerInactive = 15 * time.Second
	stallCheck       = 500 * time.Millisecond
	stallAfter       = 2 * time.Second
	streamRefresh    = 10 * time.Second
	// consumerRequest bounds each request of the consumer's own (creating
	// it, by the library, too): just after a server dies the meta leader
	// may still place a new consumer on it, and a short timeout tries
	// again (elsewhere) sooner than the library's default.
	consumerRequest = 2 * time.Second
)

// Variables so that a test can slow the heartbeats down and see the
// watchdog recover on its own.
var (
	consumerExpiry    = 5 * time.Second
	consumerHeartbeat = time.Second
)

// Consume starts this node's consumer and calls fn for every event stored
// in the stream from now on (events stored before Consume returns a
// consumer are not delivered; use Replay for those).
//
// fn is called sequentially from a single goroutine, in stream order,
// without gaps or duplicates: the consumer is an ordered, ephemeral,
// flow-controlled JetStream consumer that, after a reconnect, a server
// restart or a missed heartbeat, is re-created from the sequence after
// the last one delivered. A slow fn slows this node's delivery (and only
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
	if k.js, err = jetstream.New(c.nc, jetstream.WithDefaultTimeout(consumerRequest)); err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	// "Only new messages" is DeliverByStartSequence at last+1 rather than
	// DeliverNew: if the ordered consumer is re-created before anything
	// was delivered, it restarts from that same sequence, so events
	// stored during the outage are not lost.
	next := info.State.LastSeq + 1
	it, err := k.open(ctx, next)
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	k.it = it
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		it.Stop()
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

// open creates an ordered consumer starting at stream sequence start.
//
// Each one gets a fresh name, "<node id>_<random>_<n>": a consumer left on
// the server by the previous one (its server was cut off, or it is stuck)
// must not block the new one (the server refuses to move an existing
// consumer's start sequence). The previous one is deleted if the server
// answers, and expires after consumerInactive if not.
func (k *Consumer) open(ctx context.Context, start uint64) (jetstream.MessagesContext, error) {
	if prev := k.cons; prev != nil {
		if info := prev.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			_ = k.c.js.DeleteConsumer(dctx, k.c.cfg.Stream, info.Name) // best effort: it expires anyway
			cancel()
		}
	}
	cons, err := k.js.OrderedConsumer(ctx, k.c.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		NamePrefix:        fmt.Sprintf("%s_%08x", k.name, rand.Uint32()),
		InactiveThreshold: consumerInactive,
	})
	if err != nil {
		return nil, fmt.Errorf("create ordered consumer on %q at seq %d: %w", k.c.cfg.Stream, start, err)
	}
	k.cons = cons
	it, err := cons.Messages(jetstream.PullExpiry(consumerExpiry), jetstream.PullHeartbeat(consumerHeartbeat))
	if err != nil {
		return nil, fmt.Errorf("consume %q: %w", k.c.cfg.Stream, err)
	}
	return it, nil
}

// run delivers events until Stop. The ordered consumer recovers from
// reconnects by itself; if its iterator still ends without Stop, run
// opens a new one after the last delivered sequence.
func (k *Consumer) run(it jetstream.MessagesContext, next uint64) {
	var pumps sync.WaitGroup // every pump ends once its iterator does
	defer close(k.done)
	defer pumps.Wait()
	c := k.c
	backoff := 100 * time.Millisecond
	for {
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
				// (a library reset in progress can hold it for seconds);
				// nothing more is read from it, and a new one starts after
				// the last delivered sequence.
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
			if seq, ok := k.deliver(msg); ok {
				next = seq + 1
				backoff = 100 * time.Millisecond
				k.progress(next)
			}
		}
		close(quit)
		// Stop can wait seconds for a reset the library has under way
		// against a dead server: not on this goroutine.
		stopping := it
		pumps.Go(stopping.Stop)
		for {
			if k.stopped() {
				return
			}
			c.log.Warn("consumer stopped; re-creating it after the last delivered event", "next_seq", next, "retry_in", backoff)
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
			backoff = min(2*backoff, consumerRetry)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var err error
			it, err = k.open(ctx, next)
			cancel()
			if err != nil {
				c.log.Warn("re-create consumer", "error", err)
				continue
			}
			if k.setIter(it) {
				break
			}
			it.Stop()
			return
		}
	}
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

// deliver turns msg into an Event and calls fn. It returns msg's stream
// sequence, and ok=false when the metadata could not be read.
func (k *Consumer) deliver(msg jetstream.Msg) (seq uint64, ok bool) {
	c := k.c
	meta, err := msg.Metadata()
	if err != nil {
		c.metrics.skippedMetadata.Inc()
		c.log.Warn("skipping message without JetStream metadata", "subject", msg.Subject(), "error", err)
		return 0, false
	}
	seq = meta.Sequence.Stream
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
