package ws

import "time"

// Writing: write rounds of a Fanout (flush), the write goroutine (wake,
// writeLoop), batching several frames per write(2), and the write
// deadline.

// wake makes sure a write goroutine runs: one starts when there is
// something to write (frames flush could not write itself, control
// frames, a keep-alive, the close) and ends when there is nothing left, so
// an idle connection has none. At most one runs at a time.
func (c *Conn) wake() {
	if c.writerOn.CompareAndSwap(false, true) {
		go c.writeLoop() // owned by c: the last one, which closes the socket, closes writerDone
	}
}

// writeLoop writes queued frames and due keep-alives until there is
// nothing left to write, or, once the connection starts closing, closes
// the socket.
func (c *Conn) writeLoop() {
	for {
		// Closing wins over queued frames: a closing connection writes
		// nothing more. A due keep-alive goes out even while frames keep
		// coming (legacy clients drop a connection that sends no ka).
		if c.isClosing() {
			c.finishWriting()
			return
		}
		c.wmu.Lock()
		ok := true
		if c.kaDue.Swap(false) {
			ok = c.writeAlone(c.proto.keepAliveFrame())
			c.kaTimer.Reset(c.kaEvery)
		}
		f, more := c.queue.pop()
		if !more && c.batch.open() {
			// Bytes a direct write (flush) left over: they go out first.
			f, more = frame{kind: kindFlush}, true
		}
		if ok && more {
			ok = c.writeBatch(f)
		}
		c.wmu.Unlock()
		if more {
			c.syncQueued() // the batch left the queue
		}
		if !ok {
			c.finishWriting()
			return
		}
		if more {
			continue
		}
		// Nothing left: end, unless work arrived before writerOn was
		// cleared (its wake saw a writer running and started none).
		c.writerOn.Store(false)
		if !c.hasWork() || !c.writerOn.CompareAndSwap(false, true) {
			return
		}
	}
}

// hasWork reports whether a write goroutine has something to do.
func (c *Conn) hasWork() bool {
	return c.isClosing() || c.kaDue.Load() || c.queue.len() > 0 || c.batch.open()
}

// finishWriting closes the socket and ends writing for good: writerOn
// stays set, so no write goroutine starts after this one.
func (c *Conn) finishWriting() {
	c.closeSocket()
	if c.watchdog != nil {
		c.watchdog.Stop()
	}
	if c.kaTimer != nil {
		c.kaTimer.Stop()
	}
	close(c.writerDone)
}

// keepAliveDue runs on the keep-alive timer's goroutine.
func (c *Conn) keepAliveDue() {
	c.kaDue.Store(true)
	c.wake()
}

// flush writes the frames Push queued; a Fanout round calls it. It never
// blocks: when the socket takes the queued frames at once (the common
// case) they are written in one non-blocking write(2) on the calling
// goroutine; otherwise — the write goroutine is busy, a previous write is
// unfinished, the socket buffer is full, more than a batch is queued —
// the write goroutine is woken to write the rest at the client's pace.
// (flushConnsURing does the same for many connections at once.)
func (c *Conn) flush() {
	c.flushDue.Store(false)
	rest := true
	if c.direct.ok() && c.wmu.TryLock() {
		rest = c.flushDirect()
		c.wmu.Unlock()
	}
	c.flushed(rest)
}

// flushed ends a round's write of c: what the socket did not take (rest)
// is its backlog, counted node-wide, and goes to the write goroutine.
func (c *Conn) flushed(rest bool) {
	c.syncQueued()
	if rest {
		c.flushes.handoff.Add(1)
		c.wake()
	} else {
		c.flushes.direct.Add(1)
	}
}

// flushDirect writes up to a batch of queued `next` frames with one
// non-blocking write. c.wmu must be held. It reports whether anything is
// left for the write goroutine.
func (c *Conn) flushDirect() (rest bool) {
	buf, frames, rest := c.directBegin()
	if buf == nil {
		return rest
	}
	n, err := c.direct.tryWrite(*buf)
	return c.directEnd(buf, frames, rest, n, err)
}

