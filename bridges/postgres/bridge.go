package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/bridges"
	"github.com/fraiseql/subscriptions/cluster"
)

// Reconnect backoff bounds for PostgreSQL.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 10 * time.Second
	// queryTimeout bounds one statement, so that a silent network
	// partition ends in a reconnect rather than a hang.
	queryTimeout = 30 * time.Second
	// flushTimeout bounds the last checkpoint write after ctx is done.
	flushTimeout = 5 * time.Second
)

// Bridge forwards PostgreSQL events into the stream. Create it with New
// and call Run once.
type Bridge struct {
	cfg     Config
	connCfg *pgx.ConnConfig
	cl      *cluster.Cluster
	log     *slog.Logger
	m       *bridges.Metrics
	sources []*source

	migrateMu sync.Mutex
	migrated  bool // guarded by migrateMu
}

// source is one ingested source and its state.
type source struct {
	name   string // status name and metrics label
	lease  string
	status bridges.StatusBox
	// session ingests over conn until an error or ctx is done.
	session func(ctx context.Context, conn *pgx.Conn) error
}

// New checks cfg and prepares a bridge; it connects to nothing.
func New(cfg Config, cl *cluster.Cluster, log *slog.Logger) (*Bridge, error) {
	if cl == nil {
		return nil, errors.New("bridges.postgres: nil cluster")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	connCfg, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("bridges.postgres.url: %s", redactErr(err))
	}
	b := &Bridge{cfg: cfg, connCfg: connCfg, cl: cl, log: log.With("bridge", "postgres"), m: newMetrics()}
	ob := newOutbox(b)
	b.sources = append(b.sources, &source{name: sourceOutbox, lease: "pg-outbox-" + cfg.Schema, session: ob.session})
	if n := newNotifier(b); len(n.channels) > 0 {
		b.sources = append(b.sources, &source{name: sourceNotify, lease: "pg-notify-" + cfg.Schema, session: n.session})
		b.m.AddSource(sourceNotify, notifyReasons)
	}
	if cfg.ChangeLog.Enabled {
		c, err := newChangeLog(b)
		if err != nil {
			return nil, err
		}
		b.sources = append(b.sources, &source{name: sourceChangeLog, lease: "pg-changelog-" + cfg.Schema, session: c.session})
		b.m.AddSource(sourceChangeLog, nil)
	}
	for _, s := range b.sources {
		s.status.Update(func(st *bridges.Status) { st.Name = s.name; st.Up = true }) // a follower standing by is healthy
	}
	return b, nil
}

// Run ingests every configured source while this node holds its lease,
// reconnecting to PostgreSQL with backoff. It blocks until ctx is done
// and then returns nil, after every ingester stopped and released its
// lease.
func (b *Bridge) Run(ctx context.Context) error {
	if len(b.cfg.NotifyChannels) > 0 {
		b.log.Info("postgres notify channels: their envelopes may name only the bridge's tenant", "config", legacyConfigKey(-1),
			"channels", b.cfg.NotifyChannels, "tenant", b.cfg.Tenant)
	}
	for i, ls := range b.cfg.Legacy {
		b.log.Info("postgres legacy source: its envelopes name their tenant and topic", "config", legacyConfigKey(i),
			"channels", ls.Channels, "tenant", cmp.Or(ls.Tenant, b.cfg.Tenant), "tenants", ls.Tenants, "topics", ls.Topics)
	}
	var wg sync.WaitGroup
	for _, s := range b.sources {
		wg.Go(func() { // owned here: ends with ctx, waited below
			onLeader := func(held bool) {
				b.m.Leader.WithLabelValues(s.name).Set(boolGauge(held))
				s.status.Update(func(st *bridges.Status) {
					st.Leader = held
					if !held {
						st.Up, st.LastError = true, "" // standing by
					}
				})
			}
			_ = bridges.RunWhileLeader(ctx, b.cl, s.lease, b.cfg.LeaseTTL, b.log, onLeader, func(ctx context.Context) error {
				return b.ingest(ctx, s)
			})
		})
	}
	wg.Wait()
	return nil
}

