package cluster

// AbandonForTest stops l's renewals without deleting its key, as a
// holder that crashed or lost NATS would.
func (l *Lease) AbandonForTest() {
	l.abandon.Store(true)
	l.Release()
}

// StreamIDForTest returns the stream identity cursors carry.
func (c *Cluster) StreamIDForTest() int64 { return c.streamID.Load() }