// directBegin takes up to a batch of queued `next` frames into one
// encoded buffer for a direct write. c.wmu must be held. It returns nil
// when there is nothing to write directly (rest: whether anything is left
// for the write goroutine); otherwise it holds c.batch.mu, which
// directEnd, given the write's outcome, releases.
func (c *Conn) directBegin() (buf *[]byte, frames int, rest bool) {
	if c.isClosing() {
		return nil, 0, true
	}
	b := c.batch
	if !b.mu.TryLock() {
		return nil, 0, true // a control frame is being written
	}
	if b.buf != nil {
		b.mu.Unlock()
		return nil, 0, true // the write goroutine's batch, or a direct write's rest
	}
	buf = batchPool.Get().(*[]byte)
	for n := 0; n < maxBatchFrames && len(*buf) < batchFlushBytes; n++ {
		f, ok := c.queue.popNext()
		if !ok {
			break
		}
		if f.sub.dropsNext() {
			continue
		}
		*buf = b.frameNext(*buf, f.kind, f.sub.prefix, f.payload, f.sse)
		frames++
	}
	rest = c.queue.len() > 0
	if len(*buf) == 0 {
		batchPool.Put(buf)
		b.mu.Unlock()
		return nil, 0, rest
	}
	buf = b.encodeLocked(buf, 0)
	b.countLocked()
	return buf, frames, rest
}

// directEnd finishes the direct write of buf (directBegin's) that wrote n
// bytes or failed with err, and releases c.batch.mu. A nil buf is one the
// caller must not reuse (err is set). It reports whether anything is left
// for the write goroutine.
func (c *Conn) directEnd(buf *[]byte, frames int, rest bool, n int, err error) bool {
	b := c.batch
	defer b.mu.Unlock()
	if c.onWrite != nil {
		c.onWrite(frames)
	}
	switch {
	case err != nil || buf == nil:
		c.closeNow(ConnectionLost)
		rest = true
	case n < len(*buf):
		// The socket took part of it: the rest, possibly half a frame,
		// must go out before anything else. It stays as an open batch that
		// the write goroutine finishes under the write deadline.
		*buf = (*buf)[:copy(*buf, (*buf)[n:])]
		b.buf, b.leftover, b.plain = buf, true, len(*buf)
		return true
	}
	if buf != nil {
		putBatch(buf)
	}
	return rest
}

// writeBatch writes f and the frames queued behind it (up to
// maxBatchFrames) with one flush to the socket. It reports false if the
// socket failed.
func (c *Conn) writeBatch(f frame) bool {
	c.batch.begin()
	ok := c.writeOne(f)
	for n := 1; ok && n < maxBatchFrames && f.kind != kindClose; n++ {
		var more bool
		if f, more = c.queue.pop(); !more {
			break
		}
		ok = c.writeOne(f)
	}
	return c.flushBatch() && ok
}

// writeOne writes one frame into the open batch, starting keep-alives
// after connection_ack.
func (c *Conn) writeOne(f frame) bool {
	if !c.writeFrame(f) {
		return false
	}
	if f.kind == kindAck && c.kaEvery > 0 && c.kaTimer == nil {
		if c.proto.keepAliveOnAck() && !c.writeText(c.proto.keepAliveFrame(), nil, nil) {
			return false
		}
		c.kaTimer = time.AfterFunc(c.kaEvery, c.keepAliveDue)
	}
	return true
}

// flushBatch writes the open batch to the socket under the write deadline.
func (c *Conn) flushBatch() bool {
	c.startWrite()
	err := c.batch.end()
	c.writeStart.Store(0)
	if err != nil {
		c.closeNow(ConnectionLost)
		return false
	}
	return true
}

