package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reconnect backoff: reconnectBase doubled per failed attempt, capped at
// reconnectMax, plus up to 20% jitter so that N nodes do not stampede a
// restarted server.
const (
	reconnectBase = 100 * time.Millisecond
	reconnectMax  = 5 * time.Second
	// drainTimeout bounds how long Close waits for in-flight messages.
	drainTimeout = 5 * time.Second
	// The client pings its server every pingInterval and leaves it when
	// maxPingsOut pings are unanswered: a server whose host vanished
	// without closing the connection is left after 4-6 s, rather than
	// after the library's 2-4 minutes. A ping is a few bytes.
	pingInterval = 2 * time.Second
	maxPingsOut  = 2
)

// Cluster is a connection to NATS JetStream (an embedded server or an
// external one) with the event stream set up. All methods are safe for
// concurrent use.
type Cluster struct {
	cfg        Config
	log        *slog.Logger
	srv        *server.Server // nil when connected to an external server
	srvPass    string         // the embedded server's generated password
	nc         *nats.Conn
	js         jetstream.JetStream
	maxMsgSize int // effective body limit (see Open)
	metrics    *metrics

	// streamID identifies the stream incarnation in cursors: its Created
	// time in unix nanoseconds. Set through setStreamID.
	streamID atomic.Int64

	// cursor is what Cursor and ParseCursor use: nil until Open has
	// loaded the cursor keys (never on a Cluster from Connect).
	cursor atomic.Pointer[cursorState]
	// cursorMu serializes the replacements of cursor.
	cursorMu   sync.Mutex
	cursorKeys []cursorKey // guarded by cursorMu

	closed atomic.Bool

	replayState // read slots and shared stream info of Replay

	ingest *ingest // nil unless Config.Ingest is "interest"

	// Test hooks of the stream-mode consumer: refuseConsumers fails every
	// consumer creation (as when no meta leader answers); dropConsumed
	// drops the messages it returns true for, by stream sequence, as if
	// lost on the way.
	refuseConsumers atomic.Bool
	dropConsumed    atomic.Pointer[func(seq uint64) bool]

	mu        sync.Mutex
	consumers map[*Consumer]struct{}
	leases    map[*Lease]struct{}
}

// Open connects to NATS and makes sure the event stream exists with cfg's
// settings, creating or updating it, and loads the deployment's cursor
// key (Config.CursorKeyFile, or the KV bucket CursorKeyBucket, where the
// first node stores a random one).
//
// With cfg.URL empty it first starts an embedded JetStream server on
// cfg.Embedded's address (a random port unless one is set) and waits
// until it accepts connections. The connection reconnects forever, with
// capped exponential backoff and jitter, logging each disconnect and
// reconnect. Open waits for the first connection and the stream under
// ctx. An existing stream whose settings cannot be changed to cfg's
// (storage type, retention policy, …) is an error naming the stream.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Cluster, error) {
	return open(ctx, cfg, log, true)
}

// Connect is Open for clients such as a one-shot publisher: it connects to
// the external servers in cfg.URL (required; nothing is embedded) and
// looks the stream up without creating or changing it. It does not load
// the cursor key: its Cursor returns "" and its ParseCursor fails. Close
// it as a Cluster from Open.
func Connect(ctx context.Context, cfg Config, log *slog.Logger) (*Cluster, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats.url: required to connect without starting a server")
	}
	return open(ctx, cfg, log, false)
}

