//go:build linux

package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// Run performs one load run as cfg describes and returns its report. The
// report is returned even when err is not nil (with OK false), holding
// whatever was measured before the failure.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.maxRuntime())
	defer cancel()
	r := &runner{cfg: &cfg, began: began, log: cfg.Log}
	if r.log == nil {
		r.log = io.Discard
	}
	r.rep = &Report{
		Tool:      "fraiseql-loadgen",
		Mode:      cfg.mode(),
		StartedAt: began.UTC().Format(time.RFC3339),
		Params: Params{
			Conns: cfg.Conns, SubsPerConn: cfg.Subs, Rooms: cfg.Rooms, Rate: cfg.Rate,
			PayloadBytes: cfg.Payload, PayloadKind: cfg.PayloadKind, DurationSec: cfg.Duration.Seconds(), WarmupSec: cfg.Warmup.Seconds(),
			ConnectRate: cfg.ConnectRate, MaxInflight: cfg.MaxInflight, Query: subscriptionQuery,
			Transport: cfg.Transport, Compress: cfg.Compress, Gzip: cfg.Gzip,
			GOMAXPROCS: runtime.GOMAXPROCS(0), Cores: runtime.NumCPU(),
		},
		Disconnects: map[string]int{},
	}
	if cfg.Saturate {
		r.rep.Params.SatStartRate, r.rep.Params.SatFactor, r.rep.Params.SatStepSec = cfg.SatStartRate, cfg.SatFactor, cfg.SatStep.Seconds()
	}
	if cfg.Soak {
		r.rep.Params.SampleEverySec = cfg.SampleEvery.Seconds()
	}
	err := r.run(ctx)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("run cut short: %w (-max-runtime %v)", ctx.Err(), cfg.maxRuntime())
	}
	r.rep.RuntimeSec = round3(time.Since(began).Seconds())
	r.rep.OK = err == nil
	if err != nil {
		r.rep.Error = err.Error()
	}
	return r.rep, err
}

func (c *Config) mode() string {
	switch {
	case c.Saturate:
		return "saturate"
	case c.Soak:
		return "soak"
	}
	return "run"
}

type runner struct {
	cfg   *Config
	rep   *Report
	logMu sync.Mutex // log is written by the run and the soak sampler
	log   io.Writer
	began time.Time

	node  *node
	probe *probe
	pub   *publisher
	cs    *clients
	ps    phases
	conns []*client
}

func (r *runner) logf(format string, a ...any) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	fmt.Fprintf(r.log, "[%6.1fs] "+format+"\n", append([]any{time.Since(r.began).Seconds()}, a...)...)
}

func (r *runner) warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.rep.Warnings = append(r.rep.Warnings, msg)
	r.logf("warning: %s", msg)
}

