//go:build linux

package ws

import (
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fraiseql/subscriptions/internal/uring"
)

// io_uring for a write round (Options.IOUring): the round's direct writes
// go to the kernel as one io_uring_enter(2) per uringEntries connections
// instead of one write(2) each. The TCP work is the same; what is saved is
// the system call's entry and exit per connection, which on virtual
// machines costs as much as the write itself (docs/benchmarks.md).
//
// Every send is non-blocking, so all have completed when io_uring_enter
// returns (uring.Probe checks that once per process; io_uring is not used
// where it fails). Nothing stays in flight after a pass: no buffer or
// descriptor is the kernel's once the round moves on.
//
// Descriptors: each connection's descriptor is pinned for the call with
// its RawConn.Control, nested (uringBatch.pin), so that none can be closed
// — and its number reused by another connection — while the kernel may
// write to it. Each connection's c.wmu and c.batch.mu are held from
// directBegin to directEnd, as for a write(2) of its own: the write
// goroutine waits, other Fanouts hand the connection to it.

// uringEntries is how many sends one io_uring_enter carries. 32 already
// takes nearly all of the saving (docs/benchmarks.md).
const uringEntries = 64

// uringRings is the process's pool of rings, each with its batch: a write
// pass takes one, or writes with write(2) if none is free. Rings live as
// long as the process (like the runtime's own poller), at most
// uringMaxRings of them.
var uringRings uringPool

type uringPool struct {
	sync.Mutex
	free    []*uringBatch
	made    int
	checked bool  // uring.Probe ran
	off     error // why io_uring is not used (probe or setup failed, a ring broke)
}

// offLocked returns why io_uring is not used, probing on first use; u
// must be locked.
func (u *uringPool) offLocked() error {
	if !u.checked {
		u.checked = true
		u.off = uring.Probe()
	}
	return u.off
}

// uringMaxRings bounds the rings: each Fanout's write pass uses up to
// GOMAXPROCS at once, and a few Fanouts write at the same time.
func uringMaxRings() int { return min(64, 2*runtime.GOMAXPROCS(0)) }

// getURing returns a ring's batch for one write pass, or nil: io_uring is
// unavailable, every ring is in use, or a new ring could not be set up
// (err: out of descriptors or memory, say; a later pass tries again).
func getURing() (*uringBatch, error) {
	u := &uringRings
	u.Lock()
	defer u.Unlock()
	if u.offLocked() != nil {
		return nil, nil
	}
	if n := len(u.free); n > 0 {
		b := u.free[n-1]
		u.free[n-1] = nil
		u.free = u.free[:n-1]
		return b, nil
	}
	if u.made >= uringMaxRings() {
		return nil, nil
	}
	r, err := uring.New(uringEntries)
	if err != nil {
		return nil, err
	}
	u.made++
	b := &uringBatch{r: r}
	b.fn = b.pinned
	return b, nil
}

// putURing gives b back after a write pass; broken (a submit failed)
// closes its ring and every free one, and stops io_uring for the process:
// write rounds use write(2) from then on.
func putURing(b *uringBatch, broken error) {
	u := &uringRings
	u.Lock()
	defer u.Unlock()
	if broken == nil && u.off == nil {
		u.free = append(u.free, b)
		return
	}
	if broken == nil { // another ring broke while b was in use
		b.r.Close()
		u.made--
		return
	}
	u.off = broken
	b.r.Close()
	for _, f := range u.free {
		f.r.Close()
	}
	u.made -= 1 + len(u.free)
	clear(u.free)
	u.free = u.free[:0]
}

// uringStatus reports nil if write rounds can use io_uring here, or why
// not.
func uringStatus() error {
	u := &uringRings
	u.Lock()
	defer u.Unlock()
	return u.offLocked()
}

// uringBatch is what a ring's write pass holds for up to uringEntries
// connections: their prepared writes (Conn.directBegin) and results.
type uringBatch struct {
	r   *uring.Ring
	ent [uringEntries]uringEntry
	n   int
	at  int              // the entry whose descriptor pin is pinning
	fn  func(fd uintptr) // b.pinned, bound once: a pass allocates nothing
	err error            // the submit's failure
}

type uringEntry struct {
	c      *Conn
	buf    *[]byte
	frames int
	rest   bool // frames stay queued after this write
	queued bool // its send was prepared
	done   bool // its send completed (sent, err)
	sent   int
	err    error
}

