package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/query"
	"github.com/fraiseql/subscriptions/ws"
)

// Error codes the node adds to those of package query.
const (
	CodeCursorExpired = "CURSOR_EXPIRED"
	CodeBadCursor     = "BAD_CURSOR"
	CodeInternal      = "INTERNAL_SERVER_ERROR"
	// CodeReplayBusy: too many resumes wait on this node (nats.max_replay_queue);
	// resubscribe with the same cursor after extensions.retryAfter seconds.
	CodeReplayBusy = "REPLAY_BUSY"
)

// session is one WebSocket connection's state. ws calls its methods from
// the connection's read goroutine, one at a time; Close comes last.
type session struct {
	n      *Node
	id     string                      // the connection id in every log line ("conn")
	log    atomic.Pointer[slog.Logger] // n.log with conn, tenant and user; replaced when the token names them
	tenant string
	user   userKey
	lim    limits.Config // Config.Limits resolved for tenant

	global, perUser *limits.Ticket // connection caps, released in Close
	subsCap         limits.Cap     // concurrent subscriptions of this connection

	conn       *ws.Conn       // set at Init
	identity   *auth.Identity // the verified token, once known
	authErr    error          // why the upgrade request's token was refused
	claims     map[string]any // identity's claims for query.Request
	tokenTimer *time.Timer    // closes the connection when the token expires

	mu   sync.Mutex
	subs map[*ws.Subscription]*subscription // guarded by mu

	counted *tenantGauges // the per-tenant gauges counting it (metrics.tenants), nil if none
	since   time.Time     // when connection_init succeeded (registered for the admin API)
	authed  bool          // a token identified it; set before it is registered
	iat     atomic.Int64  // its token's iat (unix seconds, 0: none); a refresh replaces it
	kicked  atomic.Bool   // an admin request is closing it

	replays sync.WaitGroup // replay goroutines of this connection's subscriptions
	held    atomic.Int64   // payload bytes its replaying subscriptions hold back (see subscription.deliver)
}

var _ ws.Handler = (*Node)(nil)
var _ ws.Session = (*session)(nil)
var _ ws.SessionLogger = (*session)(nil)

// Logger implements ws.SessionLogger: every line about the connection,
// the node's and ws's, carries its id, tenant and user.
func (s *session) Logger() *slog.Logger { return s.log.Load() }

// setLogger (re)builds the connection's logger from its identity; it runs
// at Open and when connection_init names the tenant and user.
func (s *session) setLogger() {
	s.log.Store(s.n.log.With("conn", s.id, "tenant", s.tenant, "user", s.user.user))
}

// Open implements ws.Handler: it runs before the WebSocket upgrade.
func (n *Node) Open(r *http.Request) (ws.Session, error) {
	if n.refusing.Load() {
		return nil, &ws.HTTPError{Status: http.StatusServiceUnavailable, Message: "node shutting down"}
	}
	if !n.consuming.Load() {
		// Live events would start only when the consumer does, after
		// whatever a subscription made now had replayed: a gap.
		return nil, &ws.HTTPError{Status: http.StatusServiceUnavailable, RetryAfter: time.Second,
			Message: "node not ready: its event consumer has not started yet; try another node or again shortly"}
	}
	if err := n.checkHost(r); err != nil {
		return nil, err
	}
	s := &session{
		n:      n,
		id:     n.connID(),
		tenant: n.cfg.Tenant,
		user:   userKey{tenant: n.cfg.Tenant, user: "ip:" + clientIP(r)},
		subs:   make(map[*ws.Subscription]*subscription),
	}
	s.identify(r)
	if s.identity != nil && s.identity.User != "" {
		s.user = userKey{tenant: s.identity.Tenant, user: s.identity.User}
	}
	s.setLogger()
	var err error
	if s.global, s.perUser, err = n.guards.admit(r, s.user); err != nil {
		return nil, err
	}
	s.lim = n.cfg.Limits.For(s.tenant)
	s.subsCap.Init(s.lim.MaxSubscriptionsPerConn)
	n.met.connsOpen.Add(1)
	n.met.connsTotal.Add(1)
	return s, nil
}

