package ws

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// GraphQL over SSE in the graphql-sse library's "single connection mode"
// (https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md,
// "Single connection mode"): one event stream carries every subscription
// of a client, and separate HTTP requests on the same endpoint drive it.
//
//	PUT                      reserve a stream: 201, the token (text/plain)
//	GET|POST  + token, Accept: text/event-stream
//	                         open the reserved stream (200, events follow)
//	POST      + token, {query, …, extensions:{operationId}}
//	                         subscribe: 202; results arrive on the stream
//	DELETE    + token, ?operationId=
//	                         stop one subscription: 200
//
// The token travels in the X-GraphQL-Event-Stream-Token header or the
// `token` query parameter. On the stream:
//
//	event: next
//	data: {"id":"<operationId>","payload":{"data":{…},"extensions":{"cursor":"…"}}}
//	id: <the same cursor>
//
//	event: complete
//	data: {"id":"<operationId>"}
//
// A token is "<node>.<128 random bits>": the node that holds the stream,
// and an unguessable secret. It is bound to the principal (tenant and
// user, as StreamHandler.Principal names them) that reserved it: a request
// of another principal gets 404 STREAM_NOT_FOUND, as an unknown or expired
// token does, so it learns nothing of the stream. A POST or DELETE that
// lands on another node than the token's is authenticated there and
// carried to the holder by StreamHandler.Forward (the node does it over
// NATS); a GET must reach the node that answered the PUT (421
// STREAM_ON_ANOTHER_NODE otherwise): the reservation holds that node's
// connection slot.
//
// A reservation is a connection from the PUT on: Handler.Open admits it
// (connection caps, authentication), and its Session serves the stream
// once opened. One not opened within Options.SSEReservationTimeout
// expires (its Session is closed with HandshakeFailed). Outstanding
// reservations are bounded per principal (SSEMaxReservationsPerUser) and
// per tenant (SSEMaxReservationsPerTenant), both 429 RATE_LIMITED, and per
// server (SSEMaxReservations, 503 SERVICE_UNAVAILABLE). The stream is an SSE connection as in distinct
// mode (write queue, byte budgets, slow-consumer close, keep-alives); its
// end ends every subscription on it, and the token with it.

// StreamTokenHeader is the header of a single connection mode request
// that carries the stream's token (graphql-sse TOKEN_HEADER_KEY).
const StreamTokenHeader = "X-GraphQL-Event-Stream-Token"

// streamTokenQuery is the query parameter that may carry it instead.
const streamTokenQuery = "token"

// Defaults and bounds of the reservation options.
const (
	DefaultSSEReservationTimeout = 30 * time.Second
	// MinSSEReservationTimeout and MaxSSEReservationTimeout bound
	// Options.SSEReservationTimeout: a client opens its stream right after
	// the PUT.
	MinSSEReservationTimeout           = time.Second
	MaxSSEReservationTimeout           = 5 * time.Minute
	DefaultSSEMaxReservations          = 10_000
	DefaultSSEMaxReservationsPerUser   = 16
	DefaultSSEMaxReservationsPerTenant = 1000
	// MaxOperationIDBytes bounds extensions.operationId.
	MaxOperationIDBytes = 128
)

// Error codes of single connection mode refusals.
const (
	// CodeStreamNotFound: the token names no stream this principal
	// reserved (unknown, expired, ended, or another principal's).
	CodeStreamNotFound = "STREAM_NOT_FOUND"
	// CodeStreamOnAnotherNode: the stream was reserved on another node;
	// open it (GET) where the PUT was answered.
	CodeStreamOnAnotherNode = "STREAM_ON_ANOTHER_NODE"
)

// StreamHandler is a Handler that serves single connection mode too. A
// Server whose Handler does not implement it answers 404 to PUT.
type StreamHandler interface {
	Handler
	// Principal authenticates r as Open would (same credentials, same
	// checks) and names who sent it: a reservation serves only requests
	// of the principal that made it. What precedes its first NUL byte,
	// if any, names the principal's tenant, whose reservations are
	// bounded together (Options.SSEMaxReservationsPerTenant). "" means r carries no credentials: a
	// PUT, POST or DELETE is then refused (403), a GET is admitted by its
	// token alone (EventSource cannot send headers). An error is answered
	// as Open's are (a *HTTPError with its status).
	Principal(r *http.Request) (string, error)
	// Forward carries call to the server whose StreamNode is node and
	// returns what its Server.StreamCall returned; it reports the node
	// gone as 404 STREAM_NOT_FOUND.
	Forward(ctx context.Context, node string, call StreamCall) StreamResult
}