func open(ctx context.Context, cfg Config, log *slog.Logger, manageStream bool) (_ *Cluster, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Cluster{
		cfg:        cfg,
		log:        log,
		maxMsgSize: int(cfg.MaxMsgSize),
		metrics:    newMetrics(),
		consumers:  make(map[*Consumer]struct{}),
		leases:     make(map[*Lease]struct{}),
	}
	c.initReplays(cfg, c.metrics)
	if cfg.Ingest == IngestInterest && manageStream {
		c.ingest = newIngest()
	}
	defer func() {
		if err != nil {
			c.shutdown()
		}
	}()

	url := cfg.URL
	if url == "" {
		c.srvPass = newEmbeddedPassword()
		if c.srv, err = startEmbedded(cfg, c.srvPass, log); err != nil {
			return nil, err
		}
		url = c.EmbeddedURL()
	}
	if c.nc, err = nats.Connect(url, c.connOptions()...); err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", redactURL(url), err)
	}
	if err := waitConnected(ctx, c.nc); err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", redactURL(url), err)
	}
	c.metrics.connected.Set(1)

	// The server counts headers and body against its max_payload; an
	// external server may allow less than MaxMsgSize plus headers. Then
	// the effective body limit shrinks, loudly, rather than every large
	// publish failing inside NATS.
	if mp := int(c.nc.MaxPayload()) - headerRoom; mp < c.maxMsgSize {
		log.Warn("nats server max_payload is below nats.max_msg_size plus headers; lowering the event size limit",
			"max_payload", c.nc.MaxPayload(), "max_msg_size", cfg.MaxMsgSize, "effective", mp)
		c.maxMsgSize = max(mp, 0)
	}

	c.replayMux.nc = c.nc
	if c.js, err = jetstream.New(c.nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if !manageStream {
		if _, err := c.streamInfo(ctx); err != nil {
			return nil, err
		}
		return c, nil
	}
	if err := c.ensureStream(ctx); err != nil {
		return nil, err
	}
	if err := c.loadCursorKeys(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// streamConfig is the stream this package wants.
func (c *Cluster) streamConfig() jetstream.StreamConfig {
	cfg := c.cfg
	sc := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "FraiseQL subscription events",
		Subjects:    []string{cfg.Prefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		MaxMsgs:     -1,
		Replicas:    cfg.Replicas,
		// Headers count against the stream's limit, the body against ours.
		MaxMsgSize:  cfg.MaxMsgSize + headerRoom,
		Duplicates:  cfg.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
		AllowDirect: true,
	}
	if cfg.Ingest == IngestInterest {
		src, dst := rePublishOf(cfg.Prefix)
		sc.RePublish = &jetstream.RePublish{Source: src, Destination: dst}
	}
	return sc
}

// ensureStream creates the stream or updates it to streamConfig, and
// records its identity for cursors. While JetStream is not available yet
// (a cluster still electing its meta leader, a server still starting) it
// retries under ctx.
func (c *Cluster) ensureStream(ctx context.Context) error {
	want := c.streamConfig()
	var st jetstream.Stream
	var err error
	start := time.Now()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second) // idempotent, so a retry is safe
		if want.RePublish, err = c.keptRePublish(rctx); err == nil {
			st, err = c.js.CreateOrUpdateStream(rctx, want)
		}
		cancel()
		if err == nil || !jetStreamUnavailable(err) || ctx.Err() != nil {
			break
		}
		level := slog.LevelInfo
		if time.Since(start) > 10*time.Second {
			level = slog.LevelWarn
		}
		c.log.Log(ctx, level, "jetstream not available yet; retrying", "stream", want.Name, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if err != nil {
		return fmt.Errorf("create or update stream %q over %q: %w (an existing stream with settings that cannot be updated must be migrated or removed)",
			want.Name, want.Subjects[0], err)
	}
	info := st.CachedInfo()
	got := info.Config
	// The server may keep a field it cannot change without erroring on
	// some versions; check what we rely on.
	switch {
	case got.Retention != jetstream.LimitsPolicy:
		return fmt.Errorf("stream %q has retention %v, want limits", want.Name, got.Retention)
	case got.Storage != jetstream.FileStorage:
		return fmt.Errorf("stream %q has storage %v, want file", want.Name, got.Storage)
	case !slices.Contains(got.Subjects, want.Subjects[0]):
		return fmt.Errorf("stream %q has subjects %v, want %q", want.Name, got.Subjects, want.Subjects[0])
	}
	c.setStreamID(info.Created.UnixNano())
	c.log.Info("event stream ready", "stream", want.Name, "subjects", got.Subjects,
		"max_age", got.MaxAge, "max_bytes", got.MaxBytes, "replicas", got.Replicas,
		"first_seq", info.State.FirstSeq, "last_seq", info.State.LastSeq)
	return nil
}

// keptRePublish is the RePublish the stream should have: this node's in
// interest mode; else the existing stream's, which nodes in interest mode
// need (a node in stream mode must not remove it).
func (c *Cluster) keptRePublish(ctx context.Context) (*jetstream.RePublish, error) {
	if rp := c.streamConfig().RePublish; rp != nil {
		return rp, nil
	}
	st, err := c.js.Stream(ctx, c.cfg.Stream)
	switch {
	case err == nil:
		return st.CachedInfo().Config.RePublish, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, nil
	}
	return nil, err
}

// jetStreamUnavailable reports whether err means JetStream cannot answer
// yet, rather than that it refused the request.
func jetStreamUnavailable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503: temporarily unavailable, insufficient resources (peers
		// still joining); 10005: no suitable peers for placement yet.
		return apiErr.Code == 503 || apiErr.ErrorCode == 10005
	}
	// No response from stream: a stream (the stream, or a KV bucket's)
	// whose replicas are still electing their leader.
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoStreamResponse)
}

