package ws

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
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
	// sse: the connection speaks graphql-sse: frames are written as
	// they are, and `next` events get their id line (appendSSENext).
	sse bool
	// single: graphql-sse single connection mode, whose `next` event
	// wraps the payload in {"id","payload"} (appendSSESingleNext).
	single bool

	mu  sync.Mutex
	buf *[]byte // non-nil while a batch is open; guarded by mu
	// leftover: the open batch holds only what a direct write (Conn.flush)
	// left; no write goroutine is building it yet. Guarded by mu.
	leftover bool
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

// appendNext appends a `next` frame, prefix then the shared payload, to
// the open batch.
func (b *batchWriter) appendNext(prefix, payload []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return errNoBatch
	}
	*b.buf = b.frameNext(*b.buf, prefix, payload)
	if len(*b.buf) >= batchFlushBytes {
		return b.flushLocked()
	}
	return nil
}

// frameNext appends a `next` frame to buf in b's framing: a WebSocket text
// message prefix + payload + "}", or an SSE event.
func (b *batchWriter) frameNext(buf, prefix, payload []byte) []byte {
	if b.single {
		return appendSSEEvent(buf, prefix, payload, closingBrace)
	}
	if b.sse {
		return appendSSENext(buf, prefix, payload)
	}
	return appendTextFrame(buf, prefix, payload, closingBrace)
}

// appendTextFrame appends to buf one complete text message holding a, then
// p, then z, as a single unmasked, unfragmented frame (RFC 6455 §5.2: FIN
// and opcode 1, then the payload length in 7, 7+16 or 7+64 bits).
func appendTextFrame(buf, a, p, z []byte) []byte {
	n := len(a) + len(p) + len(z)
	buf = append(buf, 0x81) // FIN | text
	switch {
	case n < 126:
		buf = append(buf, byte(n))
	case n <= 0xFFFF:
		buf = append(buf, 126)
		buf = binary.BigEndian.AppendUint16(buf, uint16(n))
	default:
		buf = append(buf, 127)
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
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
	b.buf, b.leftover = nil, false
	if cap(*buf) <= maxPooledBatch {
		*buf = (*buf)[:0]
		batchPool.Put(buf)
	}
}

// flushLocked writes the batch so far. b.mu must be held.
func (b *batchWriter) flushLocked() error {
	if len(*b.buf) == 0 {
		return nil
	}
	_, err := b.conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	return err
}

// open reports whether a batch is open (being built, or holding bytes a
// direct write left over).
func (b *batchWriter) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf != nil
}