func (r *runner) run(ctx context.Context) error {
	cfg := r.cfg
	nofile, err := RaiseNoFile()
	if err != nil {
		r.warn("raising RLIMIT_NOFILE: %v", err)
	}
	r.rep.Params.NoFileLimit = nofile
	sockets := cfg.Conns
	if cfg.Transport == TransportSSE {
		sockets *= cfg.Subs
	}
	if need := uint64(sockets) + 256; nofile > 0 && nofile < need {
		r.warn("RLIMIT_NOFILE is %d, below the %d descriptors %d connections need", nofile, need, sockets)
	}

	// The server: how to start it, speak to it and see that it is ready.
	spawn, proto, ready := spawnNode, protocol(graphqlWS{}), "/readyz"
	if cfg.Server == ServerCentrifugo {
		spawn, proto, ready = spawnCentrifugo, centrifugoProto{}, "/health"
	}
	if cfg.Spawn {
		n, err := spawn(ctx, cfg, r.logf)
		if n != nil {
			defer n.stop()
		}
		if err != nil {
			return err
		}
		r.node = n
	} else {
		r.node = &node{ws: cfg.Target, nats: cfg.NATSURL, ops: cfg.OpsURL, pid: cfg.ServerPID, api: cfg.API, apiKey: cfg.APIKey}
		if r.node.nats == "" && cfg.Server == ServerFraiseQL {
			if r.node.nats, err = readNATSURL(cfg.DataDir); err != nil {
				return err
			}
		}
	}
	r.rep.Node = NodeInfo{Server: cfg.Server, WS: r.node.ws, NATS: redactedURL(r.node.nats), API: r.node.api, Spawned: cfg.Spawn, PID: r.node.pid}
	r.rep.Params.NodeEnv = r.node.env
	if r.probe, err = newProbe(r.node.ws, r.node.ops, ready, r.node.pid); err != nil {
		return err
	}
	if err := r.probe.waitReady(ctx, 30*time.Second); err != nil {
		if r.node.exited() {
			return fmt.Errorf("%w; the server exited: %s", err, r.node.logTail())
		}
		return err
	}
	if _, ok := r.probe.cpu(ctx); ok {
		r.rep.Node.CPUSource = "metrics"
		if r.node.pid > 0 {
			r.rep.Node.CPUSource = "proc"
		}
	} else {
		r.warn("the node's CPU is unknown: give -pid, or expose /metrics")
	}

	// Rooms are unique to this run, so that nothing else publishing to
	// the node (or another run) lands in our sequences.
	nonce := fmt.Sprintf("lg%06x", rand.Uint32()&0xffffff)
	rooms := make([]string, cfg.Rooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("%s-%d", nonce, i)
	}
	r.pub = newPublisher(nil, rooms, cfg.Payload, &r.ps)
	if cfg.PayloadKind == PayloadText {
		r.pub.useText()
	}
	if cfg.Server == ServerCentrifugo {
		r.pub.out = newCentrifugoSink(ctx, r.node.api, r.node.apiKey, rooms, cfg.MaxInflight, r.pub.failed, r.pub.unconfirmed)
	} else if r.pub.out, err = newJetStreamSink(ctx, r.node.nats, cfg.Prefix, cfg.Tenant, rooms, cfg.MaxInflight, r.pub.failed); err != nil {
		return err
	}
	defer r.pub.close()
	r.rep.Params.BodyBytes = r.pub.bodySize()
	r.cs = newClients(proto, r.node.ws, rooms, cfg.Subs, &r.ps)
	r.cs.compress = cfg.Compress
	defer r.closeClients()
	if cfg.Transport == TransportSSE {
		if r.cs.sse, err = newSSETarget(r.node.ws, rooms, cfg.Gzip); err != nil {
			return err
		}
	}

	r.settle(ctx)
	r.rep.Memory.Idle = r.sample(ctx)
	r.logf("node idle: RSS %s, %d goroutines", mib(r.rep.Memory.Idle.RSS), r.rep.Memory.Idle.Goroutines)

	if err := r.connect(ctx); err != nil {
		return err
	}
	r.settle(ctx)
	r.rep.Memory.Connected = r.sample(ctx)
	if err := r.subscribe(ctx); err != nil {
		return err
	}
	r.settle(ctx)
	r.rep.Memory.Subscribed = r.sample(ctx)
	r.memoryPerConn()
	if !cfg.Saturate {
		r.rep.Params.ExpectedDeliveries = cfg.Rate * float64(r.cs.accepted.Load()) / float64(cfg.Rooms)
	}

	switch {
	case cfg.Saturate:
		err = r.saturate(ctx)
	case cfg.Soak:
		err = r.soak(ctx)
	default:
		if cfg.Warmup > 0 {
			r.logf("warm-up: %.1f events/s for %v", cfg.Rate, cfg.Warmup)
			r.phase(ctx, "warmup", cfg.Rate, cfg.Warmup, false)
		}
		r.logf("measuring: %.1f events/s for %v", cfg.Rate, cfg.Duration)
		w := r.phase(ctx, "measure", cfg.Rate, cfg.Duration, true)
		r.rep.Windows = append(r.rep.Windows, w)
	}
	r.rep.UnreadableMessages = r.cs.unknown.Load()
	r.rep.ServerCompletes = r.cs.completes.Load()
	if r.node.exited() {
		return fmt.Errorf("the node exited during the run: %s", r.node.logTail())
	}
	return err
}

// settle waits cfg.Settle, so that the node's work of the step before is
// done (and its heap has had a GC) before a memory sample.
func (r *runner) settle(ctx context.Context) {
	t := time.NewTimer(r.cfg.Settle)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *runner) sample(ctx context.Context) MemSample {
	s := r.probe.mem(ctx)
	s.At = round3(time.Since(r.began).Seconds())
	if r.cs != nil {
		s.Conns = r.cs.alive.Load()
	}
	return s
}

