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

// Replay reads history with JetStream direct gets ("$JS.API.DIRECT.GET.
// <stream>", batch form, nats-server 2.11+): a request names the subject
// and a start sequence and the server answers with up to replayBatch of
// that subject's messages, then an end-of-batch status. No consumer is
// created, so replays are not bounded by the stream's consumer limit and
// leave nothing to clean up; any replica of the stream may answer.
const (
	// replayBatch is the most messages one direct get returns.
	replayBatch = 256
	// replayBatchBytes bounds the bytes of one direct get's answer (the
	// server always sends at least one message).
	replayBatchBytes = 256 << 10
	// replayReadTimeout bounds one direct get, from request to the
	// end-of-batch status.
	replayReadTimeout = 5 * time.Second
	// replayInfoTimeout bounds one shared stream info request.
	replayInfoTimeout = 5 * time.Second
	// ReplayRetryAfter is the wait Replay suggests, with ErrReplayBusy.
	ReplayRetryAfter = time.Second
)

// Headers of a direct get answer.
const (
	hdrStatus    = "Status"
	hdrSequence  = "Nats-Sequence"
	hdrTimeStamp = "Nats-Time-Stamp"
	hdrSubject   = "Nats-Subject"
	hdrPending   = "Nats-Num-Pending"
)

// Replay calls fn, in stream order, for every event on
// "<prefix>.<tenant>.<topic>" with afterSeq < seq <= last, and returns
// last: the stream's last sequence at a moment between the call and the
// first read (never before the call). The caller then takes live events
// with seq > last (from Consume), with neither gap nor duplicate.
//
// It fails with ErrCursorExpired when retention has removed events after
// afterSeq (afterSeq+1 < the stream's first sequence) — unless afterSeq >=
// last, when there is nothing to replay. An error from fn aborts the replay
// and is returned as is; so is ctx's. fn is called from the calling
// goroutine, never while Replay holds a read slot: a slow fn delays only
// its own replay. The Events passed to fn may be shared with concurrent
// replays of the same subject: fn must not modify them.
//
// Reads are direct gets of up to 256 events; no JetStream consumer is
// created. Replays of one subject that arrive while another's first read
// waits for its turn share that read (whatever their cursors: the read
// starts at the oldest one and each replay keeps the events after its own
// cursor). The node has Config.MaxReplays read slots; a read that finds
// them all busy waits its turn, first come first served, under ctx; when
// Config.MaxReplayQueue reads are waiting already Replay fails at once
// with ErrReplayBusy (retry after ReplayRetryAfter with the same cursor).
func (c *Cluster) Replay(ctx context.Context, tenant, topic string, afterSeq uint64, fn func(*Event) error) (last uint64, err error) {
	return c.replay(ctx, tenant, topic, afterSeq, nil, fn)
}

// ReplayOrGap is Replay for a caller that accepts a gap in the history (a
// resume verdict, docs/protocol.md). Once it has read the stream's
// position, before the first call of fn, it calls start(lost) once: lost
// is 0 when every event after afterSeq is still stored; when retention has
// removed events after afterSeq, lost is the last sequence removed (the
// stream's first sequence - 1) and, instead of failing with
// ErrCursorExpired, the replay goes on after lost: the subject's events
// with afterSeq < seq <= lost, if it had any, are lost. An error from
// start aborts the replay and is returned as is. The rest is Replay's.
func (c *Cluster) ReplayOrGap(ctx context.Context, tenant, topic string, afterSeq uint64, start func(lost uint64) error, fn func(*Event) error) (last uint64, err error) {
	return c.replay(ctx, tenant, topic, afterSeq, start, fn)
}

