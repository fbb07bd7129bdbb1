package ws

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// CloseCode is a WebSocket close status. The 44xx/4500 values are the ones
// graphql-ws defines (enisdenjo/graphql-ws docs/enums/CloseCode.md); the
// 1xxx values are RFC 6455 codes. The legacy graphql-ws subprotocol defines
// no close codes of its own, so this package uses the same numbers there.
type CloseCode int

const (
	// CloseNormal ends a connection normally (client connection_terminate).
	CloseNormal CloseCode = 1000
	// CloseGoingAway is sent to every connection when the server shuts down;
	// the client reconnects (possibly to another node) and resumes by cursor.
	CloseGoingAway CloseCode = 1001
	// CloseInvalidPayload is sent for a text message that is not valid
	// UTF-8 (RFC 6455 §8.1: "Invalid frame payload data").
	CloseInvalidPayload CloseCode = 1007
	// CloseMessageTooBig is sent when a client message exceeds Options.ReadLimit.
	CloseMessageTooBig CloseCode = 1009
	// CloseTryAgainLater is sent to a slow consumer: its write queue filled up
	// or a write took longer than Options.WriteTimeout.
	CloseTryAgainLater CloseCode = 1013
	// CloseBadRequest is sent for a message the protocol does not allow:
	// invalid JSON, unknown type, missing id or query, binary frame.
	CloseBadRequest CloseCode = 4400
	// CloseUnauthorized is sent for a subscribe (legacy: start) before the
	// connection was acknowledged.
	CloseUnauthorized CloseCode = 4401
	// CloseForbidden is sent when Session.Init rejects the connection.
	CloseForbidden CloseCode = 4403
	// CloseInitTimeout is sent when no connection_init arrives within
	// Options.InitTimeout.
	CloseInitTimeout CloseCode = 4408
	// CloseDuplicateID is sent for a subscribe whose id is already active.
	CloseDuplicateID CloseCode = 4409
	// CloseTooManyInits is sent for a second connection_init.
	CloseTooManyInits CloseCode = 4429
	// CloseInternal is sent when the server fails in a way the client cannot
	// fix (a Session panicked or returned an invalid ack payload).
	CloseInternal CloseCode = 4500
)

// maxCloseReason is the longest close reason a close frame can carry:
// 125 bytes of control payload minus the 2-byte code (RFC 6455 §5.5).
const maxCloseReason = 123

// Fixed, public close reasons. They never carry internal error text.
const (
	reasonInvalidJSON    = "Invalid message received"
	reasonUnknownType    = "Unknown message type"
	reasonMissingID      = "Message requires an id"
	reasonInvalidPayload = "Invalid message payload"
	reasonMissingQuery   = "Subscribe payload requires a query"
	reasonBinary         = "Binary messages are not supported"
	reasonInvalidUTF8    = "Text message is not valid UTF-8"
	reasonUnauthorized   = "Unauthorized"
	reasonForbidden      = "Forbidden"
	reasonInitTimeout    = "Connection initialisation timeout"
	reasonTooManyInits   = "Too many initialisation requests"
	reasonInternal       = "Internal server error"
	reasonShuttingDown   = "server shutting down"
	reasonSlowConsumer   = "slow consumer"
	reasonMessageTooBig  = "message too big"
	reasonNormal         = "normal closure"
)

// CloseError asks the connection to close with Code and Reason. Session
// methods return it (see Session), and Subscription.Error accepts it, to
// close the whole connection instead of failing one subscription. Find it
// with errors.As.
//
// Reason is sent to the client as is, so it must be fixed, public text of at
// most 123 bytes (longer reasons are cut at a UTF-8 boundary); never put an
// internal error's text in it — log that instead.
type CloseError struct {
	Code   CloseCode
	Reason string
}

var _ error = (*CloseError)(nil)