// writeFrame writes one queued frame. It reports false if the socket failed.
func (c *Conn) writeFrame(f frame) bool {
	switch f.kind {
	case kindNext, kindNextDeflated, kindNextPlain:
		if f.sub.dropsNext() {
			return true
		}
		c.startWrite()
		err := c.batch.appendNext(f.kind, f.sub.prefix, f.payload, f.sse)
		c.writeStart.Store(0)
		if err != nil {
			c.closeNow(ConnectionLost)
			return false
		}
		return true
	case kindEnd:
		f.sub.ended = true
		c.endSub(f.sub)
		switch {
		case c.single:
			return c.endSingle(f.sub, f.payload)
		case c.ws == nil:
			return c.endSSE(f.payload)
		}
		return c.writeText(f.payload, nil, nil)
	case kindClose:
		c.startClosing()
		return true
	case kindFlush:
		return true
	case kindAck:
		if c.ws == nil {
			c.sseStarted = true
			return c.writeHead(f.payload)
		}
		return c.writeText(f.payload, nil, nil)
	default: // kindRaw
		return c.writeText(f.payload, nil, nil)
	}
}

// write writes one text message under the write deadline.
//
// The deadline is a watchdog rather than a context per write, so that a
// write allocates nothing, and it is armed lazily: a write records when it
// started, and the watchdog, armed by the first write after an idle
// period, re-arms itself for as long as writes go on. A busy connection
// thus touches the timer once per WriteTimeout, not once per frame.
func (c *Conn) writeText(a, p, z []byte) bool {
	c.startWrite()
	err := c.batch.appendText(a, p, z)
	c.writeStart.Store(0)
	if err != nil {
		c.closeNow(ConnectionLost)
		return false
	}
	return true
}

// startWrite records that a write starts and arms the watchdog if it is
// not armed; the watchdog is created by the first write that needs it.
// Write goroutine only.
func (c *Conn) startWrite() {
	c.writeStart.Store(monotonic())
	if c.watchdogArmed.CompareAndSwap(false, true) {
		if c.watchdog == nil {
			// Created stopped, then armed: checkWrite reads c.watchdog.
			c.watchdog = time.AfterFunc(time.Hour, c.checkWrite)
			c.watchdog.Stop()
		}
		c.watchdog.Reset(c.opts.WriteTimeout)
	}
}

// writeAlone writes one message in a batch of its own (keep-alives).
func (c *Conn) writeAlone(b []byte) bool {
	c.batch.begin()
	ok := c.writeText(b, nil, nil)
	return c.flushBatch() && ok
}

// checkWrite runs on the watchdog's goroutine. It drops the connection if
// the current write has lasted WriteTimeout, re-arms for the current write
// otherwise, and disarms when no write is in progress.
func (c *Conn) checkWrite() {
	c.watchdogArmed.Store(false)
	start := c.writeStart.Load()
	if start == 0 {
		return // idle: the next write re-arms
	}
	elapsed := time.Duration(monotonic() - start)
	if elapsed >= c.opts.WriteTimeout {
		if c.setClose(CloseTryAgainLater, reasonSlowConsumer, SlowConsumer, true) {
			c.slow.count(slowWriteTimeout)
			c.logger().Warn("ws: slow consumer: write timed out; dropping connection", "timeout", c.opts.WriteTimeout)
		}
		c.startClosing()
		_ = c.raw.Close() // unblocks the stuck write
		return
	}
	// A write is in progress (this one or a later one): check again when
	// it would time out. The swap keeps a concurrent write from arming too.
	if c.watchdogArmed.CompareAndSwap(false, true) {
		c.watchdog.Reset(c.opts.WriteTimeout - elapsed)
	}
}

// epoch anchors monotonic.
var epoch = time.Now()

// monotonic returns a monotonic clock reading in nanoseconds, never 0.
func monotonic() int64 { return int64(time.Since(epoch)) + 1 }
