package ws

import (
	"errors"
	"net"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Batching: when several frames are queued for one connection, they are
// framed into one buffer and written to the socket in one syscall (by
// a Fanout's write round, or by the write goroutine). Each frame is still one complete WebSocket
// message; only the syscalls are shared. Under load this removes most of
// the per-delivery syscall cost (one write per delivery is what limits
// servers that don't batch).

const (
	// maxBatchFrames bounds how many queued frames one flush carries.
	maxBatchFrames = 64
	// batchFlushBytes flushes a batch early once it holds this many bytes.
	batchFlushBytes = 64 << 10
	// maxPooledBatch: larger batch buffers are not pooled.
	maxPooledBatch = 256 << 10
)

// batchPool holds batch buffers between flushes, so an idle connection
// keeps none.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// batchWriter sits under coder/websocket's bufio.Writer, on the hijacked
// socket. While a batch is open it collects what coder writes (frames of
// the write loop, and control frames coder writes from other goroutines,
// in the order coder serialises them) and writes it at flush; otherwise it
// writes through. Safe for concurrent use.
type batchWriter struct {
	conn net.Conn
	// sse: the connection is a streamed HTTP response (graphql-sse, or
	// multipart when multipart is set): frames are written as they are,
	// and `next` events get their id line (appendSSENext), or are
	// multipart parts (appendMultipartNext).
	sse, multipart bool
	// single: graphql-sse single connection mode, whose `next` event
	// wraps the payload in {"id","payload"} (appendSSEEvent).
	single bool
	// deflate is the permessage-deflate a WebSocket connection
	// negotiated, threshold the least `next` message it compresses
	// (compress.go). Set before the connection is used.
	deflate   deflateMode
	threshold int
	// gz: a stream transport's gzip body (gzip.go); nil for none. Set
	// before the connection is used.
	gz *gzipStream
	// stats is the Server's, for CompressionStats; nil in tests.
	stats *flushStats

	mu  sync.Mutex
	buf *[]byte // non-nil while a batch is open; guarded by mu
	// leftover: the open batch holds only what a direct write (Conn.flush)
	// left; no write goroutine is building it yet. Guarded by mu.
	leftover bool
	// body: gz is on (the head is written): (*buf)[plain:] is body not
	// yet encoded, the bytes before it are ready for the socket. Guarded
	// by mu.
	body  bool
	plain int
	// dw is a deflateContext connection's compressor, from its first
	// compressed message on; ds is where compressors write. Guarded by mu.
	dw *flate.Writer
	ds sink
	// zin, zout: bytes compressed, before and after, not yet added to
	// stats (at the next write). Guarded by mu.
	zin, zout uint64
}

func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return b.conn.Write(p)
	}
	*b.buf = append(*b.buf, p...)
	if b.leftover {
		// A control frame (coder/websocket's close reply, say) behind a
		// direct write's rest: nobody may be about to write either (the
		// client's close makes coder drop the socket next), so both go
		// now, in order.
		err := b.flushLocked()
		b.closeLocked()
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if len(*b.buf) >= batchFlushBytes {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// errNoBatch means a frame was written outside a batch (a bug).
var errNoBatch = errors.New("ws: frame written outside a batch")

// appendText appends one complete text message holding a, then p, then z
// to the open batch, as a single unmasked, unfragmented frame (RFC 6455
// §5.2: FIN and opcode 1, then the payload length in 7, 7+16 or 7+64
// bits). The write goroutine frames its messages here itself, so the
// shared payload is copied once, straight into the batch, with no
// per-message locking inside coder/websocket; coder/websocket writes only
// control frames (close, WebSocket pong), each reaching this writer in one
// Write, so the two never interleave inside a frame.
func (b *batchWriter) appendText(a, p, z []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return errNoBatch
	}
	if b.sse {
		*b.buf = append(append(append(*b.buf, a...), p...), z...)
	} else {
		*b.buf = appendTextFrame(*b.buf, a, p, z)
	}
	if len(*b.buf) >= batchFlushBytes {
		return b.flushLocked()
	}
	return nil
}

// appendNext appends a `next` frame of kind k, prefix then the shared
// payload (m: its sseMeta, if known), to the open batch.
func (b *batchWriter) appendNext(k frameKind, prefix, payload []byte, m sseMeta) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return errNoBatch
	}
	*b.buf = b.frameNext(*b.buf, k, prefix, payload, m)
	if len(*b.buf) >= batchFlushBytes {
		return b.flushLocked()
	}
	return nil
}

// frameNext appends a `next` frame of kind k to buf in b's framing: a
// WebSocket text message prefix + payload + "}" (compressed, for a
// connection that negotiated permessage-deflate, when it is at least the
// threshold; kindNextDeflated: payload is the shared compressed body), an
// SSE event of either mode (m: the payload's sseMeta, or zero) or a
// multipart part. b.mu must be held.
func (b *batchWriter) frameNext(buf []byte, k frameKind, prefix, payload []byte, m sseMeta) []byte {
	switch {
	case b.multipart:
		return appendMultipartNext(buf, prefix, payload)
	case b.single:
		return appendSSEEvent(buf, prefix, payload, closingBrace, m)
	case b.sse:
		return appendSSENext(buf, prefix, payload, m)
	case k == kindNextDeflated:
		return appendSharedNext(buf, prefix, payload)
	case k == kindNext && b.deflate != deflateOff && len(prefix)+len(payload)+len(closingBrace) >= b.threshold:
		return b.appendDeflatedNext(buf, prefix, payload)
	}
	return appendTextFrame(buf, prefix, payload, closingBrace)
}