// Operations of a StreamCall.
const (
	StreamSubscribe = "subscribe"
	StreamStop      = "stop"
)

// StreamCall is an authenticated request on a stream: what a node that
// received it hands to the node holding the stream.
type StreamCall struct {
	Op        string   `json:"op"` // StreamSubscribe or StreamStop
	Token     string   `json:"token"`
	Principal string   `json:"principal"`
	ID        string   `json:"id"` // the operation id
	Request   *Request `json:"request,omitempty"`
}

// StreamResult is the HTTP answer to a StreamCall.
type StreamResult struct {
	Status     int             `json:"status"`
	Body       json.RawMessage `json:"body,omitempty"` // a GraphQL error response, for refusals
	RetryAfter time.Duration   `json:"retryAfter,omitempty"`
}

// refusal is e as a StreamResult.
func (e *sseRequestError) result() StreamResult {
	return StreamResult{Status: e.status, Body: sseErrorBody(e), RetryAfter: e.retryAfter}
}

// StreamNotFound is the answer for a token that names no stream.
func StreamNotFound() StreamResult { return errStreamNotFound().result() }

func errStreamNotFound() *sseRequestError {
	return &sseRequestError{status: http.StatusNotFound, code: CodeStreamNotFound,
		message: "no stream for this token: reserve one (PUT) and open it"}
}

// writeStreamResult answers a request with res.
func writeStreamResult(w http.ResponseWriter, res StreamResult) {
	h := w.Header()
	if res.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((res.RetryAfter+time.Second-1)/time.Second), 10))
	}
	if len(res.Body) > 0 {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(res.Status)
	_, _ = w.Write(res.Body)
}

// wantsSSESingle reports whether r belongs to single connection mode: a PUT
// or DELETE, or a request carrying a stream token (WebSocket upgrades
// never do).
func wantsSSESingle(r *http.Request) bool {
	if headerHasToken(r.Header, "Upgrade", "websocket") {
		return false
	}
	return r.Method == http.MethodPut || r.Method == http.MethodDelete || streamToken(r) != ""
}

func streamToken(r *http.Request) string {
	if t := r.Header.Get(StreamTokenHeader); t != "" {
		return t
	}
	return r.URL.Query().Get(streamTokenQuery)
}

// StreamNode returns the name of this server in stream tokens
// (Options.NodeID).
func (s *Server) StreamNode() string { return s.opts.NodeID }

// streamNodeOf returns the node a token names, if the token is well
// formed: "<node>.<22 base64url characters>", node being 1 to 32 of
// [A-Za-z0-9_-] (a NATS subject token).
func streamNodeOf(token string) (string, bool) {
	node, secret, ok := strings.Cut(token, ".")
	if !ok || len(secret) != 22 || !validNodeID(node) {
		return "", false
	}
	for _, c := range []byte(secret) {
		if !isTokenByte(c) {
			return "", false
		}
	}
	return node, true
}

func validNodeID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, c := range []byte(id) {
		if !isTokenByte(c) {
			return false
		}
	}
	return true
}

func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// serveSSESingle serves a single connection mode request.
func (s *Server) serveSSESingle(w http.ResponseWriter, r *http.Request) {
	cross, ok := s.sseOrigin(w, r)
	if !ok {
		return
	}
	sh, ok := s.h.(StreamHandler)
	if !ok {
		writeSSERefusal(w, &sseRequestError{status: http.StatusNotFound, code: CodeBadRequest,
			message: "graphql-sse single connection mode is not served here"})
		return
	}
	switch {
	case r.Method == http.MethodPut:
		s.reserve(w, r, sh)
	case wantsSSE(r) && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		s.openStream(w, r, sh, cross)
	case r.Method == http.MethodPost || r.Method == http.MethodDelete:
		s.streamRequest(w, r, sh)
	default:
		w.Header().Set("Allow", "GET, POST, PUT, DELETE")
		writeSSERefusal(w, &sseRequestError{status: http.StatusMethodNotAllowed, code: CodeBadRequest,
			message: "with a stream token: GET or POST (Accept: text/event-stream) opens the stream, POST subscribes, DELETE stops"})
	}
}

