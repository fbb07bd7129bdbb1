package ws

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// frameKind says what the writer does with a queued frame.
type frameKind uint8

const (
	// kindNext: write sub.prefix + payload + "}", unless sub was cancelled.
	kindNext frameKind = iota
	// kindRaw: write payload as is.
	kindRaw
	// kindAck: write payload (connection_ack), then start keep-alives.
	kindAck
	// kindEnd: call Session.Unsubscribe for sub, then write payload (its
	// complete or error frame).
	kindEnd
	// kindClose: start closing, after the frames queued before it.
	kindClose
	// kindFlush: nothing to write; the batch it opens carries the bytes a
	// direct write (Conn.flush) left over. Never queued.
	kindFlush
)

// frame is one entry of a connection's write queue. It is small and holds
// no per-message allocation: Next queues the shared payload slice itself.
type frame struct {
	sub     *Subscription
	payload []byte
	kind    frameKind
}

// closingBrace ends a `next` frame: prefix + payload + "}".
var closingBrace = []byte("}")

// Conn is one client WebSocket connection. Its methods are safe for
// concurrent use.
//
// Each Conn has a read goroutine (started by ServeHTTP, which then
// returns), which reads and dispatches client messages and calls the
// Session, and, while there is something to write, one write goroutine
// (see wake); the read goroutine waits for the last one, which closes the
// socket, before calling Session.Close.
type Conn struct {
	// The delivery path's fields come first, and the queue and the direct
	// writer are part of the Conn rather than objects of their own: a write
	// round touches every connection once per event, and each separate
	// object is one more cache miss per delivery, waited for in turn.
	closed   atomic.Bool // set just before closing is closed (see isClosing)
	flushDue atomic.Bool // Push queued frames that await a Fanout's write (or hold)
	writerOn atomic.Bool // a write goroutine runs (see wake)
	// lastWrite is when a Fanout round last wrote the connection
	// (monotonic; 0: never), for coalescing.
	lastWrite atomic.Int64
	// wmu is held by whoever takes frames off the queue and writes them:
	// the write goroutine (Lock) or flush (TryLock, never waiting), so
	// frames reach the socket in queue order.
	wmu     sync.Mutex
	queue   frameQueue
	direct  directWriter // flush's non-blocking path to the socket; unused (rc nil) without one
	flushes *flushStats  // the Server's
	slow    *slowStats   // the Server's

	ws         *websocket.Conn
	raw        net.Conn     // the hijacked socket under ws, to drop it at once
	batch      *batchWriter // under ws's writes: several frames per syscall
	proto      protocol
	remoteAddr string
	opts       *Options
	sess       Session

	ctx    context.Context // Context(); cancelled when closing starts
	cancel context.CancelFunc

	kaDue      atomic.Bool   // a keep-alive is due
	kaTimer    *time.Timer   // keep-alives, from connection_ack on; write goroutine only
	closing    chan struct{} // closed once, when the connection starts closing
	closeOnce  sync.Once
	writerDone chan struct{}

	closeMu sync.Mutex
	// The first close request wins; later ones are ignored.
	closeSet  bool
	closeCode CloseCode
	closeText string
	closeWhy  CloseReason
	closeHard bool // drop the socket without a close handshake

	initReceived atomic.Bool
	initTimer    *time.Timer // InitTimeout, until connection_init; read goroutine only
	acked        bool        // read goroutine only
	stopRead     bool        // read goroutine only: read no more messages

	// sessMu serializes Session calls (read and write goroutines both make
	// them) and guards subs and each Subscription's accepted/unsubscribed.
	sessMu sync.Mutex
	subs   map[string]*Subscription

	// Write deadline (see write).
	watchdog      *time.Timer
	watchdogArmed atomic.Bool
	writeStart    atomic.Int64 // monotonic() when the current write began; 0 when idle

	onWrite func(frames int) // tests: called after each direct write with the frames it carried
}

func newConn(wsc *websocket.Conn, raw net.Conn, batch *batchWriter, p protocol, r string, opts *Options, sess Session, budget *queueBudget) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		ws:         wsc,
		raw:        raw,
		batch:      batch,
		proto:      p,
		remoteAddr: r,
		opts:       opts,
		sess:       sess,
		ctx:        ctx,
		cancel:     cancel,
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
		subs:       make(map[string]*Subscription),
	}
	c.queue.init(opts.WriteQueue, opts.MaxQueuedBytes, budget)
	c.direct.init(raw)
	return c
}