// replay is Replay, or ReplayOrGap when start is not nil.
func (c *Cluster) replay(ctx context.Context, tenant, topic string, afterSeq uint64, start func(lost uint64) error, fn func(*Event) error) (last uint64, err error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	subj, err := c.Subject(tenant, topic)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := &replayer{c: c, subj: subj, tenant: tenant, topic: topic}
	byFn := false
	defer func() { c.metrics.replayDone(err, byFn) }()

	first, err := c.firstRead(ctx, r, afterSeq)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("replay %s: %w", subj, err)
	}
	pos := first.pos
	last = pos.lastSeq
	var lost uint64
	if afterSeq < last && afterSeq+1 < pos.firstSeq {
		if start == nil {
			return 0, fmt.Errorf("%w: events after %d were removed (stream starts at %d)", ErrCursorExpired, afterSeq, pos.firstSeq)
		}
		lost = pos.firstSeq - 1
		afterSeq = lost
	}
	if start != nil {
		if err := start(lost); err != nil {
			byFn = true
			return 0, err
		}
	}
	if afterSeq >= last {
		return last, nil
	}

	next := afterSeq + 1
	batch, more := first.evs, first.more
	if n := len(batch); n > 0 {
		// The shared read may have started before this cursor; what it
		// read counts as read, delivered or not.
		next = max(next, batch[n-1].Seq+1)
	}
	for {
		for _, e := range batch {
			if e.Seq <= afterSeq {
				continue
			}
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			if err := fn(e); err != nil {
				byFn = true
				return 0, err
			}
		}
		if !more || next > last {
			return last, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := c.replays.acquire(ctx); err != nil {
			return 0, fmt.Errorf("replay %s: %w", subj, err)
		}
		batch, more, err = r.readBatch(ctx, next, last, pos.replicas > 1, nil)
		c.replays.release()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("replay %s: %w", subj, err)
		}
		if n := len(batch); n > 0 {
			next = batch[n-1].Seq + 1
		} else {
			more = false
		}
	}
}

// replayFlight is the first read of one subject's replays: one read
// slot, one stream position and one direct get for every replay of the
// subject that arrived before the read started.
type replayFlight struct {
	r *replayer

	// Guarded by replayState.flightMu:
	from uint64 // the oldest cursor's next sequence; final once the read starts
	refs int    // replays waiting for the result

	ctx    context.Context // ends with the Cluster or when refs drops to 0
	cancel context.CancelFunc

	done chan struct{} // closed when the fields below are set
	pos  streamPosition
	evs  []*Event // shared, read-only
	more bool
	err  error
}

// firstRead returns the first read of r's subject from afterSeq+1 or an
// earlier sequence, joining the pending read of the subject if there is
// one, else starting one.
func (c *Cluster) firstRead(ctx context.Context, r *replayer, afterSeq uint64) (*replayFlight, error) {
	c.flightMu.Lock()
	if c.flightsStopped {
		c.flightMu.Unlock()
		return nil, ErrClosed
	}
	f := c.flights[r.subj]
	if f != nil {
		f.from = min(f.from, afterSeq+1)
		c.metrics.replayShared.Inc()
	} else {
		f = &replayFlight{r: r, from: afterSeq + 1, done: make(chan struct{})}
		f.ctx, f.cancel = context.WithCancel(c.flightCtx)
		c.flights[r.subj] = f
		c.flightWG.Add(1)
		go func() { // owned by flightWG: ends with the read, the last replay waiting for it, or Close
			defer c.flightWG.Done()
			c.runFlight(f)
		}()
	}
	f.refs++
	c.flightMu.Unlock()

	select {
	case <-f.done:
		return f, f.err
	case <-ctx.Done():
		c.flightMu.Lock()
		f.refs--
		if f.refs == 0 { // no one waits: do not read for nobody
			f.cancel()
			if c.flights[r.subj] == f {
				delete(c.flights, r.subj)
			}
		}
		c.flightMu.Unlock()
		return nil, ctx.Err()
	}
}