// Init authenticates the connection (see auth.go); without authentication
// every connection is anonymous, tenant Config.Tenant.
func (s *session) Init(ctx context.Context, c *ws.Conn, payload json.RawMessage) (json.RawMessage, error) {
	s.conn = c
	if err := s.authenticate(c, payload); err != nil {
		return nil, err
	}
	if s.counted = s.n.tenantGaugesOf(s.tenant); s.counted != nil {
		s.counted.conns.Add(1)
	}
	s.n.register(s)
	s.Logger().Debug("connection initialised", "remote", c.RemoteAddr(), "subprotocol", c.Protocol())
	return nil, nil
}

// Pong receives ping and pong payloads: a fresh token extends the connection.
func (s *session) Pong(payload json.RawMessage) { s.refresh(payload) }

// Subscribe compiles the request, registers it in the routing index and,
// when the request carries extensions.cursor, replays what it missed.
func (s *session) Subscribe(ctx context.Context, wsub *ws.Subscription, req ws.Request) (err error) {
	n := s.n
	log := s.Logger().With("sub", wsub.ID())
	if !s.subsCap.Acquire() {
		n.guards.refused.WithLabelValues(limitSubscriptionsConn).Inc()
		return s.refuseLimit(limits.SubscriptionLimit(s.lim.MaxSubscriptionsPerConn))
	}
	defer func() {
		if err != nil {
			s.subsCap.Release()
		}
	}()
	// Every attempt counts against the user's rate, valid or not, so that
	// the compiler is no cheaper a target than the index.
	if ok, retry := n.guards.subscribe.Allow(s.user); !ok {
		n.guards.refused.WithLabelValues(limitSubscribeRate).Inc()
		return s.refuseLimit(limits.RateLimited(retry))
	}
	rq, err := resumeOf(req.Extensions)
	if err != nil {
		return s.refuse(query.CodeValidationFailed, `extensions must be an object with an optional string cursor and an optional resume: "verdict"`)
	}
	cursor := rq.cursor
	compiler := n.compiler.Load()
	qreq := query.Request{
		Query:         req.Query,
		OperationName: req.OperationName,
		Variables:     req.Variables,
		Claims:        s.claims,
	}
	plan, err := compiler.Compile(qreq)
	if err != nil {
		n.met.subscribeErrors.WithLabelValues(errorCode(err)).Inc()
		return err
	}
	subject, err := n.cl.Subject(s.tenant, plan.Topic)
	if err != nil { // query escapes every value, so this is a bug, not bad input
		log.Error("plan produced an invalid subject", "topic", plan.Topic, "err", err)
		return s.refuse(CodeInternal, "internal error")
	}
	var after uint64
	resumed := time.Now()
	if cursor != "" {
		after, err = n.cl.ParseCursor(s.tenant, cursor)
		switch {
		case errors.Is(err, cluster.ErrCursorFormat):
			n.resumeDone(resumeExpired, resumed)
			return s.refuse(CodeCursorExpired, "cursor format changed; resubscribe without a cursor")
		case errors.Is(err, cluster.ErrCursorExpired):
			n.resumeDone(resumeExpired, resumed)
			return s.refuse(CodeCursorExpired, "cursor is older than the stream's retention; resubscribe without a cursor")
		case err != nil:
			n.resumeDone(resumeBad, resumed)
			return s.refuse(CodeBadCursor, "cursor is not valid")
		}
	}

	sub := &subscription{
		ws:        wsub,
		log:       log,
		plan:      plan,
		req:       qreq,
		tenant:    s.tenant,
		subject:   subject,
		replaying: cursor != "",
		maxHeld:   n.cfg.ReplayBuffer,
		maxBytes:  n.cfg.WS.MaxQueuedBytes,
		held:      &s.held,
		drops:     n.guards.eventDrops,
	}
	sub.events.Init(s.lim.EventLimit())
	sub.compiler.Store(compiler)
	s.mu.Lock()
	s.subs[wsub] = sub
	s.mu.Unlock()
	if c := n.compiler.Load(); c != compiler { // a schema reload ran meanwhile
		n.recheck(sub, c)
	}
	n.idx.add(sub)
	// With nats.ingest: interest the node receives the subject's events
	// from here on; a replay's end is read after, so nothing falls between.
	ictx, icancel := context.WithTimeout(ctx, interestTimeout)
	err = n.cl.Interest(ictx, subject)
	icancel()
	if err != nil {
		n.idx.remove(sub)
		s.mu.Lock()
		delete(s.subs, wsub)
		s.mu.Unlock()
		log.Warn("cannot receive the subject's events", "subject", subject, "err", err)
		if cursor != "" {
			n.resumeDone(resumeError, resumed)
		}
		return s.refuse(CodeInternal, "cannot receive events now; subscribe again shortly")
	}
	if s.counted != nil {
		s.counted.subs.Add(1)
	}
	n.met.subsOpen.Add(1)
	n.met.subsTotal.Add(1)
	if d := s.lim.MaxSubscriptionDuration.Std(); d > 0 {
		sub.expiry = time.AfterFunc(d, func() { // runs once; stopped by Unsubscribe
			n.guards.refused.WithLabelValues(limitLifetime).Inc()
			wsub.Expire(limitError(limits.SubscriptionExpired(d)))
		})
	}

	log.Debug("subscribed", "subject", subject, "resume", cursor != "")
	if cursor != "" {
		rctx, cancel := context.WithCancel(wsub.Conn().Context())
		sub.cancel = cancel
		s.replays.Add(1)
		go func() { // owned by s.replays; ends with the subscription or connection
			defer s.replays.Done()
			defer cancel()
			n.resumeDone(n.replay(rctx, sub, after, rq), resumed)
		}()
	}
	return nil
}