// Protocol returns the negotiated subprotocol: "graphql-transport-ws" or
// "graphql-ws".
func (c *Conn) Protocol() string { return c.proto.name() }

// RemoteAddr returns the client's address as the HTTP server saw it.
func (c *Conn) RemoteAddr() string { return c.remoteAddr }

// Context returns a context that is cancelled when the connection starts
// closing.
func (c *Conn) Context() context.Context { return c.ctx }

// Close closes the connection with code and reason. It does not wait; it
// may be called from any goroutine, any number of times (the first close
// wins). reason is public text, cut to 123 bytes; an invalid code is sent as
// 4500.
func (c *Conn) Close(code CloseCode, reason string) {
	c.closeWithError(&CloseError{Code: code, Reason: reason})
}

// serve runs the connection on the calling (read) goroutine until it ends.
func (c *Conn) serve() {
	c.ws.SetReadLimit(c.opts.ReadLimit)
	c.initTimer = time.AfterFunc(c.opts.InitTimeout, func() {
		if !c.initReceived.Load() {
			c.closeWith(CloseInitTimeout, reasonInitTimeout, InitTimeout)
		}
	})
	// Write goroutines start on demand (wake); the one that closes the
	// socket closes writerDone, waited for below.
	c.readLoop()
	c.stopInitTimer()
	// Whatever ended the read loop, make sure the writer stops too — except
	// when reading stopped on purpose (stopRead): then closeAfterQueued has
	// queued the close behind the frames that must go out first, and
	// closing now would drop them.
	if !c.stopRead {
		c.closeWith(CloseNormal, reasonNormal, ClientClosed)
	}
	<-c.writerDone
	c.finish()
}

// stopInitTimer stops the InitTimeout timer once connection_init arrived
// (or the connection ends), and lets it go. Read goroutine only.
func (c *Conn) stopInitTimer() {
	if c.initTimer != nil {
		c.initTimer.Stop()
		c.initTimer = nil
	}
}

// logger returns the connection's logger. It is built when needed, which
// is rarely, rather than kept by every connection.
func (c *Conn) logger() *slog.Logger {
	return c.opts.Logger.With("remote", c.remoteAddr, "subprotocol", c.proto.name())
}

// readLoop reads and dispatches client messages until the connection
// starts closing or the socket fails.
func (c *Conn) readLoop() {
	for !c.stopRead && !c.isClosing() {
		// context.Background: cancelling a coder/websocket read drops the
		// socket without a close frame. Closing unblocks this read instead:
		// the writer's close handshake makes the client answer, or the
		// socket is closed.
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.isClosing() {
			return
		}
		if typ != websocket.MessageText {
			c.proto.badMessage(c, errBinary)
			continue
		}
		if !utf8.Valid(data) {
			// RFC 6455 §8.1: invalid UTF-8 in a text message fails the
			// connection with 1007, whatever the subprotocol (and the
			// JSON decoder would otherwise turn it into U+FFFD).
			c.closeWith(CloseInvalidPayload, reasonInvalidUTF8, BadMessage)
			return
		}
		m, err := decodeMessage(c.proto, data)
		if err != nil {
			c.proto.badMessage(c, err.(*CloseError))
			continue
		}
		c.proto.handle(c, m)
	}
}

// readFailed records why the socket stopped reading.
func (c *Conn) readFailed(err error) {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		// coder/websocket already sent the 1009 close frame.
		c.closeWith(CloseMessageTooBig, reasonMessageTooBig, MessageTooBig)
	case websocket.CloseStatus(err) != -1:
		// The client sent a close frame; coder/websocket answered it.
		c.closeWith(CloseNormal, reasonNormal, ClientClosed)
	default:
		c.closeNow(ConnectionLost)
	}
}

// finish ends every remaining subscription, then the session. It runs on
// the read goroutine once the writer has exited.
func (c *Conn) finish() {
	c.cancel()
	c.sessMu.Lock()
	for id, s := range c.subs {
		delete(c.subs, id)
		s.stop(subCancelled)
		c.unsubscribeLocked(s)
	}
	_, _, why, _ := c.closeInfo()
	c.callSession("Close", func() { c.sess.Close(why) })
	c.sessMu.Unlock()
	// Release the payloads still queued (startClosing did, unless a push
	// raced with it): they are shared with other connections and must not
	// be kept alive by this one.
	c.queue.shutDown()
}

