package ws

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// GraphQL over Server-Sent Events, the graphql-sse library's protocol in
// its "distinct connections" mode: one HTTP request (Accept:
// text/event-stream) carries one subscription, in a POST body or in GET
// query parameters, on the same endpoint as WebSocket. The response is an
// event stream:
//
//	event: next
//	data: {"data":{…},"extensions":{"cursor":"…"}}
//	id: <the same cursor>
//
//	event: complete
//	data:
//
// An SSE connection is a Conn like a WebSocket one: the same Session
// (Open, Init, Subscribe, Unsubscribe, Close), the same write queue and
// byte budgets, the same Fanout write rounds and slow-consumer closes. Only
// the framing differs: a `next` event is prefix + payload + the id line,
// written from the shared payload, with no copy of its own. What the
// framing needs to know of a payload (its line breaks, its cursor) a
// Fanout reads once per payload, not once per connection (sseMeta).
//
// Before the stream starts, refusals are HTTP responses whose body is a
// GraphQL error ({"errors":[{"message","extensions":{"code"}}]}): a
// malformed request (400 BAD_REQUEST), a body over Options.ReadLimit (413
// QUERY_TOO_LARGE), a disallowed Origin or a refused token (403
// FORBIDDEN), connection caps (429 RATE_LIMITED, 503
// SERVICE_UNAVAILABLE). Once the request is well formed and authorised,
// the stream starts (200), and the subscription's own errors — validation,
// limits, CURSOR_EXPIRED — arrive as a `next` event carrying `errors`,
// then `complete`, as the protocol requires (an EventSource cannot read
// the body of a non-200 response).
//
// The server ends the stream after `complete`; the client ends the
// subscription by closing the request. A reconnect with Last-Event-ID
// resumes after that cursor (it becomes extensions.cursor), on any node.

// SubprotocolSSE names the graphql-sse transport in logs and metrics
// (Conn.Protocol).
const SubprotocolSSE = "graphql-sse"

// Bounds of Options.SSEKeepAlive.
const (
	DefaultSSEKeepAlive = 15 * time.Second
	// MinSSEKeepAlive: a comment more often is traffic for nothing.
	MinSSEKeepAlive = time.Second
	// MaxSSEKeepAlive: proxies commonly drop a response idle for 60 s or
	// more; beyond a few minutes keep-alives would not keep any open.
	MaxSSEKeepAlive = 5 * time.Minute
)

// sseTrailingLimit bounds what a client may send after its request (an
// SSE client sends nothing): more closes the connection.
const sseTrailingLimit = 4 << 10

// SSE framing.
var (
	sseNextPrefix = []byte("event: next\ndata: ")
	sseComplete   = []byte("event: complete\ndata:\n\n")
	sseKeepAlive  = []byte(":\n\n")
	sseDataLine   = []byte("\ndata: ")
	sseIDLine     = []byte("\nid: ")
	sseEventEnd   = []byte("\n\n")
	sseCursorKey  = []byte(`"cursor":"`)
	sseObjectsEnd = []byte(`}}`)
	sseQuote      = []byte(`"`)
	sseDroppedKey = []byte(`,"dropped":`)
)

// sseHead starts the stream (the kindAck frame of an SSE connection);
// cors is the allowed Origin of a cross-origin request, or "".
func sseHead(cors string) []byte {
	return []byte("HTTP/1.1 200 OK\r\n" +
		"Content-Type: text/event-stream; charset=utf-8\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Connection: close\r\n" +
		"X-Accel-Buffering: no\r\n" +
		corsHeaders(cors) + "\r\n")
}

// corsHeaders are the header lines that let a page of the allowed origin
// cors read a response ("" for none).
func corsHeaders(cors string) string {
	if cors == "" {
		return ""
	}
	return "Access-Control-Allow-Origin: " + cors + "\r\n" +
		"Access-Control-Allow-Credentials: true\r\n" +
		"Vary: Origin\r\n"
}

// sseProtocol frames server messages as SSE events. Client messages do
// not exist: the request is the only one.
type sseProtocol struct {
	head []byte // the response head (sseHead)
	cors string // the allowed Origin of a cross-origin request, or ""
}

var _ streamProtocol = sseProtocol{}