// runFlight takes a read slot, then the stream position, and reads one
// batch for f. The position is taken once the slot is held, so that a
// read queued for a while does not start from a stale last (the waiting
// subscriptions hold back the live events above last meanwhile).
func (c *Cluster) runFlight(f *replayFlight) {
	defer func() {
		f.cancel()
		close(f.done)
	}()
	defer func() {
		c.flightMu.Lock()
		if c.flights[f.r.subj] == f {
			delete(c.flights, f.r.subj)
		}
		c.flightMu.Unlock()
	}()
	if f.err = c.replays.acquire(f.ctx); f.err != nil {
		if c.flightCtx.Err() != nil {
			f.err = ErrClosed
		}
		return
	}
	defer c.replays.release()
	// From here on the read's range is fixed: later replays of the
	// subject start their own.
	c.flightMu.Lock()
	if c.flights[f.r.subj] == f {
		delete(c.flights, f.r.subj)
	}
	from := f.from
	c.flightMu.Unlock()

	if f.pos, f.err = c.replayInfo(f.ctx); f.err != nil {
		return
	}
	last := f.pos.lastSeq
	// An expired cursor's replay fails, or goes on from the first event
	// stored (ReplayOrGap); the others' are not affected.
	if from = max(from, f.pos.firstSeq); from > last {
		return
	}
	f.evs, f.more, f.err = f.r.readBatch(f.ctx, from, last, f.pos.replicas > 1, nil)
}

// readBatch appends to evs the next events of r.subj with from <= seq <=
// last: one direct get's worth; more reports that there may be others
// after them. When the stream has replicas, a follower may answer a
// direct get before it has applied the stream's newest messages; so an
// answer that ends before last is confirmed with the stream leader, which
// also supplies the next event if the follower had not got it yet.
func (r *replayer) readBatch(ctx context.Context, from, last uint64, replicated bool, evs []*Event) (_ []*Event, more bool, err error) {
	evs, more, err = r.read(ctx, from, last, evs)
	if err != nil || more || !replicated {
		return evs, more, err
	}
	if n := len(evs); n > 0 {
		from = evs[n-1].Seq + 1
	}
	if from > last {
		return evs, false, nil
	}
	e, err := r.leaderNext(ctx, from, last)
	if err != nil || e == nil {
		return evs, false, err
	}
	r.c.metrics.replayStale.Inc()
	return append(evs, e), true, nil
}

// replayer is one Replay's subject.
type replayer struct {
	c             *Cluster
	subj          string
	tenant, topic string
	// all: subj is "<prefix>.>", every subject of the stream; each
	// event's tenant and topic come from its own subject.
	all bool
}

