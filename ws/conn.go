package ws

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

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
	// deflate is the permessage-deflate the connection negotiated
	// (compress.go); set before the connection is shared.
	deflate deflateMode
	// sseEvents: `next` frames are SSE events (either mode), which a
	// Fanout queues with their payload's sseMeta; set before the
	// connection is shared.
	sseEvents bool

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
	kaEvery    time.Duration // keep-alive interval: Options.KeepAlive, SSEKeepAlive or MultipartHeartbeat
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

	// SSE and multipart connections (sse.go, multipart.go): ws is nil.
	sseIn      *bufio.Reader // the hijacked request's reader
	sseStarted bool          // the stream's head was written; write goroutine only
	// single: graphql-sse single connection mode (sse_single.go): the
	// stream carries many subscriptions, which POSTs start (once
	// singleReady: Session.Init succeeded) and end.
	single      bool
	singleReady atomic.Bool
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
		kaEvery:    opts.KeepAlive,
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

// logger returns the connection's logger: its Session's (see
// SessionLogger) or Options.Logger, with the peer and subprotocol. It is
// built when needed, which is rarely, rather than kept by every connection.
func (c *Conn) logger() *slog.Logger {
	l := c.opts.Logger
	if sl, ok := c.sess.(SessionLogger); ok {
		if x := sl.Logger(); x != nil {
			l = x
		}
	}
	return l.With("remote", c.remoteAddr, "subprotocol", c.proto.name())
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
	if c.ws == nil {
		c.closeSSE()
		return
	}
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