// interestTimeout bounds the wait for a subject's events to start (with
// nats.ingest: interest, a subscription and a direct get on a subject's
// first subscription).
const interestTimeout = 5 * time.Second

// maxReplayRounds bounds the replay rounds of one subscription. A round
// replays what arrived during the previous one, when more arrived than the
// subscription may hold back (replay_buffer, ws.max_queued_bytes); a client
// still behind after this many reads slower than its topic publishes and
// can never catch up.
const maxReplayRounds = 8

// replay sends what sub missed after the cursor, then switches it to live;
// it returns the result for fraiseql_resumes_total. A client that asked
// for a resume verdict (rq.verdict) gets it before the first replayed
// event (see verdictOf).
func (n *Node) replay(ctx context.Context, sub *subscription, after uint64, rq resumeRequest) (result string) {
	var buf []byte
	var start func(lost uint64) error // ReplayOrGap's: sends the verdict
	gap, round := false, 1
	if rq.verdict {
		start = func(lost uint64) error {
			if lost == 0 && round > 1 {
				return nil // recovered was said; a later round speaks only of a gap
			}
			var from, until string
			if lost > 0 {
				// From the client's cursor, or in a later round the last
				// event sent, up to the last event removed.
				from, until = rq.cursor, n.cl.Cursor(sub.tenant, lost)
				if round > 1 {
					from = n.cl.Cursor(sub.tenant, after)
				}
				gap = true
				sub.log.Debug("resumed with a gap: retention removed events after the cursor", "subject", sub.subject, "round", round)
			}
			if !sub.ws.NextWait(ctx, verdictOf(from, until)) {
				return errReplayStopped
			}
			return nil
		}
	}
	for ; ; round++ {
		var again bool
		if again, after, buf, result = n.replayRound(ctx, sub, after, buf, start); !again {
			if gap && result == resumeOK {
				result = resumeGap
			}
			return result
		}
		if ctx.Err() != nil {
			return resumeEnded
		}
		if round == maxReplayRounds {
			n.met.slowReplays.Add(1)
			sub.log.Warn("slow consumer: replay cannot catch up; closing", "subject", sub.subject, "rounds", round)
			// Counted as a slow client when the connection closes.
			sub.ws.Error(&ws.CloseError{Code: ws.CloseTryAgainLater, Reason: "slow consumer"})
			return resumeSlow
		}
	}
}