// enterSSE is enter for an SSE request: a shutting-down server refuses it
// (503).
func (s *Server) enterSSE(w http.ResponseWriter) bool {
	if !s.enter() {
		writeSSERefusal(w, &sseRequestError{status: http.StatusServiceUnavailable, code: CodeServiceUnavailable, message: reasonShuttingDown})
		return false
	}
	return true
}

// principal authenticates a request that must carry credentials.
func (s *Server) principal(r *http.Request, sh StreamHandler, need bool) (string, *sseRequestError) {
	p, err := sh.Principal(r)
	if err != nil {
		return "", s.openRefusal(err)
	}
	if p == "" && need {
		return "", &sseRequestError{status: http.StatusForbidden, code: CodeForbidden, message: "Forbidden: missing token"}
	}
	return p, nil
}

// reserve answers a PUT: a reservation, or why not.
func (s *Server) reserve(w http.ResponseWriter, r *http.Request, sh StreamHandler) {
	if !s.enterSSE(w) {
		return
	}
	defer s.leave()
	sess, err := s.h.Open(r)
	if err != nil {
		writeSSERefusal(w, s.openRefusal(err))
		return
	}
	principal, rerr := s.principal(r, sh, true)
	var token string
	if rerr == nil {
		token, rerr = s.streams.reserve(s, principal, sess)
	}
	if rerr != nil {
		closeSession(s.log, sess, HandshakeFailed)
		writeSSERefusal(w, rerr)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(token))
}

// openStream answers a GET (or POST) with Accept: text/event-stream and a
// token: the reserved stream starts.
func (s *Server) openStream(w http.ResponseWriter, r *http.Request, sh StreamHandler, cross string) {
	token := streamToken(r)
	node, ok := streamNodeOf(token)
	if !ok {
		writeSSERefusal(w, errStreamNotFound())
		return
	}
	if node != s.opts.NodeID {
		writeSSERefusal(w, &sseRequestError{status: http.StatusMisdirectedRequest, code: CodeStreamOnAnotherNode,
			message: "the stream was reserved on another node: open it on the node that answered the PUT (a load balancer must keep a client's PUT and GET on one node)"})
		return
	}
	principal, rerr := s.principal(r, sh, false)
	if rerr != nil {
		writeSSERefusal(w, rerr)
		return
	}
	if !s.enterSSE(w) {
		return
	}
	st, rerr := s.streams.claim(token, principal)
	if rerr != nil {
		s.leave()
		writeSSERefusal(w, rerr)
		return
	}
	raw, br, ok := s.hijackSSE(w, r)
	if !ok {
		s.leave()
		s.streams.remove(token, st)
		closeSession(s.log, st.sess, HandshakeFailed)
		return
	}
	c := s.newSSEConn(raw, br, sseSingleProtocol{sseProtocol{head: sseHead(cross), cors: cross}}, r, st.sess)
	s.streams.opened(st, c)
	s.track(c)
	go func() { // owned by s, as a distinct-mode SSE connection's (see serveSSE)
		defer s.leave()
		defer s.untrack(c)
		defer s.streams.remove(token, st)
		c.serveSingle()
	}()
}

// streamRequest answers a POST (subscribe) or DELETE (stop) on a stream,
// here or on the node holding it.
func (s *Server) streamRequest(w http.ResponseWriter, r *http.Request, sh StreamHandler) {
	token := streamToken(r)
	node, ok := streamNodeOf(token)
	if !ok {
		writeSSERefusal(w, errStreamNotFound())
		return
	}
	principal, rerr := s.principal(r, sh, true)
	if rerr != nil {
		writeSSERefusal(w, rerr)
		return
	}
	call := StreamCall{Op: StreamStop, Token: token, Principal: principal}
	if r.Method == http.MethodPost {
		req, rerr := sseRequest(w, r, s.opts.ReadLimit)
		if rerr == nil {
			call.ID, rerr = operationID(req.Extensions)
		}
		if rerr != nil {
			writeSSERefusal(w, rerr)
			return
		}
		call.Op, call.Request = StreamSubscribe, &req
	} else {
		call.ID = r.URL.Query().Get("operationId")
		if rerr := checkOperationID(call.ID); rerr != nil {
			writeSSERefusal(w, rerr)
			return
		}
	}
	if node == s.opts.NodeID {
		writeStreamResult(w, s.StreamCall(call))
		return
	}
	writeStreamResult(w, sh.Forward(r.Context(), node, call))
}

