package ws

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Server serves GraphQL over WebSocket on one endpoint (/graphql). It
// tracks every connection it upgraded, because http.Server.Shutdown does
// not close hijacked connections: call Server.Shutdown for that.
type Server struct {
	h          Handler
	opts       Options
	log        *slog.Logger
	acceptOpts websocket.AcceptOptions

	mu sync.Mutex
	// shuttingDown is set once by Shutdown; new requests then get 503.
	shuttingDown bool
	// dropping is set once a Shutdown context expired: connections are
	// dropped without a close handshake.
	dropping bool
	// active counts ServeHTTP calls past the shutdown check; Shutdown waits
	// for it to reach zero.
	active int
	conns  map[*Conn]struct{}
	// drained is closed once shuttingDown is set and active is zero.
	drained       chan struct{}
	drainedClosed bool

	flushes flushStats
	slow    slowStats
	budget  queueBudget
	// contextConns counts the connections with a compressor of their own
	// (deflateContext), at most Options.CompressionContextConns.
	contextConns atomic.Int64
	streams      streams // graphql-sse single connection mode's reservations (sse_single.go)
}

// flushStats counts the fan-out's writes (see Fanout).
type flushStats struct {
	direct  atomic.Uint64 // connection writes done by the caller, in one write(2)
	handoff atomic.Uint64 // connection writes that woke the write goroutine for (some of) it
	// Write rounds, the connections they wrote, and connections a round
	// held for coalescing.
	rounds, roundConns, holds atomic.Uint64
	// io_uring (Options.IOUring): io_uring_enter calls of write rounds, and
	// the sends they carried.
	uringSubmits, uringSends atomic.Uint64
	// Compression: the bytes of the messages and writes compressed, before
	// (zin) and after (zout).
	zin, zout atomic.Uint64
}

// CompressionStats reports what compression did so far: the bytes of the
// WebSocket `next` messages compressed with permessage-deflate (counted
// once per connection they went to) and of the SSE writes gzip-encoded,
// before and after compression. in − out is what it saved on the wire.
func (s *Server) CompressionStats() (in, out uint64) {
	return s.flushes.zin.Load(), s.flushes.zout.Load()
}

// RoundStats reports the fan-out's write rounds so far: how many ran, how
// many connection writes they made (one per connection per round, however
// many events it got), and how many times a connection's write was held
// for coalescing (Options.CoalesceDelay).
func (s *Server) RoundStats() (rounds, conns, holds uint64) {
	return s.flushes.rounds.Load(), s.flushes.roundConns.Load(), s.flushes.holds.Load()
}

// IOUringStats reports the write rounds' use of io_uring so far: the
// io_uring_enter calls, and the connection writes (sends) they carried.
func (s *Server) IOUringStats() (submits, sends uint64) {
	return s.flushes.uringSubmits.Load(), s.flushes.uringSends.Load()
}

// FlushStats reports how the fan-out's connection writes went so far:
// direct ones wrote everything at once on the caller's goroutine; handoffs
// woke the connection's write goroutine (busy socket, slow client, more
// than a batch queued, TLS).
func (s *Server) FlushStats() (direct, handoff uint64) {
	return s.flushes.direct.Load(), s.flushes.handoff.Load()
}

// slowCause says which bound a slow consumer went over. It is a metrics
// label (see String).
type slowCause uint8

const (
	slowFrames       slowCause = iota // Options.WriteQueue frames queued
	slowConnBytes                     // Options.MaxQueuedBytes bytes queued
	slowNodeBytes                     // Options.NodeQueuedBytes bytes queued node-wide
	slowWriteTimeout                  // one write took Options.WriteTimeout

	numSlowCauses
)

var slowCauseNames = [numSlowCauses]string{
	slowFrames:       "frames",
	slowConnBytes:    "conn_bytes",
	slowNodeBytes:    "node_bytes",
	slowWriteTimeout: "write_timeout",
}

func (c slowCause) String() string { return slowCauseNames[c] }

// slowStats counts slow-consumer closes by cause.
type slowStats [numSlowCauses]atomic.Uint64

func (s *slowStats) count(c slowCause) {
	if s != nil {
		s[c].Add(1)
	}
}

// SlowCloses counts connections closed as slow consumers (1013), by the
// bound they went over.
type SlowCloses struct {
	Frames       uint64 // Options.WriteQueue frames were queued
	ConnBytes    uint64 // the connection's queue would pass Options.MaxQueuedBytes
	NodeBytes    uint64 // its backlog grew while the node was over Options.NodeQueuedBytes
	WriteTimeout uint64 // one write lasted Options.WriteTimeout (the socket is dropped)
}

