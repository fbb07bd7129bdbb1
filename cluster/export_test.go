package cluster

import "time"

// AbandonForTest stops l's renewals without deleting its key, as a
// holder that crashed or lost NATS would.
func (l *Lease) AbandonForTest() {
	l.abandon.Store(true)
	l.Release()
}

// StreamIDForTest returns the stream identity cursors carry.
func (c *Cluster) StreamIDForTest() int64 { return c.streamID.Load() }

// SlowHeartbeatsForTest makes consumers opened from now on expect server
// heartbeats only every 30 s (so that only the stall watchdog notices a
// lost consumer within a test) until restore.
func SlowHeartbeatsForTest() (restore func()) {
	e, h := consumerExpiry, consumerHeartbeat
	consumerExpiry, consumerHeartbeat = time.Minute, 30*time.Second
	return func() { consumerExpiry, consumerHeartbeat = e, h }
}

// StallResetsForTest returns how many times k's watchdog re-created its
// consumer.
func (k *Consumer) StallResetsForTest() uint64 { return k.stallResets.Load() }
