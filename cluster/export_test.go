package cluster

// AbandonForTest stops l's renewals without deleting its key, as a
// holder that crashed or lost NATS would.
func (l *Lease) AbandonForTest() {
	l.abandon.Store(true)
	l.Release()
}

// StreamIDForTest returns the stream identity cursors carry.
func (c *Cluster) StreamIDForTest() int64 { return c.streamID.Load() }

// HoldReplaySlotsForTest takes every replay read slot, as reads in
// flight would, until release is called.
func (c *Cluster) HoldReplaySlotsForTest() (release func()) {
	return c.HoldSomeReplaySlotsForTest(cap(c.replays.slots))
}

// HoldSomeReplaySlotsForTest takes n replay read slots until release is
// called.
func (c *Cluster) HoldSomeReplaySlotsForTest(n int) (release func()) {
	for range n {
		c.replays.slots <- struct{}{}
	}
	return func() {
		for range n {
			<-c.replays.slots
		}
	}
}

// ReplaysQueuedForTest returns how many replay reads wait for a slot.
func (c *Cluster) ReplaysQueuedForTest() int64 { return c.replays.queued.Load() }

// ReplayWaitersForTest returns how many replays wait for the pending
// first read of subject (0 if none is pending).
func (c *Cluster) ReplayWaitersForTest(subject string) int {
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	if f := c.flights[subject]; f != nil {
		return f.refs
	}
	return 0
}