// ingest connects and runs s's sessions until ctx is done, reconnecting
// with backoff. A panic in a session is logged and treated as an error:
// one bad event never takes the node down.
func (b *Bridge) ingest(ctx context.Context, s *source) error {
	bo := bridges.Backoff{Min: reconnectMin, Max: reconnectMax}
	log := b.log.With("source", s.name)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			b.m.Reconnects.WithLabelValues(s.name).Inc()
		}
		err := b.runSession(ctx, s, &bo)
		if ctx.Err() != nil {
			return nil
		}
		s.status.Update(func(st *bridges.Status) { st.Up, st.LastError = false, err.Error() })
		d := bo.Next()
		log.Warn("postgres source failed; reconnecting", "err", err, "in", d)
		if !bridges.Sleep(ctx, d) {
			return nil
		}
	}
	return nil
}

func (b *Bridge) runSession(ctx context.Context, s *source, bo *bridges.Backoff) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
			b.log.Error("postgres source panicked", "source", s.name, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, queryTimeout)
	conn, err := pgx.ConnectConfig(cctx, b.connCfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if err := b.ensureMigrated(ctx, conn); err != nil {
		return err
	}
	s.status.Update(func(st *bridges.Status) { st.Up, st.LastError = true, "" })
	bo.Reset()
	return s.session(ctx, conn)
}

// ensureMigrated runs the migration once per Bridge when Config.Migrate is set.
func (b *Bridge) ensureMigrated(ctx context.Context, conn *pgx.Conn) error {
	if !b.cfg.Migrate {
		return nil
	}
	b.migrateMu.Lock()
	defer b.migrateMu.Unlock()
	if b.migrated {
		return nil
	}
	mctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if err := Migrate(mctx, conn, b.cfg.Schema); err != nil {
		return err
	}
	b.migrated = true
	return nil
}

// Status reports each source's state, for /readyz.
func (b *Bridge) Status() []bridges.Status {
	out := make([]bridges.Status, len(b.sources))
	for i, s := range b.sources {
		out[i] = s.status.Get()
	}
	return out
}

// Collectors returns the bridge's Prometheus metrics: the fraiseql_bridge_*
// families of bridges.Metrics, with bridge="postgres" and source
// postgres-outbox, postgres-notify or postgres-changelog; every configured
// source's series exist from the start.
func (b *Bridge) Collectors() []prometheus.Collector { return b.m.Collectors() }

// publishResult is the outcome of publishing one event.
type publishResult int

const (
	published publishResult = iota
	duplicate
	poisoned
)

// publish stores ev in the stream, retrying transient failures (NATS
// down, timeouts) with backoff until they succeed or ctx is done; it
// never skips an event that might still be published. An event that can
// never be published returns poisoned with the reason.
func (b *Bridge) publish(ctx context.Context, src string, ev Event) (publishResult, string, error) {
	bo := bridges.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := b.cl.PublishTraced(pctx, ev.Tenant, ev.Topic, ev.Data, ev.MsgID, ev.TraceParent)
		cancel()
		switch {
		case err == nil && res.Duplicate:
			b.m.Deduplicated.WithLabelValues(src).Inc()
			return duplicate, "", nil
		case err == nil:
			b.m.Forwarded.WithLabelValues(src).Inc()
			return published, "", nil
		case errors.Is(err, cluster.ErrBadTenant):
			return b.rejected(src, reasonBadTenant)
		case errors.Is(err, cluster.ErrBadTopic):
			return b.rejected(src, reasonBadTopic)
		case errors.Is(err, cluster.ErrPayloadTooLarge):
			return b.rejected(src, reasonTooLarge)
		case errors.Is(err, cluster.ErrClosed):
			return 0, "", err
		}
		if ctx.Err() != nil {
			return 0, "", ctx.Err()
		}
		d := bo.Next()
		b.log.Warn("publish failed; retrying", "source", src, "msg_id", ev.MsgID, "err", err, "in", d)
		if !bridges.Sleep(ctx, d) {
			return 0, "", ctx.Err()
		}
	}
}

func (b *Bridge) rejected(src, reason string) (publishResult, string, error) {
	b.m.Rejected.WithLabelValues(src, reason).Inc()
	return poisoned, reason, nil
}

func boolGauge(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
