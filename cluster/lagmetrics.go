package cluster

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lagScrapeTimeout bounds the stream info request one scrape makes.
const lagScrapeTimeout = time.Second

// lagCollector reports, at each scrape, the stream's last sequence and how
// far this node's consumer is behind it:
//
//	fraiseql_nats_stream_last_seq         the stream's last stored sequence
//	fraiseql_nats_consumer_delivered_seq  the last sequence this node's consumer delivered
//	fraiseql_nats_consumer_lag            their difference: events stored, not yet received here
//
// It asks the stream once per scrape (bounded by lagScrapeTimeout); when
// the stream cannot answer, the stream series are absent for that scrape
// (fraiseql_nats_connected and the node's /readyz tell why). The consumer
// series exist while a stream-wide consumer runs (nats.ingest: stream).
// With nats.ingest: interest, fraiseql_nats_consumer_lag is the events
// republished to this node that its ingest loop has not taken yet (at most
// liveBuffer), and the delivered sequence is absent: the node receives
// its subjects' events only, so no stream-wide position exists.
type lagCollector struct {
	c                     *Cluster
	last, delivered, lags *prometheus.Desc
}

func newLagCollector(c *Cluster) *lagCollector {
	return &lagCollector{
		c:         c,
		last:      prometheus.NewDesc("fraiseql_nats_stream_last_seq", "The event stream's last stored sequence, read at scrape.", nil, nil),
		delivered: prometheus.NewDesc("fraiseql_nats_consumer_delivered_seq", "The last stream sequence this node's consumer delivered to the node.", nil, nil),
		lags:      prometheus.NewDesc("fraiseql_nats_consumer_lag", "Events stored in the stream that this node's consumer has not delivered yet (stream last sequence minus delivered), read at scrape.", nil, nil),
	}
}

func (l *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.last
	ch <- l.delivered
	ch <- l.lags
}

func (l *lagCollector) Collect(ch chan<- prometheus.Metric) {
	if l.c.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), lagScrapeTimeout)
	info, err := l.c.streamInfo(ctx)
	cancel()
	if err != nil {
		return
	}
	last := info.State.LastSeq
	ch <- prometheus.MustNewConstMetric(l.last, prometheus.GaugeValue, float64(last))
	if in := l.c.ingest; in != nil {
		// Interest mode: the stream republishes each event at once to
		// the subscribed subjects; what this node has not taken yet waits
		// in their shared buffer (past it NATS drops, and the node
		// repairs from the stream: fraiseql_ingest_gaps_total).
		in.mu.Lock()
		running := in.k != nil
		in.mu.Unlock()
		if running {
			ch <- prometheus.MustNewConstMetric(l.lags, prometheus.GaugeValue, float64(len(in.msgs)))
		}
		return
	}
	next, ok := l.c.consumerNext()
	if !ok {
		return
	}
	delivered := next - 1
	ch <- prometheus.MustNewConstMetric(l.delivered, prometheus.GaugeValue, float64(delivered))
	ch <- prometheus.MustNewConstMetric(l.lags, prometheus.GaugeValue, float64(last-min(last, delivered)))
}

// consumerNext is the sequence the furthest stream-wide consumer waits for;
// ok is false when none runs.
func (c *Cluster) consumerNext() (next uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.consumers {
		if n := k.next.Load(); n > 0 {
			next, ok = max(next, n), true
		}
	}
	return next, ok
}
