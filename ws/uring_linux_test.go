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
	victimFD := -1
	victim.Conn().direct.rc.Control(func(fd uintptr) { victimFD = int(fd) })
	taker := -1 // the socket that got the victim's number; its peer is taker+1 or taker-1
	var spare []int
	uringBeforePin = func(*uringBatch) {
		uringBeforePin = nil
		_ = victim.Conn().raw.Close()
		// Take descriptors, lowest first, until one is the victim's
		// number; keep the others open meanwhile (bounded).
		for range 2048 {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Error(err)
				return
			}
			spare = append(spare, fds[0], fds[1])
			for i, fd := range fds {
				if fd == victimFD {
					taker = fd
					spare = spare[:len(spare)-2]
					spare = append(spare, fds[1-i])
					return
				}
			}
		}
	}
	t.Cleanup(func() {
		for _, fd := range spare {
			syscall.Close(fd)
		}
	})
	t.Cleanup(func() { uringBeforePin = nil })
	f := e.srv.NewFanout()
	if !victim.Push(f, secret) || !other.Push(f, numbered(0, 8)) {
		t.Fatal("push refused")
	}
	f.Idle()
	if taker < 0 {
		t.Fatalf("the victim's descriptor %d was not taken by another socket: nothing tested", victimFD)
	}
	defer syscall.Close(taker)
	buf := make([]byte, 4096)
	// What was sent to the taker arrives at its peer, the last spare.
	peer := spare[len(spare)-1]
	if n, _ := syscall.Read(peer, buf); n > 0 {
		t.Fatalf("the socket that took a closed connection's descriptor got %q (has secret: %v)", buf[:n], bytes.Contains(buf[:n], []byte("secret")))
	}
	expectNumbered(t, cl, 1, 8)
	victimSess.expectClosed(t, ConnectionLost)
}

// resetURingPool forgets a broken ring pool's verdict, for the tests
// after one that broke it.
func resetURingPool(t *testing.T) {
	t.Cleanup(func() {
		u := &uringRings
		u.Lock()
		defer u.Unlock()
		u.checked, u.off = false, nil
	})
}

// TestIOUringRingFailure: when a ring fails (here its descriptor is made
// a non-ring file before the submit), the connections whose sends it did
// not report are closed as lost (their clients resume by cursor), their
// buffers are never reused, the rest of the round is written with
// write(2), and the process uses write(2) from then on.
func TestIOUringRingFailure(t *testing.T) {
	requireURing(t)
	resetURingPool(t)
	e := startEnv(t, Options{IOUring: IOUringOn}, nil)
	const conns = uringEntries + 2
	var sessions []*fakeSession
	var cls []*client
	var subs []*Subscription
	for range conns {
		cl, sess, sub := subscribed(t, e)
		<-e.opened // the handler counts connections in a channel of 64
		waitNoWriter(t, sub.Conn())
		cls, sessions, subs = append(cls, cl), append(sessions, sess), append(subs, sub)
	}
	devNull, err := syscall.Open("/dev/null", syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(devNull)
	uringBeforePin = func(b *uringBatch) {
		uringBeforePin = nil
		if err := syscall.Dup3(devNull, b.r.FD(), syscall.O_CLOEXEC); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { uringBeforePin = nil })
	quarantined := len(uringQuarantine.bufs)
	f := e.srv.NewFanout()
	for _, s := range subs {
		if !s.Push(f, numbered(0, 8)) {
			t.Fatal("push refused")
		}
	}
	f.Idle()
	if err := IOUringStatus(); err == nil {
		t.Fatal("io_uring still in use after a ring failed")
	}
	if got := len(uringQuarantine.bufs) - quarantined; got != uringEntries {
		t.Fatalf("%d buffers quarantined, want the failed batch's %d", got, uringEntries)
	}
	for i := range uringEntries {
		sessions[i].expectClosed(t, ConnectionLost)
	}
	for _, cl := range cls[uringEntries:] {
		expectNumbered(t, cl, 1, 8) // written with write(2)
	}
	// Later rounds use write(2).
	_, sends := e.srv.IOUringStats()
	if !pushFlush(f, subs[conns-1], numbered(1, 8)) {
		t.Fatal("push refused")
	}
	cl := cls[conns-1]
	if got, err := cl.read(); err != nil || got != `{"id":"1","type":"next","payload":`+string(numbered(1, 8))+`}` {
		t.Fatalf("after the failure: %.80s, %v", got, err)
	}
	if _, now := e.srv.IOUringStats(); now != sends {
		t.Fatalf("%d sends through io_uring after it failed", now-sends)
	}
	uringRings.Lock()
	made, free := uringRings.made, len(uringRings.free)
	uringRings.Unlock()
	if made != 0 || free != 0 {
		t.Fatalf("after the failure %d rings made, %d free; want all closed", made, free)
	}
}

// TestIOUringRingBound: at most uringMaxRings rings exist (limit − 1 and
// limit can be had, limit + 1 cannot); a round that finds none free
// writes with write(2), and every frame still arrives.
func TestIOUringRingBound(t *testing.T) {
	requireURing(t)
	e := startEnv(t, Options{IOUring: IOUringOn}, nil)
	cl, _, sub := subscribed(t, e)
	waitNoWriter(t, sub.Conn())
	max := uringMaxRings()
	var held []*uringBatch
	defer func() {
		for _, b := range held {
			putURing(b, nil)
		}
	}()
	for i := 0; ; i++ {
		b, err := getURing()
		if err != nil {
			t.Fatal(err)
		}
		if b == nil {
			if i != max {
				t.Fatalf("ring %d refused, want %d rings", i+1, max)
			}
			break
		}
		if i == max {
			t.Fatalf("ring %d of at most %d given", i+1, max)
		}
		held = append(held, b)
	}
	_, sends := e.srv.IOUringStats()
	f := e.srv.NewFanout()
	if !pushFlush(f, sub, numbered(0, 8)) {
		t.Fatal("push refused")
	}
	expectNumbered(t, cl, 1, 8)
	if _, now := e.srv.IOUringStats(); now != sends {
		t.Fatalf("%d sends through io_uring with every ring taken", now-sends)
	}
	if direct, _ := e.srv.FlushStats(); direct == 0 {
		t.Fatal("no direct write: the round did not fall back to write(2)")
	}
}
