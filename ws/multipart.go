package ws

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Multipart HTTP subscriptions, the protocol of Apollo Router and Apollo
// Client's HttpLink
// (https://www.apollographql.com/docs/graphos/routing/operations/subscriptions/multipart-protocol):
// one request whose Accept holds multipart/mixed with
// subscriptionSpec=1.0 (a POST body or GET query parameters, as for SSE)
// carries one subscription, on the same endpoint as WebSocket. The
// response is multipart/mixed;boundary="graphql";subscriptionSpec="1.0":
//
//	\r\n--graphql                                          (opens the body)
//	\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{"payload":{"data":{…},"extensions":{"cursor":"…"}}}\r\n--graphql
//	\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{}\r\n--graphql   (heartbeat)
//	--\r\n                                                 (the end: "\r\n--graphql--\r\n")
//
// Each part is followed by its delimiter, as Apollo Router writes them:
// clients (Apollo Client's readMultipartBody) hand a part over when they
// see the delimiter after it, so a part is delivered when it is written,
// not when the next one starts.
//
// A multipart connection is an SSE connection with another framing (see
// serveStream, Conn.serveSSE): the same Session, limits, write queue, byte
// budgets and slow-consumer closes. A `next` part is prefix + the shared
// payload + a constant suffix, with no copy of its own. Refusals before
// the stream are those of SSE (HTTP status, GraphQL error body); errors of
// the subscription are a part {"payload":{"errors":[…]}}, then the end;
// when the node closes the stream for another reason (shutdown, expired
// token) it writes {"payload":null,"errors":[…]} (a transport error, in
// the protocol's words), then the end. The cursor of each result is its
// extensions.cursor; a request with extensions.cursor resumes.

// SubprotocolMultipart names the multipart HTTP transport in logs and
// metrics (Conn.Protocol).
const SubprotocolMultipart = "multipart-http"

// Bounds of Options.MultipartHeartbeat.
const (
	// DefaultMultipartHeartbeat is Apollo Router's interval.
	DefaultMultipartHeartbeat = 5 * time.Second
	// MinMultipartHeartbeat: a heartbeat more often is traffic for nothing.
	MinMultipartHeartbeat = time.Second
	// MaxMultipartHeartbeat: proxies commonly drop a response idle for 60 s
	// or more; beyond a few minutes heartbeats would not keep any open.
	MaxMultipartHeartbeat = 5 * time.Minute
)

// Multipart framing.
const multipartPartHeader = "\r\ncontent-type: application/json; charset=utf-8\r\n\r\n"

var (
	multipartOpen       = []byte("\r\n--graphql")
	multipartPartHead   = []byte(multipartPartHeader)
	multipartNextPrefix = []byte(multipartPartHeader + `{"payload":`)
	// multipartNextEnd ends a `next` part: the payload object, then the
	// delimiter that lets the client read the part.
	multipartNextEnd   = []byte("}\r\n--graphql")
	multipartHeartbeat = []byte(multipartPartHeader + "{}\r\n--graphql")
	multipartEnd       = []byte("--\r\n")
	multipartErrorsKey = []byte(`{"payload":{"errors":`)
	multipartErrorsEnd = []byte(`}}`)
)

// multipartContentType is the response's Content-Type.
const multipartContentType = `multipart/mixed;boundary="graphql";subscriptionSpec="1.0"`

// multipartHead starts the stream (the kindAck frame of a multipart
// connection): the response head, then the first delimiter; cors is the
// allowed Origin of a cross-origin request, or "".
func multipartHead(cors string) []byte {
	return []byte("HTTP/1.1 200 OK\r\n" +
		"Content-Type: " + multipartContentType + "\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Connection: close\r\n" +
		"X-Accel-Buffering: no\r\n" +
		corsHeaders(cors) + "\r\n" + string(multipartOpen))
}

// streamProtocol is a protocol served on a hijacked HTTP response (SSE,
// multipart).
type streamProtocol interface {
	protocol
	// allowedOrigin is the Origin of a cross-origin request the CORS
	// headers allow, or "".
	allowedOrigin() string
	// closeNote says why the node ends the stream (close code and public
	// reason); it is offered to the socket without waiting (closeSSE).
	closeNote(code CloseCode, text string) []byte
}