// replayRound replays the events of sub's topic after the sequence after,
// then sends the live events held back meanwhile. It reports whether
// another round is needed (the held events overflowed), and after what;
// without another round, result is the resume's (fraiseql_resumes_total).
//
// With start (a client that asked for a verdict), a cursor older than the
// retention is not an error: start learns of the gap, and the round
// replays from the first event stored (cluster.ReplayOrGap).
func (n *Node) replayRound(ctx context.Context, sub *subscription, after uint64, buf []byte, start func(lost uint64) error) (again bool, next uint64, _ []byte, result string) {
	replay := n.cl.Replay
	if start != nil {
		replay = func(ctx context.Context, tenant, topic string, after uint64, fn func(*cluster.Event) error) (uint64, error) {
			return n.cl.ReplayOrGap(ctx, tenant, topic, after, start, fn)
		}
	}
	last, err := replay(ctx, sub.tenant, sub.plan.Topic, after, func(ev *cluster.Event) error {
		var payload []byte
		var ok bool
		payload, buf, ok = n.render(sub.plan, ev, buf[:0])
		if ok {
			if !sub.sendReplayed(ctx, ev.Seq, payload) {
				return errReplayStopped
			}
			n.om.resumeReplayed.Add(1)
		}
		return nil
	})
	switch {
	case errors.Is(err, errReplayStopped) || ctx.Err() != nil:
		return false, 0, buf, resumeEnded
	case errors.Is(err, cluster.ErrCursorExpired):
		n.met.subscribeErrors.WithLabelValues(CodeCursorExpired).Inc()
		sub.ws.Error(codedError(CodeCursorExpired, "cursor is older than the stream's retention; resubscribe without a cursor"))
		return false, 0, buf, resumeExpired
	case errors.Is(err, cluster.ErrReplayBusy):
		n.met.subscribeErrors.WithLabelValues(CodeReplayBusy).Inc()
		sub.ws.Error(replayBusyError())
		return false, 0, buf, resumeBusy
	case err != nil:
		sub.log.Error("replay failed", "subject", sub.subject, "after", after, "err", err)
		sub.ws.Error(codedError(CodeInternal, "replay failed; resubscribe with the same cursor"))
		return false, 0, buf, resumeError
	}
	again, next = sub.goLive(ctx, last)
	return again, next, buf, resumeOK
}

var errReplayStopped = errors.New("replay stopped: subscription ended")

// replayBusyError is the REPLAY_BUSY refusal: retryable, with retryAfter.
func replayBusyError() *gqlerror.Error {
	return limitError(&limits.Error{
		Code:       CodeReplayBusy,
		Message:    "too many resumes waiting on this node (nats.max_replay_queue); resubscribe with the same cursor after retryAfter seconds",
		RetryAfter: cluster.ReplayRetryAfter,
	})
}

// Unsubscribe removes the subscription from the routing index.
func (s *session) Unsubscribe(wsub *ws.Subscription) {
	s.mu.Lock()
	sub := s.subs[wsub]
	delete(s.subs, wsub)
	s.mu.Unlock()
	if sub == nil {
		return
	}
	if sub.cancel != nil {
		sub.cancel()
	}
	if sub.expiry != nil {
		sub.expiry.Stop()
	}
	sub.stopHolding()
	sub.log.Debug("unsubscribed")
	s.n.idx.remove(sub)
	s.n.cl.Uninterest(sub.subject)
	s.n.met.subsOpen.Add(-1)
	if s.counted != nil {
		s.counted.subs.Add(-1)
	}
	s.subsCap.Release()
}

// Close runs once when the connection has ended, after every Unsubscribe.
func (s *session) Close(reason ws.CloseReason) {
	s.n.unregister(s)
	s.replays.Wait()
	if s.tokenTimer != nil {
		s.tokenTimer.Stop()
	}
	s.global.Release()
	s.perUser.Release()
	s.n.met.connsOpen.Add(-1)
	if s.counted != nil {
		s.counted.conns.Add(-1)
	}
	s.n.met.closed.WithLabelValues(reason.String()).Inc()
	s.Logger().Debug("connection closed", "reason", reason.String())
	if reason == ws.SlowConsumer {
		s.n.met.slowClients.Add(1)
	}
}