func (c *Conn) isClosing() bool { return c.closed.Load() }

// closeWith starts closing the connection with a close handshake. The
// first close request wins. It never blocks.
func (c *Conn) closeWith(code CloseCode, text string, why CloseReason) {
	c.setClose(code, text, why, false)
	c.startClosing()
}

// closeNow starts closing the connection without a close handshake: the
// socket is broken or stuck.
func (c *Conn) closeNow(why CloseReason) {
	c.setClose(CloseInternal, "", why, true)
	c.startClosing()
}

// closeAfterQueued closes the connection after the frames already queued
// (e.g. the legacy connection_error before 4403) are written.
func (c *Conn) closeAfterQueued(code CloseCode, text string, why CloseReason) {
	c.setClose(code, text, why, false)
	if !c.enqueue(frame{kind: kindClose}) {
		c.startClosing()
	}
}

// closeWithError closes the connection with a *CloseError a Session chose.
func (c *Conn) closeWithError(ce *CloseError) {
	code := ce.Code
	if !validCloseCode(code) {
		c.logger().Error("ws: invalid close code from session; sending 4500", "code", int(code))
		code = CloseInternal
	}
	c.closeWith(code, truncateReason(ce.Reason), reasonForCode(code))
}

// setClose records the close code and reason unless one was recorded
// already. It reports whether this call recorded them.
func (c *Conn) setClose(code CloseCode, text string, why CloseReason, hard bool) bool {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closeSet {
		return false
	}
	c.closeSet = true
	c.closeCode, c.closeText, c.closeWhy, c.closeHard = code, text, why, hard
	return true
}

func (c *Conn) closeInfo() (CloseCode, string, CloseReason, bool) {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.closeCode, c.closeText, c.closeWhy, c.closeHard
}

func (c *Conn) startClosing() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.closing)
		c.cancel()
		// A closing connection writes no queued frame: let them go now
		// rather than when the socket is done (a stuck write may hold it
		// for WriteTimeout), and queue nothing more.
		c.queue.shutDown()
		c.wake() // to close the socket
	})
}

// enqueue queues f for the writer without blocking. A full queue makes the
// client a slow consumer: the connection is closed with 1013.
func (c *Conn) enqueue(f frame) bool {
	if c.isClosing() {
		return false
	}
	if n, why := c.queue.pushN(f); n == 0 {
		c.refused(why)
		return false
	}
	c.syncQueued()
	c.wake()
	return true
}

// refused closes the connection as a slow consumer after its queue
// refused a frame because it was full.
func (c *Conn) refused(why full) {
	switch why {
	case fullFrames:
		c.slowConsumer(slowFrames)
	case fullBytes:
		c.slowConsumer(slowConnBytes)
	}
	// fullShut: the connection is closing already.
}

// syncQueued counts the queue's bytes in the node-wide sum (see
// frameQueue.sync), closing the connection if that takes the sum over
// Options.NodeQueuedBytes.
func (c *Conn) syncQueued() {
	if c.queue.sync() {
		c.slowConsumer(slowNodeBytes)
	}
}

// slowConsumer closes the connection with 1013 because its write queue is
// over one of its bounds (why), counting the cause.
func (c *Conn) slowConsumer(why slowCause) {
	if c.setClose(CloseTryAgainLater, reasonSlowConsumer, SlowConsumer, false) {
		c.slow.count(why)
		c.logger().Warn("ws: slow consumer: closing", "cause", why.String(),
			"queue_frames", c.queue.limit, "max_queued_bytes", c.queue.maxBytes)
	}
	c.startClosing()
}

// enqueueWait queues f, waiting for space while the queue is full (in
// frames or bytes), until ctx is done or the connection closes. It is for
// bulk senders (replay) that must apply backpressure rather than overflow
// the queue; what it queues counts against the same budgets as the rest.
func (c *Conn) enqueueWait(ctx context.Context, f frame) bool {
	ok, why := c.queue.pushWait(ctx, c.closing, f)
	if !ok {
		c.refused(why)
		return false
	}
	c.syncQueued()
	c.wake()
	return true
}