func (sseProtocol) name() string                       { return SubprotocolSSE }
func (sseProtocol) messageType(string) (msgType, bool) { return 0, false }
func (sseProtocol) nextPrefix([]byte) []byte           { return sseNextPrefix }
func (sseProtocol) completeFrame([]byte) []byte        { return sseComplete }
func (p sseProtocol) ackFrame(json.RawMessage) []byte  { return p.head }
func (sseProtocol) keepAliveFrame() []byte             { return sseKeepAlive }
func (sseProtocol) keepAliveOnAck() bool               { return false }
func (sseProtocol) handle(*Conn, clientMessage)        {}
func (sseProtocol) badMessage(*Conn, *CloseError)      {}
func (p sseProtocol) allowedOrigin() string            { return p.cors }

// closeNote is the comment that says why the stream ends (see closeSSE).
func (sseProtocol) closeNote(code CloseCode, text string) []byte {
	return []byte(": close " + strconv.Itoa(int(code)) + " " + text + "\n\n")
}

// errorFrame is a `next` event whose result carries the errors; the
// writer follows it with `complete` (see Conn.writeFrame).
func (sseProtocol) errorFrame(_ []byte, errs gqlerror.List) ([]byte, error) {
	b, err := json.Marshal(struct {
		Errors gqlerror.List `json:"errors"`
	}{errs})
	if err != nil {
		return nil, err
	}
	return concat(sseNextPrefix, b, sseEventEnd), nil
}

// appendSSENext appends one `next` event: prefix, the payload as data
// lines, and the cursor found at the payload's end as the event's id. m
// is the payload's sseMeta, or the zero sseMeta to read the payload here.
// It allocates nothing beyond buf's growth.
func appendSSENext(buf, prefix, payload []byte, m sseMeta) []byte {
	return appendSSEEvent(buf, prefix, payload, nil, m)
}

// appendSSEEvent is appendSSENext with end written after the payload
// (single connection mode closes the {"id","payload"} object there).
func appendSSEEvent(buf, prefix, payload, end []byte, m sseMeta) []byte {
	if m.flags&sseKnown == 0 {
		m = sseMetaOf(payload)
	}
	buf = append(buf, prefix...)
	if m.flags&sseLines == 0 {
		buf = append(buf, payload...)
	} else {
		// A JSON text holds a line break only as whitespace between
		// tokens (strings escape theirs): each one starts a new data
		// line, which the client joins back with "\n".
		for p := payload; ; {
			i := sseLineBreak(p)
			if i < 0 {
				buf = append(buf, p...)
				break
			}
			buf = append(buf, p[:i]...)
			buf = append(buf, sseDataLine...)
			p = p[i+1:]
		}
	}
	buf = append(buf, end...)
	if m.idLen > 0 {
		stop := len(payload) - int(m.idEnd)
		buf = append(buf, sseIDLine...)
		buf = append(buf, payload[stop-int(m.idLen):stop]...)
	}
	return append(buf, sseEventEnd...)
}

// sseMeta is what framing a payload as an SSE event needs to know of it:
// whether it holds a line break, and where its cursor is. A Fanout finds
// it once per distinct payload (sseMetaCache) and queues it with the
// frame of every SSE connection it pushes that payload to, so that a
// delivery copies the shared payload without reading it; the zero sseMeta
// (a frame queued by Subscription.Next) has the payload read at framing.
// It fits in the padding of a frame.
type sseMeta struct {
	// The cursor is payload[len(payload)-idEnd-idLen : len(payload)-idEnd];
	// idLen 0: the payload has none.
	idEnd, idLen uint16
	flags        uint8 // sseKnown, sseLines
}

const (
	sseKnown uint8 = 1 << iota // the sseMeta is set
	sseLines                   // the payload holds a line break
)

// sseMetaOf reads payload for its sseMeta.
func sseMetaOf(payload []byte) sseMeta {
	m := sseMeta{flags: sseKnown}
	if sseLineBreak(payload) >= 0 {
		m.flags |= sseLines
	}
	if id, tail := sseCursor(payload); len(id) > 0 && len(id) <= math.MaxUint16 && tail <= math.MaxUint16 {
		m.idLen, m.idEnd = uint16(len(id)), uint16(tail)
	}
	return m
}

// sseLineBreak returns the index of the first CR or LF of p, or -1. It
// reads p up to its first LF, so splitting a payload at every line break
// reads it once.
func sseLineBreak(p []byte) int {
	lf := bytes.IndexByte(p, '\n')
	if lf < 0 {
		lf = len(p)
	}
	if cr := bytes.IndexByte(p[:lf], '\r'); cr >= 0 {
		return cr
	}
	if lf == len(p) {
		return -1
	}
	return lf
}

