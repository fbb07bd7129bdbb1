package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
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
}

// Consumer is a running Consume. Stop ends it.
type Consumer struct {
	c    *Cluster
	fn   func(*Event)
	idle func() time.Duration // may be nil
	name string               // consumer name prefix on the server

	stopOnce sync.Once
	stop     chan struct{} // closed by signalStop
	done     chan struct{} // closed when run returns

	mu sync.Mutex
	it jetstream.MessagesContext // current iterator; nil between iterators
}

// consumerRetry bounds the wait before re-creating an iterator that ended
// without Stop (the ordered consumer gave up); it doubles from 100ms.
const consumerRetry = 5 * time.Second

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
// Messages whose subject is not "<prefix>.<tenant>.<topic>" with a valid
// tenant are logged, counted in fraiseql_nats_events_skipped_total and
// skipped. ctx bounds the setup only; the consumer runs until Stop or
// Close.
func (c *Cluster) Consume(ctx context.Context, fn func(*Event)) (*Consumer, error) {
	return c.ConsumeBatches(ctx, fn, nil)
}

// ConsumeBatches is Consume with an idle hook: idle (if not nil) is called
// on the same goroutine as fn whenever fn has been called for every event
// received so far, before waiting for the next one. A caller that only
// queues in fn and writes in idle thus writes once per burst of events
// rather than once per event: at low rates a burst is one event, at high
// rates it grows by itself with the backlog. If idle returns a positive
// duration, it is called again after that long unless an event arrives
// first (then it is called after that event, as above): a caller may so
// put off its writes.
func (c *Cluster) ConsumeBatches(ctx context.Context, fn func(*Event), idle func() time.Duration) (*Consumer, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	info, err := c.streamInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	k := &Consumer{
		c:    c,
		fn:   fn,
		idle: idle,
		name: fmt.Sprintf("%s_%08x", sanitizeName(c.cfg.Name), rand.Uint32()),
		stop: make(chan struct{}),
		done: make(chan struct{}),
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
	go k.run(it, next) // owned by k: signalStop ends it, Stop waits for it
	return k, nil
}

// open creates an ordered consumer starting at stream sequence start.
func (k *Consumer) open(ctx context.Context, start uint64) (jetstream.MessagesContext, error) {
	cons, err := k.c.js.OrderedConsumer(ctx, k.c.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
		NamePrefix:    k.name,
	})
	if err != nil {
		return nil, fmt.Errorf("create ordered consumer on %q at seq %d: %w", k.c.cfg.Stream, start, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("consume %q: %w", k.c.cfg.Stream, err)
	}
	return it, nil
}

// run delivers events until Stop. The ordered consumer recovers from
// reconnects by itself; if its iterator still ends without Stop, run
// opens a new one after the last delivered sequence.
func (k *Consumer) run(it jetstream.MessagesContext, next uint64) {
	defer close(k.done)
	c := k.c
	backoff := 100 * time.Millisecond
	again := time.NewTimer(time.Hour) // idle's call-me-again; armed only on request
	again.Stop()
	defer again.Stop()
	var againC <-chan time.Time
	callIdle := func() {
		if d := k.idle(); d > 0 {
			again.Reset(d)
			againC = again.C
		} else {
			again.Stop()
			againC = nil
		}
	}
	for {
		msgs := make(chan jetstream.Msg, pumpBuffer)
		go pump(it, msgs, c.log) // ends when it is stopped; closes msgs
	events:
		for {
			var msg jetstream.Msg
			var ok bool
			select {
			case msg, ok = <-msgs:
			case <-againC:
				callIdle()
				continue
			case <-k.stop:
			}
			if k.stopped() {
				// Stopping: deliver nothing more (select picks at random
				// among ready cases, hence the check). signalStop stopped
				// the iterator, so the pump ends and closes msgs.
				for range msgs {
				}
				break events
			}
			if !ok {
				break
			}
			if seq, ok := k.deliver(msg); ok {
				next = seq + 1
				backoff = 100 * time.Millisecond
			}
			if k.idle != nil && len(msgs) == 0 {
				callIdle()
			}
		}
		it.Stop()
		for {
			if k.stopped() {
				return
			}
			c.log.Warn("consumer stopped unexpectedly; re-creating", "next_seq", next, "retry_in", backoff)
			wait := time.NewTimer(backoff)
		waiting:
			for {
				select {
				case <-k.stop:
					wait.Stop()
					return
				case <-wait.C:
					break waiting
				case <-againC: // idle asked to be called again: writes routed events
					callIdle()
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
func pump(it jetstream.MessagesContext, msgs chan<- jetstream.Msg, log *slog.Logger) {
	defer close(msgs)
	for {
		msg, err := it.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				log.Warn("consumer iterator ended", "error", err)
			}
			return
		}
		msgs <- msg
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
	k.c.mu.Lock()
	delete(k.c.consumers, k)
	k.c.mu.Unlock()
}