// wake makes sure a write goroutine runs: one starts when there is
// something to write (frames flush could not write itself, control
// frames, a keep-alive, the close) and ends when there is nothing left, so
// an idle connection has none. At most one runs at a time.
func (c *Conn) wake() {
	if c.writerOn.CompareAndSwap(false, true) {
		go c.writeLoop() // owned by c: the last one, which closes the socket, closes writerDone
	}
}

// writeLoop writes queued frames and due keep-alives until there is
// nothing left to write, or, once the connection starts closing, closes
// the socket.
func (c *Conn) writeLoop() {
	for {
		// Closing wins over queued frames: a closing connection writes
		// nothing more. A due keep-alive goes out even while frames keep
		// coming (legacy clients drop a connection that sends no ka).
		if c.isClosing() {
			c.finishWriting()
			return
		}
		c.wmu.Lock()
		ok := true
		if c.kaDue.Swap(false) {
			ok = c.writeAlone(c.proto.keepAliveFrame())
			c.kaTimer.Reset(c.opts.KeepAlive)
		}
		f, more := c.queue.pop()
		if !more && c.batch.open() {
			// Bytes a direct write (flush) left over: they go out first.
			f, more = frame{kind: kindFlush}, true
		}
		if ok && more {
			ok = c.writeBatch(f)
		}
		c.wmu.Unlock()
		if more {
			c.syncQueued() // the batch left the queue
		}
		if !ok {
			c.finishWriting()
			return
		}
		if more {
			continue
		}
		// Nothing left: end, unless work arrived before writerOn was
		// cleared (its wake saw a writer running and started none).
		c.writerOn.Store(false)
		if !c.hasWork() || !c.writerOn.CompareAndSwap(false, true) {
			return
		}
	}
}

// hasWork reports whether a write goroutine has something to do.
func (c *Conn) hasWork() bool {
	return c.isClosing() || c.kaDue.Load() || c.queue.len() > 0 || c.batch.open()
}

// finishWriting closes the socket and ends writing for good: writerOn
// stays set, so no write goroutine starts after this one.
func (c *Conn) finishWriting() {
	c.closeSocket()
	if c.watchdog != nil {
		c.watchdog.Stop()
	}
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	close(c.writerDone)
}

// keepAliveDue runs on the keep-alive timer's goroutine.
func (c *Conn) keepAliveDue() {
	c.kaDue.Store(true)
	c.wake()
}

// push queues f without waking the write goroutine (see
// Subscription.Push). first reports that this is the first push since the
// connection's last flush: the caller's Fanout then writes it.
func (c *Conn) push(f frame) (queued, first bool) {
	if c.isClosing() {
		return false, false
	}
	n, why := c.queue.pushN(f)
	if n == 0 {
		c.refused(why)
		return false, false
	}
	if n >= c.queue.limit/2 {
		// A burst (many events, or many subscriptions of this connection,
		// before the write round) must not fill a queue the client drains fine:
		// past half of it, the write goroutine starts writing now.
		c.wake()
	}
	return true, !c.flushDue.Load() && c.flushDue.CompareAndSwap(false, true)
}

// flush writes the frames Push queued; a Fanout round calls it. It never
// blocks: when the socket takes the queued frames at once (the common
// case) they are written in one non-blocking write(2) on the calling
// goroutine; otherwise — the write goroutine is busy, a previous write is
// unfinished, the socket buffer is full, more than a batch is queued —
// the write goroutine is woken to write the rest at the client's pace.
func (c *Conn) flush() {
	c.flushDue.Store(false)
	rest := true
	if c.direct.ok() && c.wmu.TryLock() {
		rest = c.flushDirect()
		c.wmu.Unlock()
	}
	// The round is over for this connection: what the socket did not take
	// is its backlog, counted node-wide.
	c.syncQueued()
	if rest {
		c.flushes.handoff.Add(1)
		c.wake()
	} else {
		c.flushes.direct.Add(1)
	}
}