// sseCursor returns the cursor of a payload the node encoded as
// {…,"extensions":{"cursor":"<cursor>"}}, or {…"cursor":"<cursor>",
// "dropped":<n>}} for a subscriber that missed events (URL-safe base64:
// nothing to escape), and the number of bytes after it; or nil for any
// other payload. It reads the payload from its end, no further than the
// cursor's key.
func sseCursor(payload []byte) (id []byte, tail int) {
	p, ok := bytes.CutSuffix(payload, sseObjectsEnd)
	if !ok {
		return nil, 0
	}
	digits := len(p)
	for digits > 0 && p[digits-1] >= '0' && p[digits-1] <= '9' {
		digits--
	}
	if digits < len(p) && bytes.HasSuffix(p[:digits], sseDroppedKey) {
		p = p[:digits-len(sseDroppedKey)]
	}
	if p, ok = bytes.CutSuffix(p, sseQuote); !ok {
		return nil, 0
	}
	// The cursor holds no quote: its key ends at the last one.
	q := bytes.LastIndexByte(p, '"')
	if q < 0 || !bytes.HasSuffix(p[:q+1], sseCursorKey) {
		return nil, 0
	}
	id = p[q+1:]
	if len(id) == 0 {
		return nil, 0
	}
	for _, c := range id {
		if c == '\\' || c == '\r' || c == '\n' || c == 0 {
			return nil, 0
		}
	}
	return id, len(payload) - len(p)
}

// wantsSSE reports whether r asks for an event stream rather than a
// WebSocket upgrade.
func wantsSSE(r *http.Request) bool {
	if headerHasToken(r.Header, "Upgrade", "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Accept") {
		for t := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(t, ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// sseRequestError is a refusal answered with an HTTP status and a
// GraphQL error body.
type sseRequestError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
}

func (e *sseRequestError) Error() string { return e.message }

// Error codes of SSE refusals that are not GraphQL errors of a
// subscription.
const (
	CodeBadRequest         = "BAD_REQUEST"
	CodeForbidden          = "FORBIDDEN"
	CodeRateLimited        = "RATE_LIMITED"
	CodeQueryTooLarge      = "QUERY_TOO_LARGE"
	CodeServiceUnavailable = "SERVICE_UNAVAILABLE"
	CodeInternal           = "INTERNAL_SERVER_ERROR"
)

func badSSERequest(msg string) *sseRequestError {
	return &sseRequestError{status: http.StatusBadRequest, code: CodeBadRequest, message: msg}
}

// sseRequest reads the GraphQL request of r: the JSON body of a POST (at
// most limit bytes), or the query parameters of a GET (query,
// operationName, variables and extensions as JSON). A Last-Event-ID header
// becomes extensions.cursor.
func sseRequest(w http.ResponseWriter, r *http.Request, limit int64) (Request, *sseRequestError) {
	var req Request
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			return req, &sseRequestError{status: http.StatusRequestEntityTooLarge, code: CodeQueryTooLarge,
				message: "request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
		}
		if err != nil {
			return req, badSSERequest("cannot read the request body")
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return req, badSSERequest("request body must be a JSON object {query, operationName, variables, extensions}")
		}
	case http.MethodGet:
		q := r.URL.Query()
		req.Query, req.OperationName = q.Get("query"), q.Get("operationName")
		for _, p := range []struct {
			name string
			dst  *json.RawMessage
		}{{"variables", &req.Variables}, {"extensions", &req.Extensions}} {
			if v := q.Get(p.name); v != "" {
				if !json.Valid([]byte(v)) {
					return req, badSSERequest(p.name + " must be JSON")
				}
				*p.dst = json.RawMessage(v)
			}
		}
	default:
		return req, &sseRequestError{status: http.StatusMethodNotAllowed, code: CodeBadRequest,
			message: "GraphQL over SSE takes GET or POST"}
	}
	if req.Query == "" {
		return req, badSSERequest("the request has no query")
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		ext, err := withCursor(req.Extensions, id)
		if err != nil {
			return req, badSSERequest("extensions must be a JSON object")
		}
		req.Extensions = ext
	}
	if string(req.Variables) == "null" {
		req.Variables = nil
	}
	if string(req.Extensions) == "null" {
		req.Extensions = nil
	}
	return req, nil
}

// withCursor returns extensions with its cursor set to id: the
// Last-Event-ID of a reconnect is newer than any cursor in the URL.
func withCursor(ext json.RawMessage, id string) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(ext) > 0 && string(ext) != "null" {
		if err := json.Unmarshal(ext, &m); err != nil {
			return nil, err
		}
	}
	m["cursor"] = jsonString(id)
	return json.Marshal(m)
}