func (e *CloseError) Error() string {
	return "ws: close " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// HTTPError refuses a connection before the WebSocket upgrade. Handler.Open
// returns it to answer with Status (and a Retry-After header when RetryAfter
// is positive) instead of upgrading. Message is the response body; it is
// public text.
type HTTPError struct {
	Status     int
	Message    string
	RetryAfter time.Duration
}

var _ error = (*HTTPError)(nil)

func (e *HTTPError) Error() string {
	return fmt.Sprintf("ws: http %d: %s", e.Status, e.Message)
}

// CloseReason says why a connection ended. It is passed to Session.Close and
// is meant as a metrics label (see String); there is one value per way a
// connection can end.
type CloseReason int

const (
	// ClientClosed: the client sent a close frame or connection_terminate.
	ClientClosed CloseReason = iota
	// ConnectionLost: the socket failed without a close handshake (EOF,
	// reset, write error).
	ConnectionLost
	// BadMessage: the client sent a message the protocol does not allow
	// (4400), or a text message that is not valid UTF-8 (1007).
	BadMessage
	// InitTimeout: no connection_init within Options.InitTimeout (4408).
	InitTimeout
	// Unauthorized: subscribe before connection_ack (4401), or a Session
	// closed the connection with 4401.
	Unauthorized
	// Forbidden: Session.Init rejected the connection (4403).
	Forbidden
	// DuplicateID: subscribe with an id that is already active (4409).
	DuplicateID
	// TooManyInits: a second connection_init (4429).
	TooManyInits
	// SlowConsumer: the write queue filled up or a write timed out (1013).
	SlowConsumer
	// MessageTooBig: a client message exceeded Options.ReadLimit (1009).
	MessageTooBig
	// ServerShutdown: Server.Shutdown closed the connection (1001).
	ServerShutdown
	// ServerClosed: the Session closed the connection (Conn.Close or a
	// *CloseError with a code not listed above).
	ServerClosed
	// InternalError: a Session panicked or misbehaved (4500).
	InternalError
	// HandshakeFailed: Handler.Open accepted but the WebSocket upgrade failed.
	HandshakeFailed

	numCloseReasons
)

var closeReasonNames = [numCloseReasons]string{
	ClientClosed:    "client_closed",
	ConnectionLost:  "connection_lost",
	BadMessage:      "bad_message",
	InitTimeout:     "init_timeout",
	Unauthorized:    "unauthorized",
	Forbidden:       "forbidden",
	DuplicateID:     "duplicate_id",
	TooManyInits:    "too_many_inits",
	SlowConsumer:    "slow_consumer",
	MessageTooBig:   "message_too_big",
	ServerShutdown:  "server_shutdown",
	ServerClosed:    "server_closed",
	InternalError:   "internal_error",
	HandshakeFailed: "handshake_failed",
}

// String returns the reason in snake_case, for use as a metrics label.
func (r CloseReason) String() string {
	if r >= 0 && r < numCloseReasons {
		return closeReasonNames[r]
	}
	return "unknown"
}

// reasonForCode maps a close code chosen by a Session to the CloseReason
// reported for it.
func reasonForCode(code CloseCode) CloseReason {
	switch code {
	case CloseBadRequest, CloseInvalidPayload:
		return BadMessage
	case CloseUnauthorized:
		return Unauthorized
	case CloseForbidden:
		return Forbidden
	case CloseInitTimeout:
		return InitTimeout
	case CloseDuplicateID:
		return DuplicateID
	case CloseTooManyInits:
		return TooManyInits
	case CloseInternal:
		return InternalError
	case CloseGoingAway:
		return ServerShutdown
	case CloseMessageTooBig:
		return MessageTooBig
	case CloseTryAgainLater:
		return SlowConsumer
	}
	return ServerClosed
}

// validCloseCode reports whether code may be sent in a close frame
// (RFC 6455 §7.4: 1000–1003, 1007–1014, 3000–4999).
func validCloseCode(code CloseCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// truncateReason cuts s to fit a close frame without splitting a UTF-8
// sequence, and replaces invalid UTF-8 (close reasons must be valid UTF-8).
func truncateReason(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= maxCloseReason {
		return s
	}
	cut := maxCloseReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
