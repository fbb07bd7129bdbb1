//go:build !unix

package ws

import (
	"errors"
	"net"
)

// directWriter is the portable fallback of direct_unix.go: without a raw
// write(2) to a non-blocking descriptor, a Fanout's round does not write
// on its own goroutine; every connection it flushes is handed to that
// connection's write goroutine (ok is false), which writes with a
// blocking write under the write deadline. Correct everywhere, one
// goroutine wake-up per connection per round dearer.
type directWriter struct{}

// errNoDirectWrite: tryWrite is never called when ok is false.
var errNoDirectWrite = errors.New("ws: no direct write on this system")

func (d *directWriter) init(net.Conn) {}

func (d *directWriter) ok() bool { return false }

func (d *directWriter) tryWrite([]byte) (int, error) { return 0, errNoDirectWrite }