// SlowConsumerCloses reports the slow-consumer closes so far, by cause.
func (s *Server) SlowConsumerCloses() SlowCloses {
	return SlowCloses{
		Frames:       s.slow[slowFrames].Load(),
		ConnBytes:    s.slow[slowConnBytes].Load(),
		NodeBytes:    s.slow[slowNodeBytes].Load(),
		WriteTimeout: s.slow[slowWriteTimeout].Load(),
	}
}

// QueuedBytes returns the bytes queued node-wide, as counted against
// Options.NodeQueuedBytes: the sum over connections of the payload bytes
// their write queues held at the end of their last write round (a payload
// queued to several connections counts once per connection).
func (s *Server) QueuedBytes() int64 { return s.budget.queued.Load() }

// NewServer returns a Server that opens a Session from h for each
// connection. Zero fields of opts take their defaults (see Options).
func NewServer(h Handler, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		h:    h,
		opts: opts,
		log:  opts.Logger,
		acceptOpts: websocket.AcceptOptions{
			Subprotocols:   supportedSubprotocols,
			OriginPatterns: opts.OriginPatterns,
		},
		conns:   make(map[*Conn]struct{}),
		drained: make(chan struct{}),
	}
	s.budget.limit = opts.NodeQueuedBytes
	if opts.Compression == CompressionNoContextTakeover || opts.Compression == CompressionContextTakeover {
		// coder/websocket reads compressed messages; the request it sees
		// carries the one offer the server chose (acceptDeflate), so the
		// mode only has to let it accept that offer as it is.
		s.acceptOpts.CompressionMode = websocket.CompressionContextTakeover
	}
	s.streams.init()
	return s
}

// ServeHTTP upgrades the request to a WebSocket connection and serves it
// until it ends. Before upgrading it refuses, with an HTTP status and no
// WebSocket state: an offer of only unknown subprotocols (400, naming the
// supported ones), a request that is not an upgrade (426), a shutting-down
// server (503), and whatever Handler.Open refuses. A request that accepts
// text/event-stream instead is served GraphQL over SSE (sse.go); one that
// accepts multipart/mixed with subscriptionSpec=1.0, a multipart
// subscription (multipart.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if wantsPreflight(r) {
		s.preflight(w, r)
		return
	}
	if wantsSSESingle(r) { // graphql-sse single connection mode (sse_single.go)
		s.serveSSESingle(w, r)
		return
	}
	if wantsMultipart(r) {
		s.serveMultipart(w, r)
		return
	}
	if wantsSSE(r) {
		s.serveSSE(w, r)
		return
	}
	proto, ok := negotiate(r.Header)
	if !ok {
		http.Error(w, "unsupported WebSocket subprotocol; supported: "+strings.Join(supportedSubprotocols, ", "), http.StatusBadRequest)
		return
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "WebSocket upgrade required", http.StatusUpgradeRequired)
		return
	}
	if !s.enter() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}

	sess, err := s.h.Open(r)
	if err != nil {
		s.leave()
		s.refuse(w, err)
		return
	}
	hw := &hijackWriter{ResponseWriter: w}
	deflate, ar := s.acceptDeflate(r)
	wsc, err := websocket.Accept(hw, ar, &s.acceptOpts)
	if err != nil {
		// Accept has answered the request already.
		s.leave()
		s.releaseDeflate(deflate)
		s.log.Debug("ws: upgrade failed", "remote", r.RemoteAddr, "err", err)
		closeSession(s.log, sess, HandshakeFailed)
		return
	}
	hw.batch.deflate, hw.batch.threshold, hw.batch.stats = deflate, s.opts.CompressionThreshold, &s.flushes
	c := newConn(wsc, hw.conn, hw.batch, proto, r.RemoteAddr, &s.opts, sess, &s.budget)
	c.flushes, c.slow, c.deflate = &s.flushes, &s.slow, deflate
	s.track(c)
	// The connection's read goroutine is a fresh one that the Server owns
	// (enter/leave, waited for by Shutdown), not this handler's: returning
	// lets net/http free its per-connection buffers, the request and the
	// handler's deep stack, which a hijacked connection no longer needs.
	go func() {
		defer s.leave()
		defer s.untrack(c)
		c.serve()
		c.batch.releaseDeflater()
		s.releaseDeflate(deflate)
	}()
}