func (s *session) refuse(code, msg string) error {
	s.n.met.subscribeErrors.WithLabelValues(code).Inc()
	return codedError(code, msg)
}

// refuseLimit counts and converts a limits error for the client.
func (s *session) refuseLimit(e *limits.Error) error {
	s.n.met.subscribeErrors.WithLabelValues(e.Code).Inc()
	return limitError(e)
}

// limitError is e as a GraphQL error: its code, public message and
// extensions (retryAfter, limit).
func limitError(e *limits.Error) *gqlerror.Error {
	return &gqlerror.Error{Message: e.Message, Extensions: e.Extensions()}
}

// codedError is a client-facing GraphQL error with extensions.code.
func codedError(code, msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

// errorCode returns the extensions.code of a compile error, for metrics.
func errorCode(err error) string {
	var list gqlerror.List
	if errors.As(err, &list) && len(list) > 0 {
		if c, ok := list[0].Extensions["code"].(string); ok {
			return c
		}
	}
	var one *gqlerror.Error
	if errors.As(err, &one) {
		if c, ok := one.Extensions["code"].(string); ok {
			return c
		}
	}
	return CodeInternal
}

// resumeRequest is what a subscribe payload's extensions ask of a resume.
type resumeRequest struct {
	cursor  string // extensions.cursor: resume after it ("" for none)
	verdict bool   // extensions.resume is "verdict": say how the resume went
}

// resumeVerdict is the one value extensions.resume takes.
const resumeVerdict = "verdict"

// errResumeValue: extensions.resume is neither absent, null nor "verdict".
var errResumeValue = errors.New(`extensions.resume must be "verdict"`)

// resumeOf reads extensions.cursor and extensions.resume from a subscribe
// payload's extensions.
func resumeOf(ext json.RawMessage) (resumeRequest, error) {
	if len(ext) == 0 || string(ext) == "null" {
		return resumeRequest{}, nil
	}
	var e struct {
		Cursor *string `json:"cursor"`
		Resume *string `json:"resume"`
	}
	if err := json.Unmarshal(ext, &e); err != nil {
		return resumeRequest{}, err
	}
	var rq resumeRequest
	if e.Cursor != nil {
		rq.cursor = *e.Cursor
	}
	if e.Resume != nil {
		if *e.Resume != resumeVerdict {
			return resumeRequest{}, errResumeValue
		}
		rq.verdict = true
	}
	return rq, nil
}

// verdictRecovered is the payload of the `next` (legacy `data`) that tells
// a client which asked for it that its resume lost nothing. Its
// extensions carry no cursor, so an SSE client's Last-Event-ID stays that
// of the last event (ws's SSE framing gives it no id).
var verdictRecovered = []byte(`{"data":null,"extensions":{"resume":{"verdict":"recovered"}}}`)

// verdictOf returns the payload of a resume verdict: recovered when until
// is "", else gap: retention removed the events after the cursor from up
// to and including the cursor until, and the replay goes on after until.
// One small allocation per resume, never per event.
func verdictOf(from, until string) []byte {
	if until == "" {
		return verdictRecovered
	}
	type gap struct {
		Verdict string `json:"verdict"`
		After   string `json:"after"`
		Until   string `json:"until"`
	}
	type extensions struct {
		Resume gap `json:"resume"`
	}
	b, _ := json.Marshal(struct { // strings only: it cannot fail
		Data       *struct{}  `json:"data"`
		Extensions extensions `json:"extensions"`
	}{Extensions: extensions{gap{"gap", from, until}}})
	return b
}

// connID returns a new connection id: the node's random prefix and a
// counter, unique across nodes and restarts for log searches.
func (n *Node) connID() string {
	return n.idPrefix + "-" + strconv.FormatUint(n.connSeq.Add(1), 36)
}
