//go:build unix

package ws

import (
	"errors"
	"net"
	"syscall"
)

// directWriter writes to the socket without waiting: the delivering
// goroutine (Conn.flush, in a Fanout's round) hands a connection its frames in one write(2) of
// its own, with no wake-up of the connection's write goroutine, when the
// socket takes them at once — the common case. It is unused (ok is false)
// for a socket that is not a syscall.Conn (TLS terminated in process),
// which always goes through the write goroutine.
type directWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) // d.write, bound once so that a write allocates nothing
	buf []byte
	n   int
	err error
}

// init sets d up to write to c, if c gives access to its descriptor.
func (d *directWriter) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	d.rc = rc
	d.fn = d.write
}

// ok reports whether d can write: init found a descriptor.
func (d *directWriter) ok() bool { return d.rc != nil }

func (d *directWriter) write(fd uintptr) { d.n, d.err = rawWrite(fd, d.buf) }

// tryWrite writes as much of p as the socket takes now. It returns how
// much was written; err is a failure of the socket (a full socket buffer
// is not one: it writes 0 bytes).
func (d *directWriter) tryWrite(p []byte) (int, error) {
	d.buf = p
	// Control, not Write: it holds a reference to the descriptor, so the
	// descriptor cannot be closed (and its number reused by another
	// connection) during the call, which is all this write needs. Write
	// would also take the descriptor's write lock and reset its poller
	// state for a wait that never happens: b.mu already keeps writers
	// apart, and what the socket does not take goes to the write
	// goroutine. Write deadlines do not apply: the write never blocks.
	err := d.rc.Control(d.fn)
	d.buf = nil
	if err != nil {
		return 0, err
	}
	switch {
	case d.err == nil:
		return d.n, nil
	case errors.Is(d.err, syscall.EAGAIN), errors.Is(d.err, syscall.EINTR):
		return 0, nil
	default:
		return 0, d.err
	}
}