// flushDirect writes up to a batch of queued `next` frames with one
// non-blocking write. c.wmu must be held. It reports whether anything is
// left for the write goroutine.
func (c *Conn) flushDirect() (rest bool) {
	if c.isClosing() {
		return true
	}
	b := c.batch
	if !b.mu.TryLock() {
		return true // a control frame is being written
	}
	defer b.mu.Unlock()
	if b.buf != nil {
		return true // the write goroutine's batch, or a direct write's rest
	}
	buf := batchPool.Get().(*[]byte)
	frames := 0
	for n := 0; n < maxBatchFrames && len(*buf) < batchFlushBytes; n++ {
		f, ok := c.queue.popNext()
		if !ok {
			break
		}
		if f.sub.dropsNext() {
			continue
		}
		*buf = appendTextFrame(*buf, f.sub.prefix, f.payload, closingBrace)
		frames++
	}
	rest = c.queue.len() > 0
	if len(*buf) == 0 {
		batchPool.Put(buf)
		return rest
	}
	n, err := c.direct.tryWrite(*buf)
	if c.onWrite != nil {
		c.onWrite(frames)
	}
	switch {
	case err != nil:
		c.closeNow(ConnectionLost)
		rest = true
	case n < len(*buf):
		// The socket took part of it: the rest, possibly half a frame,
		// must go out before anything else. It stays as an open batch that
		// the write goroutine finishes under the write deadline.
		*buf = (*buf)[:copy(*buf, (*buf)[n:])]
		b.buf, b.leftover = buf, true
		return true
	}
	if cap(*buf) <= maxPooledBatch {
		*buf = (*buf)[:0]
		batchPool.Put(buf)
	}
	return rest
}

// writeBatch writes f and the frames queued behind it (up to
// maxBatchFrames) with one flush to the socket. It reports false if the
// socket failed.
func (c *Conn) writeBatch(f frame) bool {
	c.batch.begin()
	ok := c.writeOne(f)
	for n := 1; ok && n < maxBatchFrames && f.kind != kindClose; n++ {
		var more bool
		if f, more = c.queue.pop(); !more {
			break
		}
		ok = c.writeOne(f)
	}
	return c.flushBatch() && ok
}

// writeOne writes one frame into the open batch, starting keep-alives
// after connection_ack.
func (c *Conn) writeOne(f frame) bool {
	if !c.writeFrame(f) {
		return false
	}
	if f.kind == kindAck && c.opts.KeepAlive > 0 && c.kaTimer == nil {
		if c.proto.keepAliveOnAck() && !c.writeText(c.proto.keepAliveFrame(), nil, nil) {
			return false
		}
		c.kaTimer = time.AfterFunc(c.opts.KeepAlive, c.keepAliveDue)
	}
	return true
}

// flushBatch writes the open batch to the socket under the write deadline.
func (c *Conn) flushBatch() bool {
	c.startWrite()
	err := c.batch.end()
	c.writeStart.Store(0)
	if err != nil {
		c.closeNow(ConnectionLost)
		return false
	}
	return true
}

// writeFrame writes one queued frame. It reports false if the socket failed.
func (c *Conn) writeFrame(f frame) bool {
	switch f.kind {
	case kindNext:
		if f.sub.dropsNext() {
			return true
		}
		return c.writeText(f.sub.prefix, f.payload, closingBrace)
	case kindEnd:
		f.sub.ended = true
		c.endSub(f.sub)
		return c.writeText(f.payload, nil, nil)
	case kindClose:
		c.startClosing()
		return true
	case kindFlush:
		return true
	default: // kindRaw, kindAck
		return c.writeText(f.payload, nil, nil)
	}
}

// write writes one text message under the write deadline.
//
// The deadline is a watchdog rather than a context per write, so that a
// write allocates nothing, and it is armed lazily: a write records when it
// started, and the watchdog, armed by the first write after an idle
// period, re-arms itself for as long as writes go on. A busy connection
// thus touches the timer once per WriteTimeout, not once per frame.
func (c *Conn) writeText(a, p, z []byte) bool {
	c.startWrite()
	err := c.batch.appendText(a, p, z)
	c.writeStart.Store(0)
	if err != nil {
		c.closeNow(ConnectionLost)
		return false
	}
	return true
}

// startWrite records that a write starts and arms the watchdog if it is
// not armed; the watchdog is created by the first write that needs it.
// Write goroutine only.
func (c *Conn) startWrite() {
	c.writeStart.Store(monotonic())
	if c.watchdogArmed.CompareAndSwap(false, true) {
		if c.watchdog == nil {
			// Created stopped, then armed: checkWrite reads c.watchdog.
			c.watchdog = time.AfterFunc(time.Hour, c.checkWrite)
			c.watchdog.Stop()
		}
		c.watchdog.Reset(c.opts.WriteTimeout)
	}
}