// checkOrigin applies Options.OriginPatterns as coder/websocket does for
// an upgrade: no Origin (not a browser) or the request's own host passes;
// another origin passes only if its host matches a pattern, and is
// returned (cross) for the CORS headers that let the page read the
// response.
func checkOrigin(r *http.Request, patterns []string) (cross string, err error) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return "", nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || strings.ContainsAny(origin, "\r\n") {
		return "", errors.New("origin header is not a URL")
	}
	if strings.EqualFold(r.Host, u.Host) {
		return "", nil
	}
	host := strings.ToLower(u.Host)
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), host); ok {
			return origin, nil
		}
	}
	return "", errors.New("origin " + strconv.Quote(origin) + " is not allowed")
}

// wantsPreflight reports whether r is a CORS preflight request.
func wantsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// preflight answers a CORS preflight for an SSE request from a page of an
// allowed origin (Options.OriginPatterns): GET or POST, with the headers
// graphql-sse clients send. Other origins get 403.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	cross, err := checkOrigin(r, s.opts.OriginPatterns)
	if err != nil || cross == "" {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", cross)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Last-Event-ID, "+StreamTokenHeader)
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusNoContent)
}

// serveSSE serves one graphql-sse request (distinct connections mode).
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	s.serveStream(w, r, s.opts.SSEKeepAlive, func(cross string) streamProtocol {
		return sseProtocol{head: sseHead(cross), cors: cross}
	})
}

// serveStream serves one subscription over a streamed HTTP/1.1 response
// (graphql-sse distinct connections mode, multipart): the origin check,
// the request, Handler.Open, then the hijacked connection becomes a Conn
// speaking the protocol newProto returns for the allowed cross origin (""
// for none), with a keep-alive every keepAlive.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, keepAlive time.Duration, newProto func(cross string) streamProtocol) {
	cross, ok := s.sseOrigin(w, r)
	if !ok {
		return
	}
	req, rerr := sseRequest(w, r, s.opts.ReadLimit)
	if rerr != nil {
		writeSSERefusal(w, rerr)
		return
	}
	if !s.enterSSE(w) {
		return
	}
	sess, err := s.h.Open(r)
	if err != nil {
		s.leave()
		writeSSERefusal(w, s.openRefusal(err))
		return
	}
	raw, br, ok := s.hijackSSE(w, r)
	if !ok {
		s.leave()
		closeSession(s.log, sess, HandshakeFailed)
		return
	}
	c := s.newSSEConn(raw, br, newProto(cross), r, sess)
	c.kaEvery = keepAlive
	s.track(c)
	go func() { // owned by s, as a WebSocket connection's read goroutine (see ServeHTTP)
		defer s.leave()
		defer s.untrack(c)
		c.serveSSE(req)
	}()
}

// sseOrigin checks r's Origin (checkOrigin) and, for a page of an allowed
// origin, sets the CORS headers on every answer, refusals too (the page
// reads why). It reports false once it refused r.
func (s *Server) sseOrigin(w http.ResponseWriter, r *http.Request) (cross string, ok bool) {
	cross, err := checkOrigin(r, s.opts.OriginPatterns)
	if err != nil {
		writeSSERefusal(w, &sseRequestError{status: http.StatusForbidden, code: CodeForbidden, message: err.Error()})
		return "", false
	}
	if cross != "" {
		w.Header().Set("Access-Control-Allow-Origin", cross)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Add("Vary", "Origin")
	}
	return cross, true
}

