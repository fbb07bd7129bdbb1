//go:build linux

package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Report is what a run measured; the tool writes it as JSON (-out) and
// prints Summary.
type Report struct {
	Tool      string   `json:"tool"`
	Mode      string   `json:"mode"` // run, saturate, soak
	StartedAt string   `json:"started_at"`
	Params    Params   `json:"params"`
	Node      NodeInfo `json:"node"`

	Connect   ConnectReport   `json:"connect"`
	Subscribe SubscribeReport `json:"subscribe"`
	Memory    MemoryReport    `json:"memory"`

	// Windows are the measured windows: one for run and soak, one per
	// step for saturate.
	Windows    []Window          `json:"windows"`
	Saturation *SaturationReport `json:"saturation,omitempty"`
	Soak       *SoakReport       `json:"soak,omitempty"`

	// Disconnects counts connections that closed before the tool closed
	// them, by reason (e.g. "close 1013": the node found the client slow).
	Disconnects map[string]int `json:"disconnects"`
	// UnreadableMessages counts frames the tool could not interpret.
	UnreadableMessages uint64 `json:"unreadable_messages"`
	ServerCompletes    uint64 `json:"server_completes"`

	Warnings []string `json:"warnings,omitempty"`
	// OK is false when a setup step failed or the run was cut short.
	OK         bool    `json:"ok"`
	Error      string  `json:"error,omitempty"`
	RuntimeSec float64 `json:"runtime_s"`
}

// Params are the run's settings as used.
type Params struct {
	Conns              int      `json:"conns"`
	SubsPerConn        int      `json:"subs_per_conn"`
	Rooms              int      `json:"rooms"`
	Rate               float64  `json:"rate_events_per_s"`
	PayloadBytes       int      `json:"payload_bytes"`
	PayloadKind        string   `json:"payload_kind,omitempty"`
	BodyBytes          int      `json:"body_bytes"`
	DurationSec        float64  `json:"duration_s"`
	WarmupSec          float64  `json:"warmup_s"`
	ConnectRate        float64  `json:"connect_rate"`
	MaxInflight        int      `json:"max_inflight"`
	Query              string   `json:"query"`
	SatStartRate       float64  `json:"sat_start_rate,omitempty"`
	SatFactor          float64  `json:"sat_factor,omitempty"`
	SatStepSec         float64  `json:"sat_step_s,omitempty"`
	SampleEverySec     float64  `json:"sample_every_s,omitempty"`
	NoFileLimit        uint64   `json:"rlimit_nofile"`
	ExpectedDeliveries float64  `json:"offered_deliveries_per_s"`
	GOMAXPROCS         int      `json:"client_gomaxprocs"`
	Cores              int      `json:"machine_cores"`
	NodeEnv            []string `json:"node_env,omitempty"`
	// Transport is ws or sse; Compress whether permessage-deflate was
	// offered, Gzip (sse) whether gzip bodies were accepted
	// (Connect.Compressed says on how many it was taken).
	Transport string `json:"transport"`
	Compress  bool   `json:"compress"`
	Gzip      bool   `json:"gzip,omitempty"`
}

// NodeInfo says which node was measured and how.
type NodeInfo struct {
	// Server is "fraiseql" (the node) or "centrifugo" (the reference).
	Server  string `json:"server"`
	WS      string `json:"ws"`
	NATS    string `json:"nats"`
	API     string `json:"api,omitempty"`
	Spawned bool   `json:"spawned"`
	PID     int    `json:"pid,omitempty"`
	// CPUSource is "proc" (/proc/<pid>/stat) or "metrics"
	// (process_cpu_seconds_total) or "" (unknown).
	CPUSource string `json:"cpu_source"`
}

