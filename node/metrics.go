package node

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's counters. The hot ones are plain atomics (read by
// Stats and exported through Func collectors), so the per-event path pays
// no label lookups.
type metrics struct {
	connsOpen      atomic.Int64
	connsTotal     atomic.Uint64
	subsOpen       atomic.Int64
	subsTotal      atomic.Uint64
	eventsReceived atomic.Uint64
	encodes        atomic.Uint64
	delivered      atomic.Uint64
	slowClients    atomic.Uint64
	slowReplays    atomic.Uint64 // closed: live events held during a replay outgrew their bound
	textReplaced   atomic.Uint64

	closed          *prometheus.CounterVec // by ws.CloseReason
	subscribeErrors *prometheus.CounterVec // by error code
	eventsRejected  *prometheus.CounterVec // by reason
	authFailures    *prometheus.CounterVec // by public reason
	latency         prometheus.Histogram   // publish → queued to subscribers
}

func newMetrics(reg *prometheus.Registry, plans func() float64) *metrics {
	m := &metrics{
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_connections_closed_total",
			Help: "WebSocket connections closed, by reason.",
		}, []string{"reason"}),
		subscribeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_subscribe_errors_total",
			Help: "Subscriptions refused, by GraphQL error code.",
		}, []string{"code"}),
		eventsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_events_rejected_total",
			Help: "Events not delivered because they were invalid, by reason.",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_auth_failures_total",
			Help: "Connections refused or closed for authentication, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fraiseql_delivery_latency_seconds",
			Help:    "Time from publish (JetStream timestamp) to the event being queued to its subscribers.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	for _, r := range []string{"too_large", "invalid"} { // every reason exists from the start: zeros, not gaps
		m.eventsRejected.WithLabelValues(r)
	}
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	reg.MustRegister(
		m.closed, m.subscribeErrors, m.eventsRejected, m.authFailures, m.latency,
		gauge("fraiseql_connections", "Open WebSocket connections.", &m.connsOpen),
		counter("fraiseql_connections_total", "WebSocket connections accepted.", &m.connsTotal),
		gauge("fraiseql_subscriptions", "Active subscriptions.", &m.subsOpen),
		counter("fraiseql_subscriptions_total", "Subscriptions accepted.", &m.subsTotal),
		counter("fraiseql_events_received_total", "Events received from the stream.", &m.eventsReceived),
		counter("fraiseql_event_encodes_total", "Event payloads encoded (once per matching plan group, not per subscriber).", &m.encodes),
		counter("fraiseql_messages_delivered_total", "next messages queued to subscribers.", &m.delivered),
		counter("fraiseql_slow_client_disconnects_total", "Connections closed as slow consumers (1013), for any reason; fraiseql_slow_consumer_closes_total breaks them down.", &m.slowClients),
		counter("fraiseql_event_text_replaced_total", "Event payloads encoded with text replaced by U+FFFD (bytes not valid UTF-8, or an unpaired UTF-16 surrogate escape), once per matching plan group.", &m.textReplaced),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fraiseql_plans", Help: "Distinct subscription plans (shared by identical subscriptions).",
		}, plans),
	)
	return m
}

// registerQueueMetrics exports the write queues' budgets: the bytes
// queued node-wide and the slow-consumer closes by the bound that closed
// them (fraiseql_slow_client_disconnects_total is their total).
func (n *Node) registerQueueMetrics() {
	n.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fraiseql_queued_bytes",
		Help: "Bytes waiting in connections' write queues after their last write round, summed over connections (a payload queued to several counts once per queue), as counted against ws.node_queued_bytes.",
	}, func() float64 { return float64(n.wss.QueuedBytes()) }))
	for reason, v := range map[string]func() uint64{
		"frames":        func() uint64 { return n.wss.SlowConsumerCloses().Frames },
		"conn_bytes":    func() uint64 { return n.wss.SlowConsumerCloses().ConnBytes },
		"node_bytes":    func() uint64 { return n.wss.SlowConsumerCloses().NodeBytes },
		"write_timeout": func() uint64 { return n.wss.SlowConsumerCloses().WriteTimeout },
		"replay_buffer": n.met.slowReplays.Load,
	} {
		n.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fraiseql_slow_consumer_closes_total",
			Help:        "Connections closed with 1013 as slow consumers, by the bound they went over: frames (ws.write_queue), conn_bytes (ws.max_queued_bytes), node_bytes (ws.node_queued_bytes), write_timeout (ws.write_timeout), replay_buffer (a replay from a cursor that could not catch up with its topic).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(v()) }))
	}
}

// Stats is a snapshot of the node's counters.
type Stats struct {
	Connections    int64  // open WebSocket connections
	Subscriptions  int64  // active subscriptions
	Plans          int    // distinct plan groups in the routing index
	Subjects       int    // distinct subjects in the routing index
	EventsReceived uint64 // events received from the stream
	Encodes        uint64 // payloads encoded: once per event per matching plan group
	Delivered      uint64 // next messages queued to subscribers
	SlowClients    uint64 // connections closed as slow consumers
}

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	subjects, plans := n.idx.counts()
	return Stats{
		Connections:    n.met.connsOpen.Load(),
		Subscriptions:  n.met.subsOpen.Load(),
		Plans:          plans,
		Subjects:       subjects,
		EventsReceived: n.met.eventsReceived.Load(),
		Encodes:        n.met.encodes.Load(),
		Delivered:      n.met.delivered.Load(),
		SlowClients:    n.met.slowClients.Load(),
	}
}

// Subjects returns the NATS subjects this node's subscriptions listen on,
// sorted: what a subscription can receive is decided by these alone.
func (n *Node) Subjects() []string { return n.idx.subjectList() }
