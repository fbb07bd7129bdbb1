//go:build linux

// Package uring is the little of Linux's io_uring that a write round
// needs: a ring of non-blocking socket sends submitted, and completed, in
// one io_uring_enter(2). No request outlives Submit: a caller's buffers
// and descriptors are the kernel's only during the call.
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// Linux ABI (include/uapi/linux/io_uring.h).
const (
	sysSetup = 425
	sysEnter = 426

	opSend          = 26
	setupSubmitAll  = 1 << 7 // Linux 5.18: an SQE that fails does not stop the ones after it
	featSingleMmap  = 1 << 0
	featNodrop      = 1 << 1
	offSQRing       = 0
	offSQEs         = 0x10000000
	msgDontwait     = 0x40
	msgNosignal     = 0x4000
	maxProbeWrites  = 1024
	probeChunkBytes = 64 << 10
)

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

type sqe struct {
	opcode, flags  uint8
	ioprio         uint16
	fd             int32
	off, addr      uint64
	len, msgFlags  uint32
	userData       uint64
	bufIndex, pers uint16
	spliceFdIn     int32
	addr3, pad2    uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Ring is one io_uring instance. It is used by one goroutine at a time.
type Ring struct {
	fd             int
	size           uint32
	sqTail, sqMask *uint32
	sqes           []sqe
	cqHead, cqTail *uint32
	cqMask         *uint32
	cqes           []cqe
	mem, sqeMem    []byte
	n              uint32 // sends prepared, not yet submitted
}

// New returns a ring for up to size sends per Submit. It fails where
// io_uring is unavailable: a kernel older than 5.18, io_uring disabled
// (sysctl kernel.io_uring_disabled, a seccomp profile).
func New(size int) (*Ring, error) {
	var p params
	p.flags = setupSubmitAll
	fd, _, errno := syscall.Syscall(sysSetup, uintptr(size), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), size: uint32(size)}
	if p.features&featSingleMmap == 0 || p.features&featNodrop == 0 || p.sqEntries < uint32(size) {
		r.Close()
		return nil, errors.New("io_uring: kernel too old (no single mmap or no CQ overflow protection)")
	}
	rings := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	var err error
	if r.mem, err = syscall.Mmap(r.fd, offSQRing, int(rings), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("io_uring: mmap rings: %w", err)
	}
	if r.sqeMem, err = syscall.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("io_uring: mmap SQEs: %w", err)
	}
	base := unsafe.Pointer(unsafe.SliceData(r.mem))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = (*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	array := unsafe.Slice((*uint32)(unsafe.Add(base, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i) // SQ slot i holds SQE i, always
	}
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = (*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(base, p.cqOff.cqes)), p.cqEntries)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(unsafe.SliceData(r.sqeMem))), p.sqEntries)
	return r, nil
}

// Close releases the ring.
func (r *Ring) Close() {
	if r.sqeMem != nil {
		syscall.Munmap(r.sqeMem)
	}
	if r.mem != nil {
		syscall.Munmap(r.mem)
	}
	syscall.Close(r.fd)
}

// FD is the ring's descriptor.
func (r *Ring) FD() int { return r.fd }

// Size is how many sends one Submit takes.
func (r *Ring) Size() int { return int(r.size) }

// PrepSend adds a send of p to the socket fd, tagged tag, that does not
// wait for room (MSG_DONTWAIT: a full socket fails it with EAGAIN) and
// raises no SIGPIPE. At most Size may be prepared per Submit; p and fd
// must stay valid until Submit returns, and p must not be on a
// goroutine's stack (a stack can move): a heap or global buffer.
func (r *Ring) PrepSend(fd uintptr, p []byte, tag int) {
	if r.n == r.size {
		panic("uring: more sends prepared than the ring holds")
	}
	tail := atomic.LoadUint32(r.sqTail) + r.n
	r.sqes[tail&*r.sqMask] = sqe{
		opcode:   opSend,
		fd:       int32(fd),
		addr:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(p)))),
		len:      uint32(len(p)),
		msgFlags: msgDontwait | msgNosignal,
		userData: uint64(tag),
	}
	r.n++
}

// Submit submits the prepared sends with one io_uring_enter, which does
// not wait for completions, and calls done with each one's tag and
// result: the bytes sent, or -errno. Sends complete as they are submitted
// (they never wait for room: see Probe), so all are done when it returns;
// if the kernel did not take or finish them all, Submit fails, the ring
// must not be used again, and the buffers of the sends done was not
// called for may still be read by the kernel: they must never be reused.
func (r *Ring) Submit(done func(tag int, res int32)) error {
	n := r.n
	if n == 0 {
		return nil
	}
	r.n = 0
	atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+n)
	// min_complete 0, no IORING_ENTER_GETEVENTS: a send that did not
	// complete at once (it should not happen) must not hold the caller,
	// who holds connections' locks; it shows as not done, below.
	got, _, errno := syscall.RawSyscall6(sysEnter, uintptr(r.fd), uintptr(n), 0, 0, 0, 0)
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	reaped := tail - head
	for ; head != tail; head++ {
		c := &r.cqes[head&*r.cqMask]
		done(int(c.userData), c.res)
	}
	atomic.StoreUint32(r.cqHead, head)
	switch {
	case errno != 0:
		return fmt.Errorf("io_uring_enter: %w", errno)
	case uint32(got) != n || reaped != n:
		return fmt.Errorf("io_uring_enter: %d sends submitted, %d done, of %d", got, reaped, n)
	}
	return nil
}

// probeMsg is Probe's send: global, as PrepSend requires.
var probeMsg = []byte("probe")

// Probe reports nil if this kernel's io_uring does what Submit counts on —
// a send to a socket with room sends at once, and one to a full socket
// fails at once with EAGAIN rather than waiting — or why not.
func Probe() error {
	r, err := New(1)
	if err != nil {
		return err
	}
	defer r.Close()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("io_uring probe: %w", err)
	}
	defer syscall.Close(fds[0])
	defer syscall.Close(fds[1])
	p := probeMsg
	var res int32
	send := func() error {
		res = 0
		r.PrepSend(uintptr(fds[0]), p, 0)
		return r.Submit(func(_ int, v int32) { res = v })
	}
	if err := send(); err != nil || res != int32(len(p)) {
		return fmt.Errorf("io_uring probe: a send to an empty socket gave %d, %v", res, err)
	}
	chunk := make([]byte, probeChunkBytes) // written by write(2), not the ring
	for i := 0; ; i++ {
		if i == maxProbeWrites {
			return errors.New("io_uring probe: could not fill a socket")
		}
		if _, err := syscall.Write(fds[0], chunk); err != nil {
			break
		}
	}
	if err := send(); err != nil || res != -int32(syscall.EAGAIN) {
		return fmt.Errorf("io_uring probe: a send to a full socket gave %d, %v (want EAGAIN at once)", res, err)
	}
	return nil
}
