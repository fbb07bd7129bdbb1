//go:build linux

package uring

import (
	"bytes"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/fraiseql/subscriptions/internal/uring/uringtest"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func requireURing(t *testing.T) {
	t.Helper()
	uringtest.Require(t, Probe())
}

// Sends take heap or global buffers (PrepSend).
var (
	msgOne, msgTwo, msgThree, msgFour = []byte("one"), []byte("two-"), []byte("three"), []byte("4")
	msgX, msgY                        = []byte("x"), []byte("y")
)

func socketPair(t *testing.T) [2]int {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
	})
	return fds
}

// TestSubmitSendsInOrder: one Submit sends each prepared buffer to its
// socket, reports each result under its tag, and the ring can be used
// again; the sends of one socket arrive in the order prepared.
func TestSubmitSendsInOrder(t *testing.T) {
	requireURing(t)
	r, err := New(8)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, b := socketPair(t), socketPair(t)
	for round := range 3 {
		msgs := [][]byte{msgOne, msgTwo, msgThree, msgFour}
		fds := []int{a[0], b[0], a[0], b[0]}
		for i, m := range msgs {
			r.PrepSend(uintptr(fds[i]), m, 10+i)
		}
		got := map[int]int32{}
		if err := r.Submit(func(tag int, res int32) { got[tag] = res }); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i, m := range msgs {
			if got[10+i] != int32(len(m)) {
				t.Fatalf("round %d: send %d gave %d, want %d", round, i, got[10+i], len(m))
			}
		}
		buf := make([]byte, 64)
		for _, want := range []struct {
			fd  int
			msg string
		}{{a[1], "onethree"}, {b[1], "two-4"}} {
			n, err := syscall.Read(want.fd, buf)
			if err != nil || !bytes.Equal(buf[:n], []byte(want.msg)) {
				t.Fatalf("round %d: read %q, %v; want %q", round, buf[:max(n, 0)], err, want.msg)
			}
		}
	}
}

// TestSubmitFullSocketFailsAtOnce: a send to a full socket completes with
// EAGAIN in the same Submit (no send outlives it), beside a send to
// another socket that succeeds.
func TestSubmitFullSocketFailsAtOnce(t *testing.T) {
	requireURing(t)
	r, err := New(4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	full, ok := socketPair(t), socketPair(t)
	chunk := make([]byte, 64<<10)
	for i := 0; ; i++ {
		if i == maxProbeWrites {
			t.Fatal("could not fill the socket")
		}
		if _, err := syscall.Write(full[0], chunk); err != nil {
			break
		}
	}
	r.PrepSend(uintptr(full[0]), msgX, 0)
	r.PrepSend(uintptr(ok[0]), msgY, 1)
	got := map[int]int32{}
	if err := r.Submit(func(tag int, res int32) { got[tag] = res }); err != nil {
		t.Fatal(err)
	}
	if got[0] != -int32(syscall.EAGAIN) || got[1] != 1 {
		t.Fatalf("results %v, want [0:-EAGAIN 1:1]", got)
	}
}

// TestSubmitClosedPeer: a send to a socket whose peer closed fails with
// EPIPE, and no SIGPIPE ends the process.
func TestSubmitClosedPeer(t *testing.T) {
	requireURing(t)
	r, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	syscall.Close(fds[1])
	var res int32
	r.PrepSend(uintptr(fds[0]), msgX, 0)
	if err := r.Submit(func(_ int, v int32) { res = v }); err != nil {
		t.Fatal(err)
	}
	if res != -int32(syscall.EPIPE) {
		t.Fatalf("send to a closed peer gave %d, want -EPIPE (%d)", res, -int32(syscall.EPIPE))
	}
}

// TestPrepSendBound: a ring of size n takes n sends per Submit (limit - 1
// and limit succeed), and the n+1st is refused rather than overwriting a
// prepared one.
func TestPrepSendBound(t *testing.T) {
	requireURing(t)
	const size = 4
	r, err := New(size)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != size {
		t.Fatalf("Size %d, want %d", r.Size(), size)
	}
	fds := socketPair(t)
	for _, n := range []int{size - 1, size} {
		for i := range n {
			r.PrepSend(uintptr(fds[0]), msgX, i)
		}
		sent := 0
		if err := r.Submit(func(_ int, res int32) { sent += int(res) }); err != nil || sent != n {
			t.Fatalf("%d sends: %d bytes sent, %v", n, sent, err)
		}
	}
	for i := range size {
		r.PrepSend(uintptr(fds[0]), msgX, i)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatalf("send %d of a ring of %d was accepted", size+1, size)
			}
		}()
		r.PrepSend(uintptr(fds[0]), msgX, size)
	}()
	if err := r.Submit(func(int, int32) {}); err != nil {
		t.Fatal(err)
	}
}

// TestSubmitFailsOnABrokenRing: when the kernel does not take the sends
// (the ring's descriptor is no ring), Submit fails and reports none done.
func TestSubmitFailsOnABrokenRing(t *testing.T) {
	requireURing(t)
	r, err := New(2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	devNull, err := syscall.Open("/dev/null", syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(devNull)
	if err := syscall.Dup3(devNull, r.FD(), syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	fds := socketPair(t)
	r.PrepSend(uintptr(fds[0]), msgX, 0)
	r.PrepSend(uintptr(fds[0]), msgY, 1)
	done := 0
	if err := r.Submit(func(int, int32) { done++ }); err == nil || done != 0 {
		t.Fatalf("Submit on a broken ring: %v, %d done; want an error, none done", err, done)
	}
}