// directGetRequest is the body of a batch direct get
// (nats-server's JSApiMsgGetRequest).
type directGetRequest struct {
	Seq      uint64 `json:"seq"`
	NextFor  string `json:"next_by_subj"`
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// read appends to evs the events of r.subj with from <= seq <= last, up to
// one batch, read with one direct get. more reports that the answering
// server has more of the subject's events after the last appended one
// (the batch was cut short by its size), which may be in range.
func (r *replayer) read(ctx context.Context, from, last uint64, evs []*Event) (_ []*Event, more bool, err error) {
	c := r.c
	req, err := json.Marshal(directGetRequest{
		Seq:      from,
		NextFor:  r.subj,
		Batch:    int(min(last-from+1, replayBatch)),
		MaxBytes: replayBatchBytes,
	})
	if err != nil {
		return evs, false, err
	}
	w, err := c.replayMux.open()
	if err != nil {
		return evs, false, fmt.Errorf("direct get: %w", err)
	}
	defer c.replayMux.close(w)
	if err := c.nc.PublishRequest("$JS.API.DIRECT.GET."+c.cfg.Stream, w.inbox, req); err != nil {
		return evs, false, fmt.Errorf("direct get: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, replayReadTimeout)
	defer cancel()
	for n := 0; ; n++ {
		var msg *nats.Msg
		select {
		case msg = <-w.ch:
		case <-rctx.Done():
			if ctx.Err() != nil {
				return evs, false, ctx.Err()
			}
			return evs, false, fmt.Errorf("direct get: no end of batch after %v", replayReadTimeout)
		}
		if status := msg.Header.Get(hdrStatus); status != "" {
			switch status {
			case "404": // nothing on the subject from `from` on
				if n == 0 {
					return evs, false, nil
				}
			case "204": // end of batch; Nats-Num-Pending: the subject's messages after it
				pending, _ := strconv.ParseUint(msg.Header.Get(hdrPending), 10, 64)
				return evs, pending > 0 && n > 0 && evs[len(evs)-1].Seq < last, nil
			case "503":
				return evs, false, fmt.Errorf("direct get: no responders (is allow_direct set on stream %q?)", c.cfg.Stream)
			}
			return evs, false, fmt.Errorf("direct get: status %s %s", status, msg.Header.Get("Description"))
		}
		e, err := r.event(msg)
		if err != nil {
			return evs, false, err
		}
		single := msg.Header.Get(hdrPending) == "" // a server before 2.11 ignores "batch" and sends one message, no end of batch
		if e.Seq > last {                          // stored after Replay started: live, not replayed
			// The rest of the batch is later still; the mux drops it.
			return evs, false, nil
		}
		if e.Seq < from || (len(evs) > 0 && e.Seq <= evs[len(evs)-1].Seq) {
			return evs, false, fmt.Errorf("direct get: sequence %d out of order after %d", e.Seq, from)
		}
		evs = append(evs, e)
		if single {
			return evs, e.Seq < last, nil
		}
	}
}

// event builds the Event of one direct get answer message.
func (r *replayer) event(msg *nats.Msg) (*Event, error) {
	seq, err := strconv.ParseUint(msg.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("direct get: bad %s header %q", hdrSequence, msg.Header.Get(hdrSequence))
	}
	s := msg.Header.Get(hdrSubject)
	tenant, topic := r.tenant, r.topic
	if r.all {
		var ok bool
		if tenant, topic, ok = parseSubject(r.c.cfg.Prefix, s); !ok {
			return &Event{Subject: s, Seq: seq}, nil // no tenant: the caller skips it
		}
	} else if s != r.subj {
		return nil, fmt.Errorf("direct get: message %d is on %q, asked for %q", seq, s, r.subj)
	}
	ts, err := time.Parse(time.RFC3339Nano, msg.Header.Get(hdrTimeStamp))
	if err != nil {
		return nil, fmt.Errorf("direct get: bad %s header %q", hdrTimeStamp, msg.Header.Get(hdrTimeStamp))
	}
	return &Event{
		Subject: s,
		Tenant:  tenant,
		Topic:   topic,
		Seq:     seq,
		Time:    ts,
		Data:    msg.Data,
		Cursor:  r.c.Cursor(tenant, seq),

		TraceParent: traceParent(msg.Header), // republished with the event (nats.ingest: interest)
	}, nil
}

// leaderNext asks the stream leader (the JetStream API, not a direct
// get) for r.subj's first event with from <= seq <= last; nil if none.
func (r *replayer) leaderNext(ctx context.Context, from, last uint64) (*Event, error) {
	c := r.c
	req, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
	}{from, r.subj})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, replayReadTimeout)
	defer cancel()
	resp, err := c.nc.RequestWithContext(rctx, "$JS.API.STREAM.MSG.GET."+c.cfg.Stream, req)
	if err != nil {
		return nil, fmt.Errorf("stream msg get: %w", err)
	}
	var body struct {
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(resp.Data, &body); err != nil {
		return nil, fmt.Errorf("stream msg get: %w", err)
	}
	switch {
	case body.Error != nil && body.Error.ErrCode == jsNoMessageFound:
		return nil, nil
	case body.Error != nil:
		return nil, fmt.Errorf("stream msg get: %s (%d)", body.Error.Description, body.Error.ErrCode)
	case body.Message == nil:
		return nil, errors.New("stream msg get: empty answer")
	case body.Message.Seq > last:
		return nil, nil
	case body.Message.Subject != r.subj || body.Message.Seq < from:
		return nil, fmt.Errorf("stream msg get: asked for %q from %d, got %q at %d", r.subj, from, body.Message.Subject, body.Message.Seq)
	}
	m := body.Message
	return &Event{
		Subject: r.subj,
		Tenant:  r.tenant,
		Topic:   r.topic,
		Seq:     m.Seq,
		Time:    m.Time,
		Data:    m.Data,
		Cursor:  c.Cursor(r.tenant, m.Seq),
	}, nil
}

// jsNoMessageFound is JetStream's error code for "no message found".
const jsNoMessageFound = 10037

// replayGate is the node's read slots for replays, with a bounded queue
// of replays waiting for one.
type replayGate struct {
	m        *metrics
	slots    chan struct{} // one token per read in flight
	maxQueue int64         // -1: unbounded
	queued   atomic.Int64
}

func newReplayGate(slots, maxQueue int, m *metrics) *replayGate {
	return &replayGate{m: m, slots: make(chan struct{}, slots), maxQueue: int64(maxQueue)}
}

// acquire takes a read slot, waiting under ctx (first come, first served:
// blocked channel senders are queued in order) unless maxQueue replays
// are waiting already: then ErrReplayBusy.
func (g *replayGate) acquire(ctx context.Context) error {
	m := g.m
	select {
	case g.slots <- struct{}{}:
		m.replayActive.Inc()
		return nil
	default:
	}
	if n := g.queued.Add(1); g.maxQueue >= 0 && n > g.maxQueue {
		g.queued.Add(-1)
		return fmt.Errorf("%w: %d replays waiting (nats.max_replay_queue)", ErrReplayBusy, g.maxQueue)
	}
	m.replayQueued.Inc()
	defer func() {
		g.queued.Add(-1)
		m.replayQueued.Dec()
	}()
	m.replayWaits.Inc()
	select {
	case g.slots <- struct{}{}:
		m.replayActive.Inc()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *replayGate) release() {
	<-g.slots
	g.m.replayActive.Dec()
}

// streamPosition is the part of the stream's state a replay needs.
type streamPosition struct {
	firstSeq, lastSeq uint64
	replicas          int
}

// infoFlight is one stream info request that concurrent replays share.
type infoFlight struct {
	prev *infoFlight   // the request in flight when this one was created
	done chan struct{} // closed when pos and err are set
	pos  streamPosition
	err  error
}

// replayInfo returns the stream's first and last sequences, read by a
// stream info request that started after this call: concurrent replays
// share requests, so that a storm of resumes costs about one request per
// round trip, not one each. A request in flight when the call comes may
// predate it; the call then waits for the next request, which every
// replay arriving meanwhile shares.
func (c *Cluster) replayInfo(ctx context.Context) (streamPosition, error) {
	c.infoMu.Lock()
	var f *infoFlight
	switch {
	case c.infoNext != nil:
		f = c.infoNext
	case c.infoRunning == nil || isDone(c.infoRunning.done):
		f = &infoFlight{done: make(chan struct{})}
		c.infoRunning = f
		c.infoMu.Unlock()
		c.runInfo(f)
		return f.pos, f.err
	default:
		f = &infoFlight{prev: c.infoRunning, done: make(chan struct{})}
		c.infoNext = f
	}
	c.infoMu.Unlock()

	select {
	case <-f.prev.done:
	case <-ctx.Done():
		return streamPosition{}, ctx.Err()
	}
	c.infoMu.Lock()
	if c.infoRunning == f.prev { // the first waiter to see prev end runs f
		c.infoRunning, c.infoNext = f, nil
		c.infoMu.Unlock()
		c.runInfo(f)
		return f.pos, f.err
	}
	c.infoMu.Unlock()
	select {
	case <-f.done:
		return f.pos, f.err
	case <-ctx.Done():
		return streamPosition{}, ctx.Err()
	}
}

// runInfo makes f's request. Its context is not any one replay's: the
// others waiting for f must not fail because that replay ended.
func (c *Cluster) runInfo(f *infoFlight) {
	ctx, cancel := context.WithTimeout(context.Background(), replayInfoTimeout)
	defer cancel()
	info, err := c.streamInfo(ctx)
	if err == nil {
		f.pos = streamPosition{firstSeq: info.State.FirstSeq, lastSeq: info.State.LastSeq, replicas: info.Config.Replicas}
	}
	f.err = err
	c.metrics.replayInfos.Inc()
	close(f.done)
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// replayState is the Cluster's shared replay machinery.
type replayState struct {
	replays   *replayGate
	replayMux replyMux

	flightMu       sync.Mutex
	flights        map[string]*replayFlight // pending first reads, by subject; guarded by flightMu
	flightsStopped bool                     // guarded by flightMu
	flightCtx      context.Context          // ends at Close
	flightStop     context.CancelFunc
	flightWG       sync.WaitGroup

	infoMu      sync.Mutex
	infoRunning *infoFlight // the latest request started; guarded by infoMu
	infoNext    *infoFlight // waits for infoRunning; guarded by infoMu
}

// replyMux receives the answers of every direct get on one wildcard
// subscription ("<inbox>.*") and hands each to the read that asked, by the
// last token of its reply subject: a read costs no SUB/UNSUB round of its
// own. The subscription is made on first use and lives as long as the
// connection.
type replyMux struct {
	mu      sync.Mutex
	nc      *nats.Conn
	prefix  string                  // "<inbox>."; guarded by mu
	sub     *nats.Subscription      // guarded by mu
	waiters map[string]*replyWaiter // by token; guarded by mu
	next    uint64                  // token counter; guarded by mu
}

// replyWaiter is one read's answers.
type replyWaiter struct {
	inbox string
	token string
	// ch holds a whole batch and its end status: the server sends no more
	// than that for one request.
	ch chan *nats.Msg
}

// replyWaiterCap is room for a batch and its status.
const replyWaiterCap = replayBatch + 1

func (m *replyMux) open() (*replyWaiter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sub == nil {
		m.prefix = m.nc.NewInbox() + "."
		sub, err := m.nc.Subscribe(m.prefix+"*", m.deliver)
		if err != nil {
			return nil, err
		}
		// In flight at most: MaxReplays batches, each bounded in count
		// (replyWaiterCap) and bytes (replayBatchBytes plus one message).
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			sub.Unsubscribe() //nolint:errcheck // best effort
			return nil, err
		}
		m.sub, m.waiters = sub, make(map[string]*replyWaiter)
	}
	m.next++
	token := strconv.FormatUint(m.next, 36)
	w := &replyWaiter{inbox: m.prefix + token, token: token, ch: make(chan *nats.Msg, replyWaiterCap)}
	m.waiters[token] = w
	return w, nil
}

func (m *replyMux) close(w *replyWaiter) {
	m.mu.Lock()
	delete(m.waiters, w.token)
	m.mu.Unlock()
}

// deliver runs on the subscription's goroutine (nats.go's, one at a time).
func (m *replyMux) deliver(msg *nats.Msg) {
	m.mu.Lock()
	w := m.waiters[msg.Subject[len(m.prefix):]]
	m.mu.Unlock()
	if w == nil { // the read ended already
		return
	}
	select {
	case w.ch <- msg:
	default: // more than a batch and its status: not from a well-behaved server; the read times out
	}
}

func (st *replayState) initReplays(cfg Config, m *metrics) {
	st.replays = newReplayGate(cfg.MaxReplays, cfg.MaxReplayQueue, m)
	st.flights = make(map[string]*replayFlight)
	st.flightCtx, st.flightStop = context.WithCancel(context.Background())
}

// stopReplays ends every pending read and waits for them; Replay fails
// with ErrClosed from then on.
func (st *replayState) stopReplays() {
	st.flightMu.Lock()
	st.flightsStopped = true
	st.flightMu.Unlock()
	if st.flightStop != nil {
		st.flightStop()
	}
	st.flightWG.Wait()
}
