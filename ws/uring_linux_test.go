//go:build linux

package ws

import (
	"bytes"
	"syscall"
	"testing"
)

// TestIOUringClosedDescriptorNotReused is the attack on a round's
// descriptors: a connection's socket closes after the round prepared its
// write and before the kernel sends it, and its descriptor number is
// taken at once by another socket. The write must not reach that socket
// (another client's, in production): the connection's descriptor is
// pinned for the send, so a closed one gets no send and ends as lost.
func TestIOUringClosedDescriptorNotReused(t *testing.T) {
	requireURing(t)
	e := startEnv(t, Options{IOUring: IOUringOn}, nil)
	_, victimSess, victim := subscribed(t, e)
	waitNoWriter(t, victim.Conn())
	cl, _, other := subscribed(t, e)
	waitNoWriter(t, other.Conn())
	secret := []byte(`{"data":{"secret":"the victim's"}}`)
	var taker [2]int
	uringBeforePin = func() {
		uringBeforePin = nil
		_ = victim.Conn().raw.Close()
		// The lowest free number is the one just freed.
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		taker = [2]int{fds[0], fds[1]}
	}
	t.Cleanup(func() { uringBeforePin = nil })
	f := e.srv.NewFanout()
	if !victim.Push(f, secret) || !other.Push(f, numbered(0, 8)) {
		t.Fatal("push refused")
	}
	f.Idle()
	if taker == [2]int{} {
		t.Fatal("the round ran no io_uring batch")
	}
	defer syscall.Close(taker[0])
	defer syscall.Close(taker[1])
	buf := make([]byte, 4096)
	for _, fd := range taker {
		if n, _ := syscall.Read(fd, buf); n > 0 {
			t.Fatalf("the socket that took a closed connection's descriptor got %q (has secret: %v)", buf[:n], bytes.Contains(buf[:n], []byte("secret")))
		}
	}
	expectNumbered(t, cl, 1, 8)
	victimSess.expectClosed(t, ConnectionLost)
}