// ConnectReport: dial start → connection_ack, per connection.
type ConnectReport struct {
	Attempted int            `json:"attempted"`
	Connected int            `json:"connected"`
	Failed    map[string]int `json:"failed"`
	Time      Summary        `json:"time"`
	// WallSec is how long connecting everything took.
	WallSec float64 `json:"wall_s"`
	// ClientCPUSec is the tool's own CPU during the connect ramp.
	ClientCPUSec float64 `json:"client_cpu_s"`
	// Sockets is the TCP connections open after connecting: Connected,
	// or Connected × subscriptions with SSE (one request each).
	Sockets int64 `json:"tcp_conns"`
	// Compressed counts WebSocket connections on which the server took
	// permessage-deflate; with -transport sse -gzip, the requests whose
	// response body was gzip.
	Compressed int64 `json:"compression_negotiated_conns"`
}

// SubscribeReport: the first subscribe sent → the pong that follows the
// last, per connection (the node registers subscriptions in order).
type SubscribeReport struct {
	Sent     int64          `json:"sent"`
	Accepted int64          `json:"accepted"`
	Refused  map[string]int `json:"refused"`
	// Confirmed counts connections whose round trip completed.
	Confirmed int64   `json:"confirmed_conns"`
	Time      Summary `json:"time"`
	WallSec   float64 `json:"wall_s"`
}

// MemoryReport is the node's memory at the three setup points, each after
// Settle.
type MemoryReport struct {
	Idle       MemSample `json:"idle"`
	Connected  MemSample `json:"connected"`
	Subscribed MemSample `json:"subscribed"`
	// RSS growth per connection (connected − idle) / connections, and per
	// subscription ((subscribed − connected) / subscriptions).
	RSSPerConn float64 `json:"rss_per_conn_bytes"`
	RSSPerSub  float64 `json:"rss_per_sub_bytes"`
	// RSSPerConnWithSubs is (subscribed − idle) / connections.
	RSSPerConnWithSubs float64 `json:"rss_per_conn_with_subs_bytes"`
	// The same from the Go heap in use: steadier than RSS, which the Go
	// runtime returns to the OS lazily.
	HeapPerConn float64 `json:"heap_per_conn_bytes"`
	HeapPerSub  float64 `json:"heap_per_sub_bytes"`
	// Goroutines per connection on the node.
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
}

// Window is one measured window.
type Window struct {
	Name string `json:"name"`
	// OfferedRate is events/s asked of the publisher; PublishRate what it
	// managed (published / window).
	OfferedRate   float64 `json:"offered_rate"`
	PublishRate   float64 `json:"publish_rate"`
	Published     uint64  `json:"published"`
	PublishErrors uint64  `json:"publish_errors"`
	// PublishUnconfirmed publishes got no answer (the request was sent,
	// the reply lost): they may have been taken, and stay expected.
	PublishUnconfirmed uint64 `json:"publish_unconfirmed,omitempty"`
	// PublishWaitingMax is the most events that waited at once in the
	// tool's queue behind a request to a server whose publish returns
	// after its fan-out (Centrifugo); that wait is in their latency.
	PublishWaitingMax int64   `json:"publish_waiting_max,omitempty"`
	PublisherLagMS    float64 `json:"publisher_max_lag_ms"`
	WindowSec         float64 `json:"window_s"`
	DrainSec          float64 `json:"drain_s"`
	SubscribersLive   int64   `json:"subscriptions"`
	// Expected = acknowledged events per room × that room's subscriptions.
	Expected         uint64  `json:"expected"`
	Delivered        uint64  `json:"delivered"`
	Lost             uint64  `json:"lost"`
	LossPct          float64 `json:"loss_pct"`
	Duplicates       uint64  `json:"duplicates"`
	Reorders         uint64  `json:"reorders"`
	Skipped          uint64  `json:"gap_skipped"`
	ServerDropped    uint64  `json:"server_dropped"`
	OfferedDelivRate float64 `json:"offered_deliveries_per_s"`
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	Latency          Summary `json:"latency"`
	// ServerCores is the node's CPU time over the window / the window.
	ServerCores float64 `json:"server_cores"`
	// ServerCPUMicrosPerDelivery is the node's CPU from the window's start
	// to the end of the drain / deliveries.
	ServerCPUMicrosPerDelivery float64 `json:"server_cpu_us_per_delivery"`
	ClientCores                float64 `json:"client_cores"`
	ClientCPUMicrosPerDelivery float64 `json:"client_cpu_us_per_delivery"`
	// WireBytesPerDelivery is what the clients read from their sockets
	// (framing, compressed bytes as sent) from the window's start to the
	// end of the drain / deliveries.
	WireBytesPerDelivery float64 `json:"wire_bytes_per_delivery"`
	// ServerWritesPerDelivery is the node's write-type system calls
	// (write, writev: /proc/<pid>/io syscw) over the same span /
	// deliveries; 0 when its PID is unknown. It includes the embedded
	// NATS server's writes.
	ServerWritesPerDelivery float64 `json:"server_writes_per_delivery,omitempty"`
	// ClientReadsPerDelivery is the tool's read-type system calls (its
	// clients' and the publisher's) / deliveries.
	ClientReadsPerDelivery float64 `json:"client_reads_per_delivery"`
	ServerRSSEnd           int64   `json:"server_rss_end_bytes"`
	// Pass is set in saturate mode: within the loss and p99 bounds.
	Pass *bool `json:"pass,omitempty"`
}