// operationID reads extensions.operationId.
func operationID(ext json.RawMessage) (string, *sseRequestError) {
	var e struct {
		OperationID string `json:"operationId"`
	}
	if len(ext) > 0 {
		if err := json.Unmarshal(ext, &e); err != nil {
			return "", badSSERequest("extensions must be an object with a string operationId")
		}
	}
	return e.OperationID, checkOperationID(e.OperationID)
}

func checkOperationID(id string) *sseRequestError {
	switch {
	case id == "":
		return badSSERequest("the operation id is missing (extensions.operationId; ?operationId= to stop)")
	case len(id) > MaxOperationIDBytes:
		return badSSERequest("the operation id is longer than " + strconv.Itoa(MaxOperationIDBytes) + " bytes")
	}
	return nil
}

// StreamCall runs call on the stream this server holds: a subscription
// starts (202) or stops (200), or the refusal says why not. A token of
// another principal is answered as an unknown one (404).
func (s *Server) StreamCall(call StreamCall) StreamResult {
	c, rerr := s.streams.lookup(call.Token, call.Principal)
	if rerr != nil {
		return rerr.result()
	}
	switch {
	case call.Op == StreamSubscribe && call.Request != nil && checkOperationID(call.ID) == nil:
		return c.subscribeSingle(call.ID, *call.Request)
	case call.Op == StreamStop:
		if c.isClosing() {
			return StreamNotFound()
		}
		c.complete(call.ID)
		return StreamResult{Status: http.StatusOK}
	}
	return badSSERequest("not a stream request").result()
}

// StreamStats reports the reservations: outstanding now, and so far made,
// opened and expired.
func (s *Server) StreamStats() (pending int, reserved, opened, expired uint64) {
	s.streams.mu.Lock()
	pending = s.streams.pending
	s.streams.mu.Unlock()
	return pending, s.streams.reserved.Load(), s.streams.openedN.Load(), s.streams.expired.Load()
}

// streams holds a Server's streams, from their reservation to their end.
type streams struct {
	mu        sync.Mutex
	m         map[string]*stream // by token
	perUser   map[string]int     // outstanding reservations by principal
	perTenant map[string]int     // outstanding reservations by tenant (tenantOf)
	pending   int                // outstanding reservations
	closed    bool               // Shutdown began: no more reservations
	drop      []*stream          // reservations Shutdown took, to close (wait)

	expiring                   sync.WaitGroup // expiries closing their Session
	reserved, openedN, expired atomic.Uint64
}

// stream is one reservation, then its open stream. Guarded by streams.mu.
type stream struct {
	principal string
	sess      Session
	expiry    *time.Timer
	claimed   bool  // a GET took it
	conn      *Conn // once claimed
}

func (t *streams) init() {
	t.m = make(map[string]*stream)
	t.perUser = make(map[string]int)
	t.perTenant = make(map[string]int)
}

// tenantOf is the tenant part of a principal: up to its first NUL byte.
func tenantOf(principal string) string {
	tenant, _, _ := strings.Cut(principal, "\x00")
	return tenant
}

// newStreamToken returns "<node>.<128 random bits, base64url>".
func newStreamToken(node string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return node + "." + base64.RawURLEncoding.EncodeToString(b[:])
}

// reserve records a reservation of principal holding sess, within the
// bounds of s's options, and returns its token.
func (t *streams) reserve(s *Server, principal string, sess Session) (string, *sseRequestError) {
	token := newStreamToken(s.opts.NodeID)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return "", &sseRequestError{status: http.StatusServiceUnavailable, code: CodeServiceUnavailable, message: reasonShuttingDown}
	case t.pending >= s.opts.SSEMaxReservations:
		return "", &sseRequestError{status: http.StatusServiceUnavailable, code: CodeServiceUnavailable, retryAfter: time.Second,
			message: "node has too many stream reservations not opened yet (ws.sse_max_reservations); try another node"}
	case t.perTenant[tenantOf(principal)] >= s.opts.SSEMaxReservationsPerTenant:
		return "", &sseRequestError{status: http.StatusTooManyRequests, code: CodeRateLimited, retryAfter: s.opts.SSEReservationTimeout,
			message: "too many stream reservations not opened yet for this tenant (ws.sse_max_reservations_per_tenant)"}
	case t.perUser[principal] >= s.opts.SSEMaxReservationsPerUser:
		return "", &sseRequestError{status: http.StatusTooManyRequests, code: CodeRateLimited, retryAfter: s.opts.SSEReservationTimeout,
			message: "too many stream reservations not opened yet for this user (ws.sse_max_reservations_per_user)"}
	}
	st := &stream{principal: principal, sess: sess}
	t.m[token] = st
	t.pending++
	t.perUser[principal]++
	t.perTenant[tenantOf(principal)]++
	t.reserved.Add(1)
	st.expiry = time.AfterFunc(s.opts.SSEReservationTimeout, func() { t.expire(s.log, token, st) }) // stopped by claim or shutdown
	return token, nil
}