// ramp calls f(0..n-1) on conc workers, starting at most rate per second.
func ramp(ctx context.Context, n int, rate float64, conc int, f func(i int)) {
	idx := make(chan int)
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Go(func() {
			for i := range idx {
				f(i)
			}
		})
	}
	start := time.Now()
	// Bounded: twice the planned ramp plus a minute, for slow dials.
	deadline := start.Add(2*time.Duration(float64(n)/rate*float64(time.Second)) + time.Minute)
	next := 0
	NewPacer(rate, uint64(n), start).Run(ctx, deadline, func(k uint64) bool {
		for range k {
			select {
			case idx <- next:
				next++
			case <-ctx.Done():
				return false
			}
		}
		return true
	})
	close(idx)
	wg.Wait()
}

func (r *runner) connect(ctx context.Context) error {
	cfg := r.cfg
	r.logf("connecting %d clients at ≤ %.0f/s", cfg.Conns, cfg.ConnectRate)
	r.conns = make([]*client, cfg.Conns)
	cpu0, t0 := SelfCPU(), time.Now()
	ramp(ctx, cfg.Conns, cfg.ConnectRate, cfg.ConnectConcurrency, func(i int) {
		r.conns[i] = r.cs.dial(ctx, i, i%cfg.Rooms)
	})
	connected := 0
	for _, c := range r.conns {
		if c != nil {
			connected++
		}
	}
	rep := &r.rep.Connect
	rep.Attempted, rep.Connected = cfg.Conns, connected
	rep.Failed = r.cs.snapshot(r.cs.connectErrs)
	rep.Time = r.cs.connectTime.Summarize()
	rep.WallSec = round3(time.Since(t0).Seconds())
	rep.ClientCPUSec = round3((SelfCPU() - cpu0).Seconds())
	rep.Sockets = r.cs.alive.Load()
	rep.Compressed = r.cs.compressed.Load()
	r.logf("connected %d/%d in %.1fs (p99 %.1fms), failed: %s", connected, cfg.Conns, rep.WallSec, rep.Time.P99, counts(rep.Failed))
	if cfg.Compress {
		r.logf("permessage-deflate negotiated on %d of %d connections", rep.Compressed, connected)
		if rep.Compressed == 0 {
			r.warn("-compress: the server negotiated no permessage-deflate: nothing on the wire was compressed")
		}
	}
	if cfg.Gzip {
		r.logf("gzip response bodies on %d of %d streams", rep.Compressed, rep.Sockets)
		if rep.Compressed == 0 {
			r.warn("-gzip: the server sent no gzip body (is ws.sse_compression gzip?): nothing on the wire was compressed")
		}
	}
	if connected == 0 {
		return errors.New("no connection succeeded")
	}
	if connected < cfg.Conns {
		r.warn("%d of %d connections failed: %s", cfg.Conns-connected, cfg.Conns, counts(rep.Failed))
	}
	return ctx.Err()
}

func (r *runner) subscribe(ctx context.Context) error {
	cfg := r.cfg
	r.logf("subscribing %d × %d", r.rep.Connect.Connected, cfg.Subs)
	t0 := time.Now()
	var want, writeErrs int64
	for _, c := range r.conns {
		if c != nil {
			want++
		}
	}
	var mu sync.Mutex
	ramp(ctx, len(r.conns), cfg.ConnectRate, cfg.ConnectConcurrency, func(i int) {
		if c := r.conns[i]; c != nil {
			c.subStart.Store(time.Now().UnixNano())
			if err := r.cs.subscribe(ctx, c); err != nil {
				mu.Lock()
				writeErrs++
				mu.Unlock()
			}
		}
	})
	// Wait, bounded, for every connection's round trip.
	deadline := time.Now().Add(30*time.Second + time.Duration(float64(want)/cfg.ConnectRate*float64(time.Second)))
	for r.cs.subscribed.Load()+writeErrs < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	rep := &r.rep.Subscribe
	rep.Sent = want * int64(cfg.Subs)
	rep.Accepted = r.cs.accepted.Load()
	rep.Refused = r.cs.snapshot(r.cs.refused)
	rep.Confirmed = r.cs.subscribed.Load()
	rep.Time = r.cs.subscribeTime.Summarize()
	rep.WallSec = round3(time.Since(t0).Seconds())
	r.logf("subscribed %d/%d (%d conns confirmed) in %.1fs (p99 %.1fms), refused: %s",
		rep.Accepted, rep.Sent, rep.Confirmed, rep.WallSec, rep.Time.P99, counts(rep.Refused))
	if rep.Confirmed < want {
		r.warn("%d connections did not confirm their subscriptions (write errors %d)", want-rep.Confirmed, writeErrs)
	}
	if len(rep.Refused) > 0 {
		r.warn("subscriptions refused: %s (a spawned node gets -node-env FRAISEQL_LIMITS_…; a running one needs its limits raised)", counts(rep.Refused))
	}
	if rep.Accepted == 0 {
		return errors.New("no subscription was accepted")
	}
	return ctx.Err()
}

