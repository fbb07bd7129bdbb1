package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/cluster"
)

// Bridge forwards Redis pub/sub messages and stream entries into
// JetStream. Create it with New and start it with Run.
type Bridge struct {
	cfg  Config // WithDefaults applied
	cl   *cluster.Cluster
	log  *slog.Logger
	opts *goredis.Options // parsed cfg.URL; each session clones it
	m    *bridges.Metrics

	leasePubSub, leaseStreams string

	// legacyChannels maps each legacy channel to its source;
	// legacyStreams are the sources that declare stream keys, in order.
	legacyChannels map[string]*legacySource
	legacyStreams  []*legacySource

	// lastEnvelopeWarn is when warnEnvelope last logged (unix ns).
	lastEnvelopeWarn atomic.Int64

	pubsubStatus, streamsStatus bridges.StatusBox

	running atomic.Bool
}

// New checks cfg and returns a Bridge that publishes through cl. It does
// not connect to Redis; Run does. log may be nil (slog.Default()).
func New(cfg Config, cl *cluster.Cluster, log *slog.Logger) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cl == nil {
		return nil, errors.New("redis bridge: nil cluster")
	}
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.WithDefaults()
	opts, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("bridges.redis.url: %v", redactErr(err, cfg.URL))
	}
	// Bridges talk to plain Redis; the maintenance-notification handshake
	// only adds log noise and goroutines against servers without it.
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if opts.ClientName == "" {
		opts.ClientName = "fraiseql-bridge"
	}
	b := &Bridge{
		cfg:  cfg,
		cl:   cl,
		log:  log.With("component", "redis-bridge", "redis", redactURL(cfg.URL)),
		opts: opts,
		m:    newMetrics(),
	}
	b.leasePubSub, b.leaseStreams = cfg.leaseNames()
	b.legacyChannels, b.legacyStreams = cfg.resolveLegacy()
	// A follower is healthy: it stands by until it wins the lease.
	b.pubsubStatus.Update(func(s *bridges.Status) { s.Name, s.Up = sourcePubSub, true })
	b.streamsStatus.Update(func(s *bridges.Status) { s.Name, s.Up = sourceStreams, true })
	return b, nil
}

// Run ingests the enabled sources, each only while this node holds its
// lease, until ctx is done; it then stops every goroutine it started and
// returns nil. Redis and JetStream errors are logged and retried with
// backoff, and a panic in an ingester is logged and the ingester
// restarted: Run never takes the node down. Run may be called once.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return errors.New("redis bridge: Run called twice")
	}
	for i, ls := range b.cfg.Legacy {
		b.log.Info("redis legacy source: its envelopes name their tenant and topic", "config", legacyConfigKey(i),
			"channels", ls.Channels, "streams", ls.Streams, "tenant", cmp.Or(ls.Tenant, b.cfg.Tenant), "tenants", ls.Tenants, "topics", ls.Topics)
	}
	var wg sync.WaitGroup
	if !b.cfg.DisablePubSub {
		b.log.Info("redis pub/sub source", "patterns", b.cfg.Patterns, "legacy_channels", b.cfg.legacyChannelList(), "lease", b.leasePubSub)
		wg.Go(func() { b.runSource(ctx, sourcePubSub, b.leasePubSub, &b.pubsubStatus, b.runPubSub) })
	}
	if !b.cfg.DisableStreams {
		b.log.Info("redis streams source", "streams", b.cfg.Streams, "stream_pattern", b.cfg.StreamPattern,
			"group", b.cfg.Group, "consumer", b.cfg.Consumer, "legacy_sources", len(b.legacyStreams), "lease", b.leaseStreams)
		wg.Go(func() { b.runSource(ctx, sourceStreams, b.leaseStreams, &b.streamsStatus, b.runStreams) })
	}
	wg.Wait()
	return nil
}