// unpendLocked ends st's reservation (it expired, or a GET took it).
// t.mu must be held.
func (t *streams) unpendLocked(st *stream) {
	t.pending--
	if t.perUser[st.principal]--; t.perUser[st.principal] <= 0 {
		delete(t.perUser, st.principal)
	}
	tenant := tenantOf(st.principal)
	if t.perTenant[tenant]--; t.perTenant[tenant] <= 0 {
		delete(t.perTenant, tenant)
	}
}

// expire drops a reservation that no GET took in time.
func (t *streams) expire(log *slog.Logger, token string, st *stream) {
	t.mu.Lock()
	if t.m[token] != st || st.claimed {
		t.mu.Unlock()
		return
	}
	delete(t.m, token)
	t.unpendLocked(st)
	t.expiring.Add(1)
	t.mu.Unlock()
	defer t.expiring.Done()
	t.expired.Add(1)
	closeSession(log, st.sess, HandshakeFailed)
}

// claim hands the reservation of token to a GET of principal ("": the
// token alone).
func (t *streams) claim(token, principal string) (*stream, *sseRequestError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[token]
	switch {
	case st == nil || principal != "" && principal != st.principal:
		return nil, errStreamNotFound()
	case st.claimed:
		return nil, &sseRequestError{status: http.StatusConflict, code: CodeBadRequest,
			message: "the stream of this token is open already: one stream per reservation"}
	}
	st.claimed = true
	st.expiry.Stop()
	t.unpendLocked(st)
	t.openedN.Add(1)
	return st, nil
}

// opened records the stream's connection.
func (t *streams) opened(st *stream, c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st.conn = c
}

// remove forgets a claimed stream: it ended, or never started.
func (t *streams) remove(token string, st *stream) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[token] == st {
		delete(t.m, token)
	}
}

// lookup returns the open stream of token for principal.
func (t *streams) lookup(token, principal string) (*Conn, *sseRequestError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.m[token]
	switch {
	case st == nil || principal == "" || principal != st.principal:
		return nil, errStreamNotFound()
	case st.conn == nil:
		return nil, &sseRequestError{status: http.StatusConflict, code: CodeBadRequest,
			message: "the stream of this token is not open: open it (GET, Accept: text/event-stream) first"}
	}
	return st.conn, nil
}

// shutdown takes the reservations no GET took, for wait to close, and
// refuses new ones. Open streams close as connections do.
func (t *streams) shutdown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for token, st := range t.m {
		if !st.claimed { // an expiry that fires now finds it gone
			st.expiry.Stop()
			delete(t.m, token)
			t.unpendLocked(st)
			t.drop = append(t.drop, st)
		}
	}
}

// wait closes the reservations shutdown took and waits for expiries in
// progress.
func (t *streams) wait(log *slog.Logger) {
	t.mu.Lock()
	drop := t.drop
	t.drop = nil
	t.mu.Unlock()
	for _, st := range drop {
		closeSession(log, st.sess, ServerShutdown)
	}
	t.expiring.Wait()
}

// sseSingleProtocol frames server messages as single connection mode
// events: as sseProtocol does, but each carries its operation's id.
// Client messages do not exist: requests drive the stream.
type sseSingleProtocol struct{ sseProtocol }

var _ protocol = sseSingleProtocol{}

// nextPrefix: event: next / data: {"id":"<id>","payload": — the writer
// appends the payload and "}" (appendSSEEvent).
func (sseSingleProtocol) nextPrefix(idJSON []byte) []byte {
	return concat([]byte(`event: next`+"\n"+`data: {"id":`), idJSON, []byte(`,"payload":`))
}