func (r *runner) memoryPerConn() {
	m := &r.rep.Memory
	conns := float64(r.rep.Connect.Connected)
	subs := float64(r.cs.accepted.Load())
	m.RSSPerConn = round3(float64(m.Connected.RSS-m.Idle.RSS) / conns)
	m.RSSPerConnWithSubs = round3(float64(m.Subscribed.RSS-m.Idle.RSS) / conns)
	m.HeapPerConn = round3(float64(m.Connected.HeapInuse-m.Idle.HeapInuse) / conns)
	m.GoroutinesPerConn = round3(float64(m.Connected.Goroutines-m.Idle.Goroutines) / conns)
	if subs > 0 {
		m.RSSPerSub = round3(float64(m.Subscribed.RSS-m.Connected.RSS) / subs)
		m.HeapPerSub = round3(float64(m.Subscribed.HeapInuse-m.Connected.HeapInuse) / subs)
	}
}

// closeClients closes every connection and waits, bounded, for the readers.
func (r *runner) closeClients() {
	if r.cs == nil {
		return
	}
	r.cs.closing.Store(true)
	for _, c := range r.conns {
		if c != nil {
			c.close()
		}
	}
	r.cs.hc.CloseIdleConnections() // those of refused upgrades
	done := make(chan struct{})
	go func() { // ends when the last reader does; bounded by the wait below
		r.cs.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		r.warn("some readers did not end within 15s of closing")
	}
	r.rep.Disconnects = r.cs.snapshot(r.cs.closes)
}