// refuse answers a request Handler.Open refused.
func (s *Server) refuse(w http.ResponseWriter, err error) {
	he, ok := errors.AsType[*HTTPError](err)
	if !ok {
		s.log.Error("ws: open failed", "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	status := he.Status
	if status < 400 || status > 599 {
		s.log.Error("ws: HTTPError with a status that does not refuse; sending 500", "status", status)
		status = http.StatusInternalServerError
	}
	if he.RetryAfter > 0 {
		secs := int64(math.Ceil(he.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	msg := he.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	http.Error(w, msg, status)
}

// closeSession calls sess.Close, recovering a panic.
func closeSession(log *slog.Logger, sess Session, why CloseReason) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("ws: session panicked", "method", "Close", "panic", r)
		}
	}()
	sess.Close(why)
}

// Conns returns the number of open WebSocket connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// CloseSpread closes the connections open now with 1001 "server shutting
// down", in random order, spread evenly over window, so that their
// clients do not all reconnect (and resume) elsewhere at the same moment.
// It returns when the last one was asked to close, or when ctx ends.
// Connections opened meanwhile are left for Shutdown.
func (s *Server) CloseSpread(ctx context.Context, window time.Duration) error {
	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for i, c := range conns {
		if wait := time.Until(start.Add(window * time.Duration(i) / time.Duration(len(conns)))); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		c.closeWith(CloseGoingAway, reasonShuttingDown, ServerShutdown)
	}
	return nil
}

// Shutdown stops accepting connections (new requests get 503), closes every
// connection with 1001 "server shutting down", and waits until every
// connection has ended and its Session was closed. If ctx ends first it
// drops the remaining sockets without waiting for their close handshakes
// and returns ctx.Err(). It may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shuttingDown {
		s.shuttingDown = true
		s.streams.shutdown() // reservations not opened yet
		for c := range s.conns {
			c.closeWith(CloseGoingAway, reasonShuttingDown, ServerShutdown)
		}
		s.checkDrainedLocked()
	}
	s.mu.Unlock()

	s.streams.wait(s.log) // close them, and those expiring meanwhile
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.dropping = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drop(ServerShutdown)
	}
	return ctx.Err()
}

// enter admits a request unless the server is shutting down.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown {
		return false
	}
	s.active++
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	s.checkDrainedLocked()
}

func (s *Server) checkDrainedLocked() {
	if s.shuttingDown && s.active == 0 && !s.drainedClosed {
		s.drainedClosed = true
		close(s.drained)
	}
}

// track registers c; a connection upgraded while Shutdown ran is closed
// (or dropped) at once.
func (s *Server) track(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns[c] = struct{}{}
	switch {
	case s.dropping:
		c.drop(ServerShutdown)
	case s.shuttingDown:
		c.closeWith(CloseGoingAway, reasonShuttingDown, ServerShutdown)
	}
}

func (s *Server) untrack(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// hijackWriter keeps the net.Conn that coder/websocket hijacks, so that a
// stuck connection can be dropped at any time: closing the raw socket
// fails every pending read and write at once, which
// websocket.Conn.CloseNow does not do while a close handshake is waiting.
// It also puts a batchWriter under the bufio.Writer coder writes through,
// so the write loop can send several frames in one syscall.
type hijackWriter struct {
	http.ResponseWriter
	conn  net.Conn
	batch *batchWriter
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	if err := brw.Writer.Flush(); err != nil { // nothing is buffered after the handshake response; be sure
		return c, brw, err
	}
	w.conn = c
	w.batch = &batchWriter{conn: c}
	// Read through a small buffer instead of net/http's 4 KiB one: client
	// messages are small, and an idle connection should cost little. Bytes
	// the client sent right after its handshake move into the new buffer —
	// into it, not behind it: coder/websocket keeps only what is buffered
	// when it resets the reader after this. More than fits: keep net/http's.
	if n := brw.Reader.Buffered(); n <= readBuffer {
		var rd io.Reader = c
		if n > 0 {
			early, _ := brw.Reader.Peek(n)
			rd = io.MultiReader(bytes.NewReader(bytes.Clone(early)), c)
		}
		br := bufio.NewReaderSize(rd, readBuffer)
		if n > 0 {
			if _, err := br.Peek(n); err != nil {
				return c, brw, err
			}
		}
		brw.Reader = br
	}
	// coder/websocket writes only control frames through this writer (≤ 131
	// bytes each; the write goroutine frames messages itself, see
	// batchWriter.appendText), so a small buffer holds any of them whole.
	return c, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(w.batch, controlFrameBuffer)), nil
}

// readBuffer is the size of a connection's read buffer.
const readBuffer = 1 << 10

// controlFrameBuffer is the size of the bufio.Writer coder/websocket writes
// control frames through: a header of at most 14 bytes and 125 of payload.
const controlFrameBuffer = 256

func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// headerHasToken reports whether the comma-separated header key holds
// token, case-insensitively.
func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