// writeAlone writes one message in a batch of its own (keep-alives).
func (c *Conn) writeAlone(b []byte) bool {
	c.batch.begin()
	ok := c.writeText(b, nil, nil)
	return c.flushBatch() && ok
}

// checkWrite runs on the watchdog's goroutine. It drops the connection if
// the current write has lasted WriteTimeout, re-arms for the current write
// otherwise, and disarms when no write is in progress.
func (c *Conn) checkWrite() {
	c.watchdogArmed.Store(false)
	start := c.writeStart.Load()
	if start == 0 {
		return // idle: the next write re-arms
	}
	elapsed := time.Duration(monotonic() - start)
	if elapsed >= c.opts.WriteTimeout {
		if c.setClose(CloseTryAgainLater, reasonSlowConsumer, SlowConsumer, true) {
			c.slow.count(slowWriteTimeout)
			c.logger().Warn("ws: slow consumer: write timed out; dropping connection", "timeout", c.opts.WriteTimeout)
		}
		c.startClosing()
		_ = c.raw.Close() // unblocks the stuck write
		return
	}
	// A write is in progress (this one or a later one): check again when
	// it would time out. The swap keeps a concurrent write from arming too.
	if c.watchdogArmed.CompareAndSwap(false, true) {
		c.watchdog.Reset(c.opts.WriteTimeout - elapsed)
	}
}

// epoch anchors monotonic.
var epoch = time.Now()

// monotonic returns a monotonic clock reading in nanoseconds, never 0.
func monotonic() int64 { return int64(time.Since(epoch)) + 1 }

// drop closes the socket at once, without a close handshake (and without
// waiting for one in progress). why is recorded unless a close reason was
// recorded already.
func (c *Conn) drop(why CloseReason) {
	c.closeNow(why)
	_ = c.raw.Close()
}

// closeSocket ends the WebSocket: with a close handshake carrying the
// recorded code, or at once when the socket is broken or stuck. It runs on
// the write goroutine, after the last frame.
func (c *Conn) closeSocket() {
	code, text, why, hard := c.closeInfo()
	if !hard {
		// A direct write may have left part of a frame unwritten: finish
		// it (under the write deadline), or the close frame would land
		// inside it.
		c.wmu.Lock()
		if c.batch.open() && !c.flushBatch() {
			hard = true
		}
		c.wmu.Unlock()
	}
	if hard {
		_ = c.raw.Close()
		_ = c.ws.CloseNow()
		return
	}
	c.logger().Debug("ws: closing", "code", int(code), "reason", why.String())
	// Close writes the close frame and waits (bounded by coder/websocket,
	// 5s each) for the client's; an already closed socket returns at once.
	_ = c.ws.Close(websocket.StatusCode(code), text)
}

// endSub completes a server-ended subscription's bookkeeping: it leaves the
// id table and its Session hears Unsubscribe. Runs on the write goroutine,
// before the end frame is written, so that a client reusing the id after
// seeing the frame never hits 4409.
func (c *Conn) endSub(s *Subscription) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if c.subs[s.id] == s {
		delete(c.subs, s.id)
	}
	c.unsubscribeLocked(s)
}

// unsubscribeLocked calls Session.Unsubscribe for s if Subscribe accepted it
// and it was not called yet. c.sessMu must be held.
func (c *Conn) unsubscribeLocked(s *Subscription) {
	if !s.accepted || s.unsubscribed {
		return
	}
	s.unsubscribed = true
	c.callSession("Unsubscribe", func() { c.sess.Unsubscribe(s) })
}

// callSession runs a Session method, turning a panic into a logged 4500
// close. It reports whether f returned normally.
func (c *Conn) callSession(method string, f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("ws: session panicked", "method", method, "panic", r, "stack", string(debug.Stack()))
			c.closeWith(CloseInternal, reasonInternal, InternalError)
			ok = false
		}
	}()
	f()
	return true
}

