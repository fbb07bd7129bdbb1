package cluster

import (
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

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

// DropLiveForTest makes c's interest consumer drop the republished events
// drop returns true for, as a lossy link would; nil drops none.
func (c *Cluster) DropLiveForTest(drop func(subject string, seq uint64) bool) {
	if drop == nil {
		c.ingest.dropLive.Store(nil)
		return
	}
	f := func(m *nats.Msg) bool {
		seq, _ := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
		return drop(m.Header.Get(hdrSubject), seq)
	}
	c.ingest.dropLive.Store(&f)
}

// IngestStatsForTest returns the interest ingest's gauges and counters.
func (c *Cluster) IngestStatsForTest() (subjects, gaps, repaired, resyncs float64) {
	m := c.metrics
	return testutil.ToFloat64(m.interestSubjects), testutil.ToFloat64(m.interestGaps),
		testutil.ToFloat64(m.interestRepaired), testutil.ToFloat64(m.interestResyncs)
}

// ConsumedForTest returns fraiseql_nats_events_consumed_total.
func (c *Cluster) ConsumedForTest() float64 { return testutil.ToFloat64(c.metrics.consumed) }

// SmallLiveBufferForTest makes Clusters opened from now on buffer only n
// republished events (so that a slow fn makes NATS drop some) and retry
// repairs after d, until restore.
func SmallLiveBufferForTest(n int, d time.Duration) (restore func()) {
	b, r := liveBuffer, resyncRetry
	liveBuffer, resyncRetry = n, d
	return func() { liveBuffer, resyncRetry = b, r }
}

// FastInterestRefreshForTest makes interest consumers started from now on
// check the stream every d, until restore.
func FastInterestRefreshForTest(d time.Duration) (restore func()) {
	r := interestRefresh
	interestRefresh = d
	return func() { interestRefresh = r }
}

// RefuseConsumersForTest makes every creation of a stream-mode consumer
// on c fail at once while on is true, as when no meta leader answers.
func (c *Cluster) RefuseConsumersForTest(on bool) { c.refuseConsumers.Store(on) }

// DropConsumedForTest makes c's stream-mode consumer drop the messages
// drop returns true for (by stream sequence), as if they were lost on
// the way; nil drops none.
func (c *Cluster) DropConsumedForTest(drop func(seq uint64) bool) {
	if drop == nil {
		c.dropConsumed.Store(nil)
		return
	}
	c.dropConsumed.Store(&drop)
}

// BridgedForTest returns fraiseql_delivery_bridged_events_total.
func (c *Cluster) BridgedForTest() float64 { return testutil.ToFloat64(c.metrics.bridged) }

// HoldRepairsForTest makes c's interest repairs of subject wait, before
// they read from the stream, until release is called.
func (c *Cluster) HoldRepairsForTest(subject string) (release func()) {
	gate := make(chan struct{})
	hold := func(s string) {
		if s == subject {
			<-gate
		}
	}
	c.ingest.holdRepair.Store(&hold)
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// NoRespondersForTest makes c's next n reads of a starting subject's last
// sequence fail with "no responders", as just after the stream was
// created.
func (c *Cluster) NoRespondersForTest(n int32) { c.ingest.noResponders.Store(n) }

// UnansweredRepairsForTest makes c's next n repair reads get no answer,
// as when their request was lost with a dying server; wait returns how
// long the last of them was to wait before giving up (its deadline).
func (c *Cluster) UnansweredRepairsForTest(n int32) (wait func() time.Duration) {
	c.ingest.unanswered.Store(n)
	return func() time.Duration { return time.Duration(c.ingest.unansweredWait.Load()) }
}

// RepairErrorsForTest returns fraiseql_ingest_repair_errors_total.
func (c *Cluster) RepairErrorsForTest() float64 {
	return testutil.ToFloat64(c.metrics.interestRepairErrors)
}
