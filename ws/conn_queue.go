package ws

import "context"

// Queueing: what a connection is sent waits in its bounded queue (see
// frameQueue) until a write takes it; a queue over its bounds makes the
// client a slow consumer.

// frameKind says what the writer does with a queued frame.
type frameKind uint8

const (
	// kindNext: write sub.prefix + payload + "}", unless sub was cancelled.
	kindNext frameKind = iota
	// kindRaw: write payload as is.
	kindRaw
	// kindAck: write payload (connection_ack), then start keep-alives.
	kindAck
	// kindEnd: call Session.Unsubscribe for sub, then write payload (its
	// complete or error frame).
	kindEnd
	// kindClose: start closing, after the frames queued before it.
	kindClose
	// kindFlush: nothing to write; the batch it opens carries the bytes a
	// direct write (Conn.flush) left over. Never queued.
	kindFlush
	// kindNextDeflated: a `next` frame whose payload is the compressed
	// payload + "}" a Fanout shares among connections without context
	// takeover (compress.go); written as prefix in stored blocks + payload.
	kindNextDeflated
	// kindNextPlain: kindNext, never compressed (a Fanout found it below
	// the threshold, or not worth compressing).
	kindNextPlain
)

// isNext reports whether k is a `next` frame.
func (k frameKind) isNext() bool {
	return k == kindNext || k == kindNextDeflated || k == kindNextPlain
}

// frame is one entry of a connection's write queue. It is small and holds
// no per-message allocation: Next queues the shared payload slice itself.
type frame struct {
	sub     *Subscription
	payload []byte
	kind    frameKind
	sse     sseMeta // a `next` frame's payload, as a Fanout read it for SSE framing (or zero)
}

// closingBrace ends a `next` frame: prefix + payload + "}".
var closingBrace = []byte("}")

// enqueue queues f for the writer without blocking. A full queue makes the
// client a slow consumer: the connection is closed with 1013.
func (c *Conn) enqueue(f frame) bool {
	if c.isClosing() {
		return false
	}
	if n, why := c.queue.pushN(f); n == 0 {
		c.refused(why)
		return false
	}
	c.syncQueued()
	c.wake()
	return true
}

// refused closes the connection as a slow consumer after its queue
// refused a frame because it was full.
func (c *Conn) refused(why full) {
	switch why {
	case fullFrames:
		c.slowConsumer(slowFrames)
	case fullBytes:
		c.slowConsumer(slowConnBytes)
	}
	// fullShut: the connection is closing already.
}

// syncQueued counts the queue's bytes in the node-wide sum (see
// frameQueue.sync), closing the connection if that takes the sum over
// Options.NodeQueuedBytes.
func (c *Conn) syncQueued() {
	if c.queue.sync() {
		c.slowConsumer(slowNodeBytes)
	}
}

// slowConsumer closes the connection with 1013 because its write queue is
// over one of its bounds (why), counting the cause.
func (c *Conn) slowConsumer(why slowCause) {
	if c.setClose(CloseTryAgainLater, reasonSlowConsumer, SlowConsumer, false) {
		c.slow.count(why)
		c.logger().Warn("ws: slow consumer: closing", "cause", why.String(),
			"queue_frames", c.queue.limit, "max_queued_bytes", c.queue.maxBytes)
	}
	c.startClosing()
	if c.ws == nil {
		// SSE has no close handshake to wait for: a write blocked on the
		// full socket ends now rather than at WriteTimeout.
		_ = c.raw.Close()
	}
}

// enqueueWait queues f, waiting for space while the queue is full (in
// frames or bytes), until ctx is done or the connection closes. It is for
// bulk senders (replay) that must apply backpressure rather than overflow
// the queue; what it queues counts against the same budgets as the rest.
func (c *Conn) enqueueWait(ctx context.Context, f frame) bool {
	ok, why := c.queue.pushWait(ctx, c.closing, f)
	if !ok {
		c.refused(why)
		return false
	}
	c.syncQueued()
	c.wake()
	return true
}

// push queues f without waking the write goroutine (see
// Subscription.Push). first reports that this is the first push since the
// connection's last flush: the caller's Fanout then writes it.
func (c *Conn) push(f frame) (queued, first bool) {
	if c.isClosing() {
		return false, false
	}
	n, why := c.queue.pushN(f)
	if n == 0 {
		c.refused(why)
		return false, false
	}
	if n >= c.queue.limit/2 {
		// A burst (many events, or many subscriptions of this connection,
		// before the write round) must not fill a queue the client drains fine:
		// past half of it, the write goroutine starts writing now.
		c.wake()
	}
	return true, !c.flushDue.Load() && c.flushDue.CompareAndSwap(false, true)
}