func (c *Cluster) connOptions() []nats.Option {
	cfg := c.cfg
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			c.metrics.connected.Set(0)
			if c.closed.Load() {
				return
			}
			c.log.Warn("nats disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.metrics.connected.Set(1)
			c.metrics.reconnects.Inc()
			if c.ingest != nil {
				c.ingest.kick() // events republished meanwhile were lost
			}
			c.log.Info("nats reconnected", "url", redactURL(nc.ConnectedUrl()))
		}),
		nats.ClosedHandler(func(*nats.Conn) { c.metrics.connected.Set(0) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if c.ingest != nil && errors.Is(err, nats.ErrSlowConsumer) {
				c.ingest.kick() // republished events were dropped
			}
			if sub != nil {
				c.log.Warn("nats async error", "subject", sub.Subject, "error", err)
				return
			}
			c.log.Warn("nats async error", "error", err)
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	return opts
}

// reconnectDelay is the wait before reconnect attempt n (1-based).
func reconnectDelay(attempts int) time.Duration {
	d := reconnectMax
	if attempts < 16 {
		d = min(reconnectBase<<max(attempts-1, 0), reconnectMax)
	}
	return d + rand.N(d/5+1)
}

// waitConnected waits, under ctx, for the first connection of a conn
// created with RetryOnFailedConnect.
func waitConnected(ctx context.Context, nc *nats.Conn) error {
	if nc.IsConnected() {
		return nil
	}
	ch := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(ch)
	for {
		if nc.IsConnected() {
			return nil
		}
		select {
		case <-ch:
			if nc.IsClosed() {
				return nats.ErrConnectionClosed
			}
		case <-ctx.Done():
			if err := nc.LastError(); err != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return ctx.Err()
		}
	}
}

// redactURL drops credentials from NATS URLs before they are logged.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndexByte(p, '@'); at >= 0 {
			scheme, _, ok := strings.Cut(p, "://")
			if ok {
				parts[i] = scheme + "://redacted@" + p[at+1:]
			} else {
				parts[i] = "redacted@" + p[at+1:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// Close stops every consumer and lease, drains the connection and shuts
// the embedded server down, waiting for each. It is idempotent and
// leaves no goroutine of this package running.
func (c *Cluster) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.shutdown()
	return nil
}

// shutdown releases everything Open set up; Open calls it on failure.
func (c *Cluster) shutdown() {
	c.closed.Store(true)
	c.mu.Lock()
	consumers := make([]*Consumer, 0, len(c.consumers))
	for k := range c.consumers {
		consumers = append(consumers, k)
	}
	leases := make([]*Lease, 0, len(c.leases))
	for l := range c.leases {
		leases = append(leases, l)
	}
	c.mu.Unlock()

	for _, l := range leases {
		l.Release()
	}
	c.stopReplays()
	// Signal every consumer first, so none waits on a request that the
	// closing connection will fail anyway, then close and wait.
	for _, k := range consumers {
		k.signalStop()
	}
	if c.nc != nil {
		c.closeConn()
	}
	for _, k := range consumers {
		k.Stop()
	}
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
		c.log.Info("embedded nats stopped")
	}
}

// closeConn drains the connection (bounded by drainTimeout) and waits
// until it is closed.
func (c *Cluster) closeConn() {
	if c.nc.IsClosed() {
		return
	}
	done := c.nc.StatusChanged(nats.CLOSED)
	if !c.nc.IsConnected() || c.nc.Drain() != nil {
		c.nc.Close()
		return
	}
	select {
	case <-done:
	case <-time.After(drainTimeout):
		c.nc.Close()
	}
}

// ClientURL returns the address of the NATS server, without credentials
// (safe to log or print): the embedded server's actual address, or the
// URL currently connected to. The embedded server refuses clients that
// do not authenticate; see EmbeddedURL.
func (c *Cluster) ClientURL() string {
	if c.srv != nil {
		return c.srv.ClientURL()
	}
	return c.nc.ConnectedUrlRedacted()
}

// EmbeddedURL returns the embedded server's URL with its credentials,
// nats://fraiseql:<password>@host:port, which any NATS client accepts
// (nats.go, the nats CLI's --server). The password is random and new at
// every start, so the URL is a secret: keep it in a file only its owner
// can read. It is "" when connected to an external server.
func (c *Cluster) EmbeddedURL() string {
	if c.srv == nil {
		return ""
	}
	u, err := url.Parse(c.srv.ClientURL())
	if err != nil { // the server formats it; never happens
		return ""
	}
	u.User = url.UserPassword(EmbeddedUser, c.srvPass)
	return u.String()
}

// Prefix returns the subject prefix.
func (c *Cluster) Prefix() string { return c.cfg.Prefix }

// StreamName returns the event stream's name.
func (c *Cluster) StreamName() string { return c.cfg.Stream }

// MaxMsgSize returns the largest event body Publish accepts.
func (c *Cluster) MaxMsgSize() int { return c.maxMsgSize }

// Conn returns the NATS connection. Callers must not close it.
func (c *Cluster) Conn() *nats.Conn { return c.nc }

// JetStream returns the JetStream handle on Conn.
func (c *Cluster) JetStream() jetstream.JetStream { return c.js }

// Ready returns nil while the connection to NATS is up. It answers from
// the client's own state, sending nothing, so a readiness probe is instant
// and a broker-wide event that every node sees alike (a stream leader
// election, a slow API) does not make every node unready at once; a node
// cut off from NATS is unready.
func (c *Cluster) Ready() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.nc.IsConnected() {
		return fmt.Errorf("nats: %s", c.nc.Status())
	}
	return nil
}

// RefreshStream asks the server for the stream's info, refreshing the
// identity cursors carry (the stream may have been deleted and recreated).
// A running consumer does so every streamRefresh.
func (c *Cluster) RefreshStream(ctx context.Context) error {
	if err := c.errClosedIf(); err != nil {
		return err
	}
	_, err := c.streamInfo(ctx)
	return err
}

// streamInfo fetches the stream's info and refreshes streamID.
func (c *Cluster) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	st, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %q: %w", c.cfg.Stream, err)
	}
	info := st.CachedInfo()
	id := info.Created.UnixNano()
	if old := c.setStreamID(id); old != 0 && old != id {
		c.log.Warn("event stream was recreated; older cursors are expired", "stream", c.cfg.Stream)
	}
	return info, nil
}

// errClosedIf returns ErrClosed once Close has started.
func (c *Cluster) errClosedIf() error {
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}