// completeFrame: event: complete / data: {"id":"<id>"}
func (sseSingleProtocol) completeFrame(idJSON []byte) []byte {
	return concat(sseSingleComplete, idJSON, []byte("}\n\n"))
}

var sseSingleComplete = []byte("event: complete\ndata: {\"id\":")

// errorFrame is a `next` event whose payload carries the errors; the
// writer follows it with the operation's `complete` (endSingle).
func (p sseSingleProtocol) errorFrame(idJSON []byte, errs gqlerror.List) ([]byte, error) {
	b, err := json.Marshal(struct {
		Errors gqlerror.List `json:"errors"`
	}{errs})
	if err != nil {
		return nil, err
	}
	return concat(p.nextPrefix(idJSON), b, []byte("}\n\n")), nil
}

// serveSingle runs a single connection mode stream on the calling
// goroutine until it ends: Session.Init (the reservation's credentials),
// the stream's head, then a wait for the client to go away while the
// writer streams what POSTs subscribed to.
func (c *Conn) serveSingle() {
	c.initReceived.Store(true)
	if ce := c.init(nil); ce != nil {
		c.refuseSSE(ce)
	} else {
		c.readSSE()
	}
	<-c.writerDone
	c.finish()
}

// endSingle writes a server-ended subscription's last events: its error
// (a `next` event) if any, then its `complete`. The stream goes on. Write
// goroutine, c.wmu held.
func (c *Conn) endSingle(sub *Subscription, payload []byte) bool {
	ok := c.writeText(payload, nil, nil)
	if ok && !bytes.HasPrefix(payload, sseSingleComplete) {
		ok = c.writeText(c.proto.completeFrame(sub.idJSON), nil, nil)
	}
	return ok
}

// subscribeSingle starts subscription id on the stream for a POST: 202,
// or the refusal (the GraphQL errors of Session.Subscribe, as an HTTP
// response: graphql-sse's single connection mode answers request problems
// as GraphQL over HTTP does).
func (c *Conn) subscribeSingle(id string, req Request) StreamResult {
	c.sessMu.Lock()
	switch {
	case c.isClosing():
		c.sessMu.Unlock()
		return StreamNotFound()
	case !c.singleReady.Load():
		c.sessMu.Unlock()
		return (&sseRequestError{status: http.StatusConflict, code: CodeBadRequest,
			message: "the stream of this token is not open: open it (GET, Accept: text/event-stream) first"}).result()
	}
	if _, dup := c.subs[id]; dup {
		c.sessMu.Unlock()
		return (&sseRequestError{status: http.StatusConflict, code: CodeBadRequest,
			message: "an operation with this id is active on the stream"}).result()
	}
	sub, ok, err := c.startSubLocked(id, req)
	c.sessMu.Unlock()
	if ok && err == nil {
		return StreamResult{Status: http.StatusAccepted}
	}
	sub.stop(subCancelled)
	if !ok {
		return (&sseRequestError{status: http.StatusInternalServerError, code: CodeInternal, message: reasonInternal}).result()
	}
	if ce, isClose := errors.AsType[*CloseError](err); isClose {
		c.closeWithError(ce)
		e := &sseRequestError{status: http.StatusForbidden, code: CodeForbidden, message: ce.Reason}
		if ce.Code != CloseForbidden && ce.Code != CloseUnauthorized {
			e.status, e.code = http.StatusInternalServerError, CodeInternal
		}
		return e.result()
	}
	list := c.gqlErrors(err, sub.idJSON)
	body, mErr := json.Marshal(struct {
		Errors gqlerror.List `json:"errors"`
	}{list})
	if mErr != nil {
		c.logger().Error("ws: cannot encode GraphQL error; sending a generic one", "err", mErr)
		list = internalErrors
		body, _ = json.Marshal(struct {
			Errors gqlerror.List `json:"errors"`
		}{list})
	}
	res := StreamResult{Status: http.StatusBadRequest, Body: body}
	switch code, _ := list[0].Extensions["code"].(string); code {
	case CodeRateLimited:
		res.Status = http.StatusTooManyRequests
	case CodeInternal:
		res.Status = http.StatusInternalServerError
	}
	if secs, ok := list[0].Extensions["retryAfter"].(float64); ok && secs > 0 {
		res.RetryAfter = time.Duration(secs * float64(time.Second))
	}
	return res
}