// runSource runs fn under the source's lease until ctx is done.
func (b *Bridge) runSource(ctx context.Context, source, lease string, st *bridges.StatusBox, fn func(context.Context) error) {
	log := b.log.With("source", source)
	onLeader := func(held bool) {
		b.m.Leader.WithLabelValues(source).Set(boolGauge(held))
		st.Update(func(s *bridges.Status) {
			s.Leader = held
			// A new leader is up once it has connected (and, for pub/sub,
			// subscribed); a follower stands by, healthy.
			s.Up, s.LastError = !held, ""
		})
		if !held && source == sourceStreams {
			b.m.Lag.WithLabelValues(sourceStreams).Set(0) // only the leader measures it
		}
	}
	guarded := func(ctx context.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
				log.Error("redis bridge: ingester panicked; restarting", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		return fn(ctx)
	}
	for ctx.Err() == nil {
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
					log.Error("redis bridge: panicked; restarting", "panic", r, "stack", string(debug.Stack()))
				}
			}()
			return bridges.RunWhileLeader(ctx, b.cl, lease, b.cfg.LeaseTTL, log, onLeader, guarded)
		}()
		if ctx.Err() != nil {
			return
		}
		log.Error("redis bridge: source stopped; restarting", "err", err)
		bridges.Sleep(ctx, time.Second)
	}
}

// Status reports each enabled source: "redis-pubsub", "redis-streams".
func (b *Bridge) Status() []bridges.Status {
	var out []bridges.Status
	if !b.cfg.DisablePubSub {
		out = append(out, b.pubsubStatus.Get())
	}
	if !b.cfg.DisableStreams {
		out = append(out, b.streamsStatus.Get())
	}
	return out
}

// Collectors returns the bridge's metrics for the caller to register
// (nothing is registered on the global registry): the fraiseql_bridge_*
// families of bridges.Metrics, with bridge="redis" and source
// "redis-pubsub" or "redis-streams".
func (b *Bridge) Collectors() []prometheus.Collector { return b.m.Collectors() }

// newClient returns a client for one ingester session. The session closes
// it; closing it also interrupts a blocked read, which is how a cancelled
// ctx stops a session promptly.
func (b *Bridge) newClient() *goredis.Client {
	o := *b.opts
	return goredis.NewClient(&o)
}

// publish stores ev in JetStream and counts the outcome.
func (b *Bridge) publish(ctx context.Context, source string, ev event) error {
	res, err := b.cl.PublishTraced(ctx, ev.tenant, ev.topic, ev.data, ev.msgID, ev.traceparent)
	if err != nil {
		return err
	}
	if res.Duplicate {
		b.m.Deduplicated.WithLabelValues(source).Inc()
	} else {
		b.m.Forwarded.WithLabelValues(source).Inc()
	}
	return nil
}

// envelopeWarnEvery spaces warnEnvelope's logs.
const envelopeWarnEvery = time.Minute

// warnEnvelope logs, at most once per envelopeWarnEvery, that a body
// shaped as a legacy envelope arrived on a source not declared legacy and
// was forwarded as it is: an operator migrating from FraiseQL may have
// forgotten bridges.redis.legacy. It reports whether it logged.
func (b *Bridge) warnEnvelope(now time.Time, source, what, name string) bool {
	last := b.lastEnvelopeWarn.Load()
	if now.UnixNano()-last < int64(envelopeWarnEvery) || !b.lastEnvelopeWarn.CompareAndSwap(last, now.UnixNano()) {
		return false
	}
	b.log.Warn("redis bridge: a body shaped as a FraiseQL envelope was forwarded as it is, to the tenant and topic of its "+what+
		"; envelopes are unwrapped only on sources declared in bridges.redis.legacy (or legacy_channels)",
		"source", source, what, name, "every", envelopeWarnEvery)
	return true
}

// setUp records a source's connection state.
func setUp(st *bridges.StatusBox, err error) {
	st.Update(func(s *bridges.Status) {
		s.Up = err == nil
		s.LastError = ""
		if err != nil {
			s.LastError = err.Error()
		}
	})
}

func boolGauge(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