// phase publishes at rate for d as one phase and, when measured, drains
// and reports it.
func (r *runner) phase(ctx context.Context, name string, rate float64, d time.Duration, measured bool) Window {
	ph := newPhase(name, rate, len(r.cs.rooms))
	subsPerRoom := make([]int64, len(r.cs.rooms))
	var subs int64
	for i := range subsPerRoom {
		subsPerRoom[i] = r.cs.roomSubs[i].Load()
		subs += subsPerRoom[i]
	}
	cpu0, _ := r.probe.cpu(ctx)
	self0 := SelfCPU()
	io0, wire0 := r.probe.io(), r.cs.wire.load()
	selfIO0, _ := ProcIO("self")
	t0 := time.Now()
	r.pub.out.takeWaitingMax() // from here on
	r.pub.begin(ph)
	total := max(EventsFor(rate, d), 1)
	// Slack for a publisher that falls behind; what it did not publish by
	// then is simply not expected.
	deadline := t0.Add(d + d/10 + 2*time.Second)
	_, lag := NewPacer(rate, total, t0).Run(ctx, deadline, func(n uint64) bool {
		for range n {
			if !r.pub.publish(deadline) {
				return false
			}
		}
		return true
	})
	t1 := time.Now()
	r.pub.end()
	cpu1, _ := r.probe.cpu(ctx)
	self1 := SelfCPU()
	if !measured {
		return Window{Name: name}
	}
	if !r.pub.waitAcks(ctx, 10*time.Second) {
		r.warn("%s: publishes still unacknowledged 10s after the window", name)
	}
	exp := ph.expected(subsPerRoom)
	// Drain: until everything arrived, or nothing new for cfg.Drain, or a
	// hard bound.
	drain0 := time.Now()
	hard := drain0.Add(max(30*time.Second, 10*r.cfg.Drain))
	last, progress := ph.delivered.load(), drain0
	for ctx.Err() == nil {
		now := time.Now()
		got := ph.delivered.load()
		if got != last {
			last, progress = got, now
		}
		if got >= exp || now.Sub(progress) > r.cfg.Drain || now.After(hard) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t2 := time.Now()
	cpu2, _ := r.probe.cpu(ctx)
	self2 := SelfCPU()
	io2, wire2 := r.probe.io(), r.cs.wire.load()
	selfIO2, _ := ProcIO("self")

	// The schedule's last event is due 1/rate before d: the window is d,
	// or longer if the publisher overran it.
	win := max(t1.Sub(t0), d).Seconds()
	w := Window{
		Name:               name,
		OfferedRate:        rate,
		Published:          ph.published.Load(),
		PublishErrors:      ph.pubErrors.Load(),
		PublishUnconfirmed: ph.pubUnconfirmed.Load(),
		PublisherLagMS:     round3(float64(lag) / 1e6),
		WindowSec:          round3(win),
		DrainSec:           round3(t2.Sub(t1).Seconds()),
		SubscribersLive:    subs,
		Expected:           exp,
		Delivered:          ph.delivered.load(),
		Duplicates:         ph.dups.load(),
		Reorders:           ph.reorders.load(),
		Skipped:            ph.skipped.load(),
		ServerDropped:      ph.dropped.load(),
		Latency:            ph.latency.Summarize(),
		ServerRSSEnd:       r.probe.mem(ctx).RSS,
	}
	w.PublishRate = round3(float64(w.Published) / win)
	if w.Expected > w.Delivered {
		w.Lost = w.Expected - w.Delivered
	}
	if w.Expected > 0 {
		w.LossPct = math.Round(float64(w.Lost)/float64(w.Expected)*100*1e4) / 1e4
	}
	w.OfferedDelivRate = round3(rate * float64(subs) / float64(len(r.cs.rooms)))
	w.DeliveriesPerSec = round3(float64(w.Delivered) / win)
	if r.rep.Node.CPUSource != "" {
		w.ServerCores = round3((cpu1 - cpu0).Seconds() / win)
		if w.Delivered > 0 {
			w.ServerCPUMicrosPerDelivery = round3(float64((cpu2 - cpu0).Microseconds()) / float64(w.Delivered))
		}
	}
	w.ClientCores = round3((self1 - self0).Seconds() / win)
	if w.Delivered > 0 {
		d := float64(w.Delivered)
		w.ClientCPUMicrosPerDelivery = round3(float64((self2 - self0).Microseconds()) / d)
		w.WireBytesPerDelivery = round3(float64(wire2-wire0) / d)
		if selfIO2.SysR > 0 {
			w.ClientReadsPerDelivery = round3(float64(selfIO2.SysR-selfIO0.SysR) / d)
		}
		if io0.SysW > 0 && io2.SysW >= io0.SysW {
			w.ServerWritesPerDelivery = round3(float64(io2.SysW-io0.SysW) / d)
		}
	}
	w.PublishWaitingMax = r.pub.out.takeWaitingMax()
	if w.PublishErrors > 0 || w.PublishUnconfirmed > 0 {
		r.warn("%s: %d publishes failed and %d got no answer; the first error: %v", name, w.PublishErrors, w.PublishUnconfirmed, r.pub.firstError())
	}
	if w.Delivered > w.Expected {
		r.warn("%s: %d deliveries of %d expected: publishes counted as failed were delivered", name, w.Delivered, w.Expected)
	}
	if w.PublishRate < 0.95*rate && w.Published > 10 {
		r.warn("%s: the publisher reached %.1f of %.1f events/s: the offered load was not met", name, w.PublishRate, rate)
	}
	r.logf("%s: delivered %d/%d (loss %.3f%%) %.0f/s, p99 %.1fms, server %.2f cores",
		name, w.Delivered, w.Expected, w.LossPct, w.DeliveriesPerSec, w.Latency.P99, w.ServerCores)
	return w
}

func (r *runner) saturate(ctx context.Context) error {
	cfg := r.cfg
	sat := &SaturationReport{MaxLossPct: cfg.SatMaxLossPct, MaxP99MS: float64(cfg.SatMaxP99) / 1e6}
	r.rep.Saturation = sat
	if cfg.Warmup > 0 {
		r.logf("warm-up: %.1f events/s for %v", cfg.SatStartRate, cfg.Warmup)
		r.phase(ctx, "warmup", cfg.SatStartRate, cfg.Warmup, false)
	}
	rate := cfg.SatStartRate
	sat.StopReason = fmt.Sprintf("reached -sat-max-steps %d", cfg.SatMaxSteps)
	for step := 1; step <= cfg.SatMaxSteps; step++ {
		if ctx.Err() != nil {
			sat.StopReason = "out of time (-max-runtime)"
			break
		}
		r.logf("step %d: %.1f events/s for %v", step, rate, cfg.SatStep)
		w := r.phase(ctx, fmt.Sprintf("step-%d", step), rate, cfg.SatStep, true)
		pass := w.LossPct <= cfg.SatMaxLossPct && w.Latency.P99 <= sat.MaxP99MS && w.Expected > 0
		w.Pass = &pass
		r.rep.Windows = append(r.rep.Windows, w)
		if pass && w.DeliveriesPerSec > sat.MaxSustainedDeliveriesPerSec {
			sat.MaxSustainedDeliveriesPerSec, sat.MaxSustainedRate = w.DeliveriesPerSec, rate
		}
		if !pass {
			sat.StopReason = fmt.Sprintf("step %d: loss %.3f%% (max %.2f%%), p99 %.1fms (max %.0fms)",
				step, w.LossPct, cfg.SatMaxLossPct, w.Latency.P99, sat.MaxP99MS)
			break
		}
		if w.PublishRate < 0.9*rate {
			sat.StopReason = fmt.Sprintf("step %d: the publisher managed only %.1f of %.1f events/s", step, w.PublishRate, rate)
			break
		}
		if r.node.exited() {
			sat.StopReason = "the node exited"
			break
		}
		rate *= cfg.SatFactor
	}
	r.logf("saturation: max sustained %.0f deliveries/s; %s", sat.MaxSustainedDeliveriesPerSec, sat.StopReason)
	return nil
}

func (r *runner) soak(ctx context.Context) error {
	cfg := r.cfg
	sk := &SoakReport{}
	r.rep.Soak = sk
	if cfg.Warmup > 0 {
		r.logf("warm-up: %.1f events/s for %v", cfg.Rate, cfg.Warmup)
		r.phase(ctx, "warmup", cfg.Rate, cfg.Warmup, false)
	}
	var mu sync.Mutex
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { // the sampler; stopped below, after the soak window
		t := time.NewTicker(cfg.SampleEvery)
		defer t.Stop()
		take := func() {
			s := r.sample(sctx)
			s.Delivered = r.cs.nexts.Load()
			mu.Lock()
			sk.Samples = append(sk.Samples, s)
			mu.Unlock()
			r.logf("soak sample: RSS %s, heap %s, %d goroutines, %d conns", mib(s.RSS), mib(s.HeapInuse), s.Goroutines, s.Conns)
		}
		take()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				take()
			}
		}
	})
	r.logf("soak: %.1f events/s for %v, sampling every %v", cfg.Rate, cfg.Duration, cfg.SampleEvery)
	w := r.phase(ctx, "soak", cfg.Rate, cfg.Duration, true)
	stop()
	wg.Wait()
	r.rep.Windows = append(r.rep.Windows, w)
	if n := len(sk.Samples); n >= 2 {
		first, last := sk.Samples[0], sk.Samples[n-1]
		pct := func(a, b int64) float64 {
			if a == 0 {
				return 0
			}
			return math.Round(float64(b-a)/float64(a)*100*100) / 100
		}
		sk.RSSDriftPct = pct(first.RSS, last.RSS)
		sk.HeapDriftPct = pct(first.HeapInuse, last.HeapInuse)
		for _, s := range sk.Samples {
			sk.RSSMaxDriftPct = max(sk.RSSMaxDriftPct, math.Abs(pct(first.RSS, s.RSS)))
		}
		sk.GoroutineGrowth = last.Goroutines - first.Goroutines
	} else {
		r.warn("soak: fewer than 2 samples; make -duration longer than -sample-every")
	}
	return nil
}