// SaturationReport is the outcome of -saturate.
type SaturationReport struct {
	MaxLossPct float64 `json:"max_loss_pct"`
	MaxP99MS   float64 `json:"max_p99_ms"`
	// MaxSustainedDeliveriesPerSec is the best deliveries/s of a passing step.
	MaxSustainedDeliveriesPerSec float64 `json:"max_sustained_deliveries_per_s"`
	MaxSustainedRate             float64 `json:"max_sustained_rate"`
	StopReason                   string  `json:"stop_reason"`
}

// SoakReport is the outcome of -soak.
type SoakReport struct {
	Samples []MemSample `json:"samples"`
	// RSSDriftPct is (last − first) / first of the samples taken after the
	// warm-up; RSSMaxDriftPct the largest |sample − first| / first.
	RSSDriftPct    float64 `json:"rss_drift_pct"`
	RSSMaxDriftPct float64 `json:"rss_max_drift_pct"`
	HeapDriftPct   float64 `json:"heap_drift_pct"`
	// GoroutineGrowth is last − first.
	GoroutineGrowth int `json:"goroutine_growth"`
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// Summary writes the readable report.
func (r *Report) Summary(w io.Writer) {
	p := r.Params
	rate := fmt.Sprintf("%g events/s", p.Rate)
	if r.Mode == "saturate" {
		rate = fmt.Sprintf("events/s from %g ×%g per %gs step", p.SatStartRate, p.SatFactor, p.SatStepSec)
	}
	kind := ""
	if p.PayloadKind == PayloadText {
		kind = " (text)"
	}
	fmt.Fprintf(w, "fraiseql-loadgen %s: %d conns × %d subs, %d room(s), %s, %d-byte bodies%s\n",
		r.Mode, p.Conns, p.SubsPerConn, p.Rooms, rate, p.BodyBytes, kind)
	src := r.Node.CPUSource
	if src == "" {
		src = "unknown"
	}
	name := "node"
	if r.Node.Server == ServerCentrifugo {
		name = ServerCentrifugo
	}
	fmt.Fprintf(w, "%s %s (pid %d, spawned %v, CPU/RSS from %s)\n", name, r.Node.WS, r.Node.PID, r.Node.Spawned, src)
	c := r.Connect
	transport := "transport " + cmp.Or(p.Transport, TransportWS)
	if p.Transport == TransportSSE {
		transport += fmt.Sprintf(", %d TCP connections", c.Sockets)
	}
	if p.Compress {
		transport += fmt.Sprintf(", permessage-deflate offered, negotiated on %d", c.Compressed)
	}
	if p.Gzip {
		transport += fmt.Sprintf(", gzip accepted, gzip bodies on %d", c.Compressed)
	}
	fmt.Fprintf(w, "connect    %d/%d in %.1fs  p50 %.2fms  p99 %.2fms  max %.2fms  failed: %s  (%s)\n",
		c.Connected, c.Attempted, c.WallSec, c.Time.P50, c.Time.P99, c.Time.Max, counts(c.Failed), transport)
	s := r.Subscribe
	fmt.Fprintf(w, "subscribe  %d/%d accepted (%d conns confirmed) in %.1fs  p50 %.2fms  p99 %.2fms  refused: %s\n",
		s.Accepted, s.Sent, s.Confirmed, s.WallSec, s.Time.P50, s.Time.P99, counts(s.Refused))
	m := r.Memory
	fmt.Fprintf(w, "memory     RSS idle %s → connected %s → subscribed %s;  per conn %s, per sub %s, per conn with subs %s;  heap per conn %s;  goroutines/conn %.2f\n",
		mib(m.Idle.RSS), mib(m.Connected.RSS), mib(m.Subscribed.RSS), kib(m.RSSPerConn), kib(m.RSSPerSub),
		kib(m.RSSPerConnWithSubs), kib(m.HeapPerConn), m.GoroutinesPerConn)
	for _, win := range r.Windows {
		pass := ""
		if win.Pass != nil {
			pass = "  FAIL"
			if *win.Pass {
				pass = "  ok"
			}
		}
		fmt.Fprintf(w, "%-10s offered %.1f ev/s (published %.1f/s, %d, errors %d)  delivered %d/%d  loss %.3f%%  dup %d  reorder %d  dropped %d%s\n",
			win.Name, win.OfferedRate, win.PublishRate, win.Published, win.PublishErrors, win.Delivered, win.Expected, win.LossPct,
			win.Duplicates, win.Reorders, win.ServerDropped, pass)
		fmt.Fprintf(w, "%-10s deliveries %.0f/s (offered %.0f/s)  latency p50 %.2fms p95 %.2fms p99 %.2fms max %.2fms\n",
			"", win.DeliveriesPerSec, win.OfferedDelivRate, win.Latency.P50, win.Latency.P95, win.Latency.P99, win.Latency.Max)
		fmt.Fprintf(w, "%-10s server %.2f cores, %.2f µs CPU/delivery, RSS %s;  client %.2f cores, %.2f µs/delivery\n",
			"", win.ServerCores, win.ServerCPUMicrosPerDelivery, mib(win.ServerRSSEnd), win.ClientCores, win.ClientCPUMicrosPerDelivery)
		fmt.Fprintf(w, "%-10s wire %.1f bytes/delivery;  server write(2) %.3f/delivery;  client read(2) %.3f/delivery\n",
			"", win.WireBytesPerDelivery, win.ServerWritesPerDelivery, win.ClientReadsPerDelivery)
	}
	if sat := r.Saturation; sat != nil {
		fmt.Fprintf(w, "saturation max sustained %.0f deliveries/s (at %.1f ev/s; bounds loss ≤ %.2f%%, p99 ≤ %.0fms); stopped: %s\n",
			sat.MaxSustainedDeliveriesPerSec, sat.MaxSustainedRate, sat.MaxLossPct, sat.MaxP99MS, sat.StopReason)
	}
	if sk := r.Soak; sk != nil {
		fmt.Fprintf(w, "soak       %d samples; RSS drift %+.2f%% (max %.2f%%), heap drift %+.2f%%, goroutine growth %+d\n",
			len(sk.Samples), sk.RSSDriftPct, sk.RSSMaxDriftPct, sk.HeapDriftPct, sk.GoroutineGrowth)
	}
	fmt.Fprintf(w, "disconnects: %s;  unreadable messages %d\n", counts(r.Disconnects), r.UnreadableMessages)
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error: %s\n", r.Error)
	}
	fmt.Fprintf(w, "ok: %v  (runtime %.1fs)\n", r.OK, r.RuntimeSec)
}