// hijackSSE takes r's connection over for an event stream. It reports
// false once it answered or closed r: HTTP/2 cannot be hijacked, and the
// stream needs HTTP/1.1.
func (s *Server) hijackSSE(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.Reader, bool) {
	raw, brw, err := http.NewResponseController(w).Hijack()
	if err == nil {
		err = brw.Writer.Flush()
	}
	if err == nil {
		return raw, brw.Reader, true
	}
	s.log.Debug("http stream: hijack failed", "remote", r.RemoteAddr, "proto", r.Proto, "err", err)
	if raw == nil {
		writeSSERefusal(w, &sseRequestError{status: http.StatusHTTPVersionNotSupported, code: CodeBadRequest,
			message: "a subscription over HTTP needs HTTP/1.1"})
	} else {
		_ = raw.Close()
	}
	return nil, nil, false
}

// newSSEConn makes the Conn of an HTTP stream on raw (br: what the
// client sent after its request), framed by p: an SSE event stream of
// either mode, or a multipart response; gzip-encoded when the server is
// configured for it and r accepts it (streamBatch).
func (s *Server) newSSEConn(raw net.Conn, br *bufio.Reader, p protocol, r *http.Request, sess Session) *Conn {
	_, single := p.(sseSingleProtocol)
	batch := s.streamBatch(raw, r)
	batch.single = single
	_, batch.multipart = p.(multipartProtocol)
	c := newConn(nil, raw, batch, p, r.RemoteAddr, &s.opts, sess, &s.budget)
	c.kaEvery = s.opts.SSEKeepAlive
	c.sseIn = br
	c.single = single
	c.sseEvents = !batch.multipart
	c.flushes, c.slow = &s.flushes, &s.slow
	return c
}

// openRefusal maps a Handler.Open error to its SSE refusal.
func (s *Server) openRefusal(err error) *sseRequestError {
	he, ok := errors.AsType[*HTTPError](err)
	if !ok || he.Status < 400 || he.Status > 599 {
		s.log.Error("sse: open failed", "err", err)
		return &sseRequestError{status: http.StatusInternalServerError, code: CodeInternal, message: reasonInternal}
	}
	e := &sseRequestError{status: he.Status, message: he.Message, retryAfter: he.RetryAfter}
	switch {
	case he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden:
		e.code = CodeForbidden
	case he.Status == http.StatusTooManyRequests:
		e.code = CodeRateLimited
	case he.Status == http.StatusServiceUnavailable:
		e.code = CodeServiceUnavailable
	case he.Status >= 500:
		e.code = CodeInternal
	default:
		e.code = CodeBadRequest
	}
	if e.message == "" {
		e.message = http.StatusText(he.Status)
	}
	return e
}

// sseErrorBody is the GraphQL response of a refusal.
func sseErrorBody(e *sseRequestError) []byte {
	b, _ := json.Marshal(struct {
		Errors gqlerror.List `json:"errors"`
	}{gqlerror.List{{Message: e.message, Extensions: map[string]any{"code": e.code}}}})
	return b
}

// writeSSERefusal answers a request refused before its stream started.
func writeSSERefusal(w http.ResponseWriter, e *sseRequestError) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(e.retryAfter.Seconds())), 10))
	}
	w.WriteHeader(e.status)
	_, _ = w.Write(sseErrorBody(e))
}

// rawSSERefusal is writeSSERefusal on a hijacked connection (a refusal by
// Session.Init, which runs once the connection is a Conn).
func rawSSERefusal(e *sseRequestError, cors string) []byte {
	body := sseErrorBody(e)
	return []byte("HTTP/1.1 " + strconv.Itoa(e.status) + " " + http.StatusText(e.status) + "\r\n" +
		"Content-Type: application/json; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		corsHeaders(cors) +
		"Connection: close\r\n\r\n" + string(body))
}

// serveSSE runs an SSE connection on the calling goroutine until it ends:
// Session.Init (the request's credentials), the stream's head, the
// subscription, then a wait for the client to go away while the writer
// streams.
func (c *Conn) serveSSE(req Request) {
	c.initReceived.Store(true)
	if ce := c.init(nil); ce != nil {
		c.refuseSSE(ce)
	} else {
		c.subscribe("sse", req)
		c.readSSE()
	}
	<-c.writerDone
	c.finish()
}

// refuseSSE answers an Init refusal with an HTTP error and closes. Nothing
// was queued or written before it.
func (c *Conn) refuseSSE(ce *CloseError) {
	e := &sseRequestError{status: http.StatusForbidden, code: CodeForbidden, message: ce.Reason}
	if ce.Code != CloseForbidden && ce.Code != CloseUnauthorized {
		e.status, e.code = http.StatusInternalServerError, CodeInternal
	}
	c.setClose(ce.Code, ce.Reason, reasonForCode(ce.Code), true)
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	_, _ = c.raw.Write(rawSSERefusal(e, c.proto.(streamProtocol).allowedOrigin()))
	c.startClosing()
}