// init handles connection_init: the Session's Init, then the ack. It
// returns the close error to reject the connection with, or nil once the
// ack is queued.
func (c *Conn) init(payload json.RawMessage) *CloseError {
	c.stopInitTimer()
	var (
		ack json.RawMessage
		err error
	)
	c.sessMu.Lock()
	ok := c.callSession("Init", func() { ack, err = c.sess.Init(c.ctx, c, payload) })
	c.sessMu.Unlock()
	switch {
	case !ok:
		return &CloseError{Code: CloseInternal, Reason: reasonInternal}
	case err != nil:
		if ce, ok := errors.AsType[*CloseError](err); ok {
			code := ce.Code
			if !validCloseCode(code) {
				code = CloseInternal
			}
			return &CloseError{Code: code, Reason: truncateReason(ce.Reason)}
		}
		c.logger().Debug("ws: connection_init rejected", "err", err)
		return &CloseError{Code: CloseForbidden, Reason: reasonForbidden}
	case ack != nil && !json.Valid(ack):
		c.logger().Error("ws: session returned an ack payload that is not JSON")
		return &CloseError{Code: CloseInternal, Reason: reasonInternal}
	}
	c.acked = true
	c.enqueue(frame{payload: c.proto.ackFrame(ack), kind: kindAck})
	return nil
}

// subscribe handles subscribe (legacy: start) for an acknowledged
// connection.
func (c *Conn) subscribe(id string, req Request) {
	c.sessMu.Lock()
	if _, dup := c.subs[id]; dup {
		c.sessMu.Unlock()
		c.closeWith(CloseDuplicateID, truncateReason("Subscriber for "+id+" already exists"), DuplicateID)
		return
	}
	sub := newSubscription(c, id)
	c.subs[id] = sub
	var err error
	ok := c.callSession("Subscribe", func() { err = c.sess.Subscribe(c.ctx, sub, req) })
	if ok && err == nil {
		sub.accepted = true
		c.sessMu.Unlock()
		return
	}
	delete(c.subs, id)
	c.sessMu.Unlock()
	if !ok {
		sub.stop(subCancelled) // the connection is closing with 4500
		return
	}
	if ce, isClose := errors.AsType[*CloseError](err); isClose {
		sub.stop(subCancelled)
		c.closeWithError(ce)
		return
	}
	if sub.stop(subEnding) { // else the Session ended it already: that frame is queued
		c.enqueue(frame{sub: sub, payload: c.errorFrame(sub.idJSON, err), kind: kindEnd})
	}
}

// complete handles a client complete (legacy: stop). It reports whether
// the subscription was active; an unknown or already ended id is ignored.
func (c *Conn) complete(id string) bool {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	s := c.subs[id]
	if s == nil {
		return false
	}
	if !s.stop(subCancelled) {
		// Server-ended already: its end frame is queued, and the write
		// goroutine unsubscribes it; cancelling dropped its queued frames.
		return false
	}
	delete(c.subs, id)
	c.unsubscribeLocked(s)
	return true
}

// pong passes a client ping or pong payload to the Session.
func (c *Conn) pong(payload json.RawMessage) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	c.callSession("Pong", func() { c.sess.Pong(payload) })
}

// internalErrors is the error list sent for errors that are not GraphQL
// errors: the cause is logged, never sent.
var internalErrors = gqlerror.List{{
	Message:    reasonInternal,
	Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR"},
}}

// errorFrame builds the `error` frame for err (see Session.Subscribe).
func (c *Conn) errorFrame(idJSON []byte, err error) []byte {
	list := c.gqlErrors(err)
	b, mErr := c.proto.errorFrame(idJSON, list)
	if mErr != nil {
		c.logger().Error("ws: cannot encode GraphQL error; sending a generic one", "err", mErr)
		b, _ = c.proto.errorFrame(idJSON, internalErrors)
	}
	return b
}

// gqlErrors returns the GraphQL errors err carries, or the generic internal
// error (logging err) when it carries none.
func (c *Conn) gqlErrors(err error) gqlerror.List {
	if list, ok := errors.AsType[gqlerror.List](err); ok {
		out := make(gqlerror.List, 0, len(list))
		for _, e := range list {
			if e != nil {
				out = append(out, e)
			}
		}
		if len(out) > 0 {
			return out
		}
	} else if e, ok := errors.AsType[*gqlerror.Error](err); ok && e != nil {
		return gqlerror.List{e}
	}
	c.logger().Error("ws: subscription failed", "err", err)
	return internalErrors
}
