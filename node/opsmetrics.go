package node

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/ws"
)

// Label values of fraiseql_resumes_total{result}.
const (
	resumeOK      = "ok"             // replayed what was missed and went live
	resumeGap     = "gap"            // a verdict client's cursor was older than retention: replayed what remained and went live
	resumeExpired = "cursor_expired" // CURSOR_EXPIRED: older than retention, or an old cursor format
	resumeBad     = "bad_cursor"     // BAD_CURSOR: not a cursor of this tenant
	resumeBusy    = "busy"           // REPLAY_BUSY: too many resumes waiting (nats.max_replay_queue)
	resumeSlow    = "slow"           // closed with 1013: could not catch up with its topic
	resumeError   = "error"          // the stream failed; the client resubscribes
	resumeEnded   = "canceled"       // the subscription or connection ended first
)

var resumeResults = []string{resumeOK, resumeGap, resumeExpired, resumeBad, resumeBusy, resumeSlow, resumeError, resumeEnded}

// opsMetrics are the metrics an operator watches besides the node's
// counters (metrics): build, delivery to the socket, write queues,
// resumes and the configured tenants.
type opsMetrics struct {
	writeLatency prometheus.Histogram // publish → the write round that wrote the event

	resumes        map[string]prometheus.Counter // by result, every one created
	resumeReplayed atomic.Uint64                 // events sent by replays
	resumeDuration prometheus.Histogram          // subscribe with a cursor → live

	tenants map[string]*tenantGauges // Config.MetricsTenants; read-only after New
}

// tenantGauges are the open connections and subscriptions of one tenant of
// Config.MetricsTenants (or of all the others, under tenantOther).
type tenantGauges struct {
	conns, subs atomic.Int64
}

// tenantOther is the label value that sums every tenant not listed.
const tenantOther = "_other"

func (n *Node) registerOpsMetrics() {
	m := &opsMetrics{
		writeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fraiseql_delivery_write_latency_seconds",
			Help:    "Time from publish (JetStream timestamp) to the end of the write round that wrote the event to its subscribers' sockets (or handed a busy socket's share to its writer), one observation per event with a subscriber.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		resumes: map[string]prometheus.Counter{},
		resumeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fraiseql_resume_duration_seconds",
			Help:    "Time a resume took, from the subscribe carrying a cursor to the subscription going live (results ok and gap).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		tenants: map[string]*tenantGauges{},
	}
	resumes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fraiseql_resumes_total",
		Help: "Subscriptions that resumed from a cursor, by result: ok, gap, cursor_expired, bad_cursor, busy, slow, error, canceled.",
	}, []string{"result"})
	for _, r := range resumeResults {
		m.resumes[r] = resumes.WithLabelValues(r)
	}
	tenantGauge := func(name, help, tenant string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"tenant": tenant}},
			func() float64 { return float64(v.Load()) })
	}
	if len(n.cfg.MetricsTenants) > 0 {
		for _, t := range append([]string{tenantOther}, n.cfg.MetricsTenants...) {
			g := &tenantGauges{}
			m.tenants[t] = g
			n.reg.MustRegister(
				tenantGauge("fraiseql_tenant_connections", "Open authenticated connections of each tenant listed in metrics.tenants; _other sums the rest.", t, &g.conns),
				tenantGauge("fraiseql_tenant_subscriptions", "Active subscriptions of each tenant listed in metrics.tenants; _other sums the rest.", t, &g.subs),
			)
		}
	}
	bi := buildInfo()
	n.reg.MustRegister(m.writeLatency, resumes, m.resumeDuration,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fraiseql_resume_events_replayed_total",
			Help: "Events sent to resuming subscriptions from the stream (what they missed).",
		}, func() float64 { return float64(m.resumeReplayed.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "fraiseql_build_info",
			Help:        "Always 1; the labels tell the build: version, commit and the Go version.",
			ConstLabels: bi,
		}, func() float64 { return 1 }),
	)
	n.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fraiseql_queued_bytes_limit",
		Help: "The node-wide budget fraiseql_queued_bytes is counted against (ws.node_queued_bytes, or its default from the memory limit); over it, the connections with the most queued are closed as slow consumers.",
	}, func() float64 { return float64(n.wss.QueuedBytesLimit()) }), &queueCollector{n.wss})
	n.om = m
}

// buildInfo is fraiseql_build_info's labels, from what the Go toolchain
// recorded in the binary.
func buildInfo() prometheus.Labels {
	l := prometheus.Labels{"version": "unknown", "commit": "unknown", "goversion": runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return l
	}
	if v := bi.Main.Version; v != "" {
		l["version"] = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			l["commit"] = s.Value
		}
	}
	return l
}

// tenantGaugesOf returns the gauges counting tenant, nil when
// metrics.tenants is empty.
func (n *Node) tenantGaugesOf(tenant string) *tenantGauges {
	if len(n.om.tenants) == 0 {
		return nil
	}
	if g := n.om.tenants[tenant]; g != nil {
		return g
	}
	return n.om.tenants[tenantOther]
}

// resumeDone counts a resume by result; ok ones observe their duration.
func (n *Node) resumeDone(result string, start time.Time) {
	n.om.resumes[result].Inc()
	if result == resumeOK || result == resumeGap {
		n.om.resumeDuration.Observe(time.Since(start).Seconds())
	}
}

// queueCollector reports the write queues' depth, reading every
// connection's queue once per scrape (ws.Server.QueueStats).
type queueCollector struct{ wss *ws.Server }

var (
	queueFramesDesc    = prometheus.NewDesc("fraiseql_write_queue_frames", "Frames waiting in connections' write queues, summed over connections (read at scrape).", nil, nil)
	queueFramesMaxDesc = prometheus.NewDesc("fraiseql_write_queue_frames_max", "The most frames one connection has waiting in its write queue (bound: ws.write_queue).", nil, nil)
	queueBytesMaxDesc  = prometheus.NewDesc("fraiseql_write_queue_bytes_max", "The most payload bytes one connection has waiting in its write queue (bound: ws.max_queued_bytes).", nil, nil)
)

func (q *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueFramesDesc
	ch <- queueFramesMaxDesc
	ch <- queueBytesMaxDesc
}

func (q *queueCollector) Collect(ch chan<- prometheus.Metric) {
	st := q.wss.QueueStats()
	ch <- prometheus.MustNewConstMetric(queueFramesDesc, prometheus.GaugeValue, float64(st.Frames))
	ch <- prometheus.MustNewConstMetric(queueFramesMaxDesc, prometheus.GaugeValue, float64(st.MaxFrames))
	ch <- prometheus.MustNewConstMetric(queueBytesMaxDesc, prometheus.GaugeValue, float64(st.MaxBytes))
}
