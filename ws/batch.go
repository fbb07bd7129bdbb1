package ws

import (
	"net"
	"sync"
)

// Batching: when several frames are queued for one connection, the write
// loop hands all of them to coder/websocket and writes their bytes to the
// socket in one syscall. Each frame is still one complete WebSocket
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

	mu  sync.Mutex
	buf *[]byte // non-nil while a batch is open; guarded by mu
}

func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return b.conn.Write(p)
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= batchFlushBytes {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// begin opens a batch.
func (b *batchWriter) begin() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
}

// end writes the batch in one syscall and closes it.
func (b *batchWriter) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf == nil {
		return nil
	}
	err := b.flushLocked()
	buf := b.buf
	b.buf = nil
	if cap(*buf) <= maxPooledBatch {
		*buf = (*buf)[:0]
		batchPool.Put(buf)
	}
	return err
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