// readSSE waits for the client to close its end. An SSE client sends
// nothing after its request: what it sends is discarded, up to
// sseTrailingLimit.
func (c *Conn) readSSE() {
	n, _ := io.Copy(io.Discard, io.LimitReader(c.sseIn, sseTrailingLimit+1))
	if n > sseTrailingLimit {
		c.closeWith(CloseBadRequest, "unexpected data after the request", BadMessage)
		return
	}
	c.setClose(CloseNormal, reasonNormal, ClientClosed, true)
	c.startClosing()
}

// closeSSE ends an SSE connection (closeSocket): when the close is not the
// client's, the socket's or a normal end, a comment saying why (": close
// <code> <reason>", the WebSocket close code it stands for) is offered to
// the socket without waiting — a slow consumer's full socket, or half an
// event left unwritten, gets none — with the end of a gzip body, then the
// socket closes. Write goroutine only.
func (c *Conn) closeSSE() {
	code, text, why, hard := c.closeInfo()
	if !hard && c.sseStarted && !c.batch.open() {
		var note []byte
		if code != CloseNormal {
			note = c.proto.(streamProtocol).closeNote(code, text)
		}
		note = c.batch.endBody(note) // a gzip body ends here
		c.wmu.Lock()
		switch {
		case len(note) == 0:
		case c.direct.ok():
			_, _ = c.direct.tryWrite(note)
		case c.raw.SetWriteDeadline(time.Now().Add(sseNoteTimeout)) == nil:
			_, _ = c.raw.Write(note)
		}
		c.wmu.Unlock()
	}
	c.logger().Debug("sse: closing", "code", int(code), "reason", why.String())
	_ = c.raw.Close()
}

// sseNoteTimeout bounds the write of the closing comment where it cannot
// be written without waiting (TLS in process).
const sseNoteTimeout = 100 * time.Millisecond

// endSSE writes a server-ended subscription's last events — its error as
// a `next` event, then `complete` — and ends the stream: an SSE
// connection carries one subscription. Write goroutine, c.wmu held.
func (c *Conn) endSSE(payload []byte) bool {
	ok := c.writeText(payload, nil, nil)
	if end := c.proto.completeFrame(nil); ok && !bytes.Equal(payload, end) {
		ok = c.writeText(end, nil, nil)
	}
	c.setClose(CloseNormal, "complete", ServerClosed, false)
	c.startClosing()
	return ok
}

// sseMetaCache holds the sseMeta of the payloads a Fanout is pushing to
// SSE connections, so that each payload is read once for all of them
// rather than once per delivery. Like deflateCache it is keyed by the
// payload itself and emptied by Routed and by every write pass, while the
// payloads are alive and unchanged (Subscription.Next). The payload found
// again is kept in entries[0], out of reach of the copies (with
// "dropped") that come one per subscriber and take the other entries in
// turn.
type sseMetaCache struct {
	entries [4]sseMetaEntry
	next    int  // the entry to replace, 1 to len(entries)-1
	used    bool // an entry is set
}

type sseMetaEntry struct {
	payload []byte // nil: free
	meta    sseMeta
}

// meta returns payload's sseMeta, reading payload the first time.
func (c *sseMetaCache) meta(payload []byte) sseMeta {
	if len(payload) == 0 {
		return sseMetaOf(payload)
	}
	for i := range c.entries {
		e := &c.entries[i]
		if len(e.payload) == len(payload) && &e.payload[0] == &payload[0] {
			m := e.meta
			if i > 0 {
				c.entries[0], c.entries[i] = c.entries[i], c.entries[0]
			}
			return m
		}
	}
	m := sseMetaOf(payload)
	if c.next == 0 {
		c.next = 1
	}
	c.entries[c.next] = sseMetaEntry{payload: payload, meta: m}
	c.next = c.next%(len(c.entries)-1) + 1
	c.used = true
	return m
}

// reset forgets the cached payloads.
func (c *sseMetaCache) reset() {
	if c.used {
		c.entries = [len(c.entries)]sseMetaEntry{}
		c.next, c.used = 0, false
	}
}