// multipartProtocol frames server messages as parts. Client messages do
// not exist: the request is the only one.
type multipartProtocol struct {
	head []byte // the response head (multipartHead)
	cors string // the allowed Origin of a cross-origin request, or ""
}

var _ streamProtocol = multipartProtocol{}

func (multipartProtocol) name() string                       { return SubprotocolMultipart }
func (multipartProtocol) messageType(string) (msgType, bool) { return 0, false }
func (multipartProtocol) nextPrefix([]byte) []byte           { return multipartNextPrefix }
func (multipartProtocol) completeFrame([]byte) []byte        { return multipartEnd }
func (p multipartProtocol) ackFrame(json.RawMessage) []byte  { return p.head }
func (multipartProtocol) keepAliveFrame() []byte             { return multipartHeartbeat }
func (multipartProtocol) keepAliveOnAck() bool               { return false }
func (multipartProtocol) handle(*Conn, clientMessage)        {}
func (multipartProtocol) badMessage(*Conn, *CloseError)      {}
func (p multipartProtocol) allowedOrigin() string            { return p.cors }

// errorFrame is a part whose payload is a result carrying the errors; the
// writer follows it with the end (see Conn.endSSE).
func (multipartProtocol) errorFrame(_ []byte, errs gqlerror.List) ([]byte, error) {
	b, err := json.Marshal(errs)
	if err != nil {
		return nil, err
	}
	return concat(multipartPartHead, multipartErrorsKey, b, multipartErrorsEnd, multipartOpen), nil
}

// closeNote is a transport error part, {"payload":null,"errors":[…]},
// then the end. The error's code says what the client does (see
// transportErrorCode); extensions.closeCode is the WebSocket close code
// the node would have used.
func (multipartProtocol) closeNote(code CloseCode, text string) []byte {
	b, _ := json.Marshal(struct {
		Payload *struct{}     `json:"payload"`
		Errors  gqlerror.List `json:"errors"`
	}{nil, gqlerror.List{{Message: text, Extensions: map[string]any{
		"code": transportErrorCode(code), "closeCode": int(code)}}}})
	return concat(multipartPartHead, b, multipartOpen, multipartEnd)
}

// transportErrorCode is the error code of a stream the node closes with
// the WebSocket close code code.
func transportErrorCode(code CloseCode) string {
	switch code {
	case CloseGoingAway, CloseTryAgainLater:
		return CodeServiceUnavailable
	case CloseForbidden, CloseUnauthorized:
		return CodeForbidden
	case CloseBadRequest, CloseMessageTooBig, CloseInvalidPayload:
		return CodeBadRequest
	}
	return CodeInternal
}

// appendMultipartNext appends one `next` part: prefix, the payload, the
// end of the part and its delimiter. It allocates nothing beyond buf's
// growth.
func appendMultipartNext(buf, prefix, payload []byte) []byte {
	buf = append(buf, prefix...)
	buf = append(buf, payload...)
	return append(buf, multipartNextEnd...)
}

// wantsMultipart reports whether r asks for a multipart subscription
// response (Accept: multipart/mixed with subscriptionSpec=1.0, quoted or
// not) rather than a WebSocket upgrade.
func wantsMultipart(r *http.Request) bool {
	if headerHasToken(r.Header, "Upgrade", "websocket") {
		return false
	}
	for _, v := range r.Header.Values("Accept") {
		for t := range strings.SplitSeq(v, ",") {
			params := strings.Split(t, ";")
			if !strings.EqualFold(strings.TrimSpace(params[0]), "multipart/mixed") {
				continue
			}
			for _, p := range params[1:] {
				k, val, _ := strings.Cut(p, "=")
				if strings.EqualFold(strings.TrimSpace(k), "subscriptionSpec") && strings.Trim(strings.TrimSpace(val), `"`) == "1.0" {
					return true
				}
			}
		}
	}
	return false
}

// serveMultipart serves one multipart subscription request.
func (s *Server) serveMultipart(w http.ResponseWriter, r *http.Request) {
	s.serveStream(w, r, s.opts.MultipartHeartbeat, func(cross string) streamProtocol {
		return multipartProtocol{head: multipartHead(cross), cors: cross}
	})
}