// pin pins the descriptors of entries i.. by nesting their Control calls
// and submits their sends from the innermost one. An entry whose
// descriptor is closed already gets that error and no send.
func (b *uringBatch) pin(i int) {
	for ; i < b.n; i++ {
		b.at = i
		if err := b.ent[i].c.direct.rc.Control(b.fn); err != nil {
			b.ent[i].err = err
			continue
		}
		return // the rest was done inside
	}
	b.err = b.r.Submit(b.result)
}

func (b *uringBatch) pinned(fd uintptr) {
	i := b.at
	b.ent[i].queued = true
	b.r.PrepSend(fd, *b.ent[i].buf, i)
	b.pin(i + 1)
}

func (b *uringBatch) result(tag int, res int32) {
	if tag < 0 || tag >= b.n {
		return
	}
	e := &b.ent[tag]
	e.done = true
	switch {
	case res >= 0:
		e.sent = int(res)
	case res == -int32(syscall.EAGAIN), res == -int32(syscall.EINTR):
		// The socket is full: the write goroutine writes it.
	default:
		e.err = &net.OpError{Op: "write", Net: "tcp", Err: syscall.Errno(-res)}
	}
}

// uringBeforePin, in tests, runs after a batch's writes are prepared and
// before their descriptors are pinned.
var uringBeforePin func(*uringBatch)

// uringSetupLogged is when a failure to set up a ring was last logged
// (monotonic): at most once a minute.
var uringSetupLogged atomic.Int64

// uringQuarantine keeps the buffers of sends a broken ring may still read
// from being reused for another connection's frames. It only grows when a
// ring breaks, which also stops io_uring for the process.
var uringQuarantine struct {
	sync.Mutex
	bufs []*[]byte
}

// flushConnsURing is flushConns with io_uring: it writes conns with one
// io_uring_enter per uringEntries of them. It reports false, having done
// nothing, when no ring is to be had (io_uring off or unavailable, or
// every ring in use).
func flushConnsURing(conns []*Conn, now int64, stats *flushStats, log *slog.Logger) bool {
	b, err := getURing()
	if err != nil {
		if t := monotonic(); t-uringSetupLogged.Load() > int64(time.Minute) {
			uringSetupLogged.Store(t)
			log.Warn("ws: no io_uring ring for a write round; it uses write(2)", "err", err)
		}
	}
	if b == nil {
		return false
	}
	var broken error
	for len(conns) > 0 && broken == nil {
		b.n = 0
		k := 0
		for ; k < len(conns) && b.n < uringEntries; k++ {
			c := conns[k]
			c.lastWrite.Store(now)
			c.flushDue.Store(false)
			if !c.direct.ok() || !c.wmu.TryLock() {
				c.flushed(true)
				continue
			}
			buf, frames, rest := c.directBegin()
			if buf == nil {
				c.wmu.Unlock()
				c.flushed(rest)
				continue
			}
			b.ent[b.n] = uringEntry{c: c, buf: buf, frames: frames, rest: rest}
			b.n++
		}
		conns = conns[k:]
		if b.n == 0 {
			continue
		}
		b.err = nil
		if uringBeforePin != nil {
			uringBeforePin(b)
		}
		b.pin(0)
		if b.err != nil {
			broken = b.err
		}
		sends := 0
		for i := range b.n {
			e := &b.ent[i]
			if e.queued {
				sends++
			}
			if e.queued && !e.done {
				// The kernel may still read it: never reuse it.
				uringQuarantine.Lock()
				uringQuarantine.bufs = append(uringQuarantine.bufs, e.buf)
				uringQuarantine.Unlock()
				e.buf, e.err = nil, broken
			}
			rest := e.c.directEnd(e.buf, e.frames, e.rest, e.sent, e.err)
			e.c.wmu.Unlock()
			e.c.flushed(rest)
			*e = uringEntry{}
		}
		if sends > 0 {
			stats.uringSubmits.Add(1)
			stats.uringSends.Add(uint64(sends))
		}
	}
	putURing(b, broken)
	if broken != nil {
		log.Error("ws: io_uring failed; write rounds use write(2) from now on", "err", broken)
		for _, c := range conns {
			c.lastWrite.Store(now)
			c.flush()
		}
	}
	return true
}