// appendDeflatedNext compresses a `next` message for this connection
// alone: with its own compressor (context takeover), or a pooled one reset
// for the message. b.mu must be held.
func (b *batchWriter) appendDeflatedNext(buf, prefix, payload []byte) []byte {
	start := len(buf)
	b.zin += uint64(len(prefix) + len(payload) + len(closingBrace))
	if b.deflate == deflateContext {
		if b.dw == nil {
			b.dw = deflaterPool.Get().(*flate.Writer)
			b.dw.Reset(&b.ds)
		}
		buf = appendDeflated(b.dw, &b.ds, buf, prefix, payload, closingBrace)
	} else {
		w := deflaterPool.Get().(*flate.Writer)
		w.Reset(&b.ds)
		buf = appendDeflated(w, &b.ds, buf, prefix, payload, closingBrace)
		w.Reset(nil)
		deflaterPool.Put(w)
	}
	b.zout += uint64(framedLen(len(buf) - start))
	return buf
}

// framedLen returns the payload length of a server frame of n bytes.
func framedLen(n int) int {
	for _, h := range []int{2, 4, 10} {
		if n >= h && headerLen(n-h) == h {
			return n - h
		}
	}
	return n
}

// countLocked adds what b compressed since the last write to the Server's
// stats: once per write, not per message. b.mu must be held.
func (b *batchWriter) countLocked() {
	if b.zin != 0 && b.stats != nil {
		b.stats.zin.Add(b.zin)
		b.stats.zout.Add(b.zout)
	}
	b.zin, b.zout = 0, 0
}

// releaseDeflater gives a closed connection's compressor back to the pool.
func (b *batchWriter) releaseDeflater() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dw != nil {
		b.dw.Reset(nil)
		deflaterPool.Put(b.dw)
		b.dw = nil
	}
	b.deflate = deflateOff
}

// startBody marks the end of a stream transport's head: what the batch
// gets from now on is body, gzip-encoded when written (gzip.go).
func (b *batchWriter) startBody() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gz == nil {
		return
	}
	b.body = true
	if b.buf != nil {
		b.plain = len(*b.buf)
	}
}

// encodeLocked encodes the body bytes of buf from plain on, returning the
// buffer (buf, or a pooled one that replaced it) that holds what goes to
// the socket. b.mu must be held.
func (b *batchWriter) encodeLocked(buf *[]byte, plain int) *[]byte {
	if !b.body || plain >= len(*buf) {
		return buf
	}
	out := batchPool.Get().(*[]byte)
	*out = append((*out)[:0], (*buf)[:plain]...)
	*out = b.gz.encode(*out, (*buf)[plain:])
	b.zin += uint64(len(*buf) - plain)
	b.zout += uint64(len(*out) - plain)
	putBatch(buf)
	return out
}

// endBody returns p as the body's last bytes — encoded, then the end of
// the gzip stream, for a gzip body — or p itself. Write goroutine, once
// nothing more will be written.
func (b *batchWriter) endBody(p []byte) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.body {
		return p
	}
	return b.gz.end(nil, p)
}

// putBatch gives a batch buffer back to the pool, unless it grew too big.
func putBatch(buf *[]byte) {
	if cap(*buf) <= maxPooledBatch {
		*buf = (*buf)[:0]
		batchPool.Put(buf)
	}
}

// appendTextFrame appends to buf one complete text message holding a, then
// p, then z, as a single unmasked, unfragmented frame (RFC 6455 §5.2: FIN
// and opcode 1, then the payload length in 7, 7+16 or 7+64 bits).
func appendTextFrame(buf, a, p, z []byte) []byte {
	buf = appendHeader(buf, 0x81, len(a)+len(p)+len(z)) // FIN | text
	buf = append(buf, a...)
	buf = append(buf, p...)
	return append(buf, z...)
}

// begin opens a batch; a direct write's leftover, if any, starts it.
func (b *batchWriter) begin() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
	b.plain = len(*b.buf) // a leftover is encoded already
	b.leftover = false
}

// end writes the batch in one syscall and closes it.
func (b *batchWriter) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return nil
	}
	err := b.flushLocked()
	b.closeLocked()
	return err
}

// closeLocked closes the open batch, pooling its buffer. b.mu must be held.
func (b *batchWriter) closeLocked() {
	buf := b.buf
	b.buf, b.leftover, b.plain = nil, false, 0
	putBatch(buf)
}

// flushLocked writes the batch so far. b.mu must be held.
func (b *batchWriter) flushLocked() error {
	if len(*b.buf) == 0 {
		return nil
	}
	b.buf = b.encodeLocked(b.buf, b.plain)
	b.countLocked()
	_, err := b.conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	b.plain = 0
	return err
}

// open reports whether a batch is open (being built, or holding bytes a
// direct write left over).
func (b *batchWriter) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf != nil
}
