package limits

import (
	"fmt"
	"math"
	"time"
)

// GraphQL extensions.code values of the refusals this package produces
// (DESIGN.md, Errors).
const (
	// CodeRateLimited: too many new subscriptions for this user; retry after
	// Error.RetryAfter.
	CodeRateLimited = "RATE_LIMITED"
	// CodeSubscriptionLimit: the connection already has the maximum number
	// of active subscriptions.
	CodeSubscriptionLimit = "SUBSCRIPTION_LIMIT"
	// CodeQueryTooLarge: the subscription document exceeds MaxQueryBytes.
	CodeQueryTooLarge = "QUERY_TOO_LARGE"
	// CodeQueryTooComplex: the document exceeds MaxComplexity or MaxDepth.
	CodeQueryTooComplex = "QUERY_TOO_COMPLEX"
	// CodeFilterTooDeep: the where filter nests deeper than MaxFilterDepth.
	CodeFilterTooDeep = "FILTER_TOO_DEEP"
	// CodeFilterTooComplex: the where filter has more operands than
	// MaxFilterOperands.
	CodeFilterTooComplex = "FILTER_TOO_COMPLEX"
	// CodeSubscriptionExpired: the subscription outlived
	// MaxSubscriptionDuration; the client may resubscribe with its cursor.
	CodeSubscriptionExpired = "SUBSCRIPTION_EXPIRED"
)

// Error is a refusal by a limit, in the shape a client sees: Code becomes the
// GraphQL error's extensions.code and Message its message. Messages are
// fixed public text; they never carry internal detail.
type Error struct {
	Code    string
	Message string
	// RetryAfter is how long until the same request may succeed (rate
	// limits); zero if waiting will not help or is not needed.
	RetryAfter time.Duration
	// Limit is the limit that was exceeded and Value the amount that
	// exceeded it, in the limit's unit (bytes, levels, points,
	// subscriptions); zero when not meaningful.
	Limit, Value int64
}

var _ error = (*Error)(nil)

// Error returns "limits: CODE: message".
func (e *Error) Error() string { return "limits: " + e.Code + ": " + e.Message }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &limits.Error{Code: limits.CodeRateLimited}) matches.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Extensions returns the GraphQL error's extensions:
//
//	"code":       Code
//	"retryAfter": seconds as a JSON number, rounded up to the millisecond
//	              (e.g. 1.2); present only if 0 < RetryAfter < Never
//	"limit":      Limit, present only if non-zero
//	"value":      Value, present only if non-zero
func (e *Error) Extensions() map[string]any {
	ext := map[string]any{"code": e.Code}
	if e.RetryAfter > 0 && e.RetryAfter != Never {
		ext["retryAfter"] = math.Ceil(float64(e.RetryAfter)/float64(time.Millisecond)) / 1000
	}
	if e.Limit != 0 {
		ext["limit"] = e.Limit
	}
	if e.Value != 0 {
		ext["value"] = e.Value
	}
	return ext
}

// RetryAfterSeconds returns d in whole seconds, rounded up and at least 1,
// for an HTTP Retry-After header (which has one-second resolution).
func RetryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	return max(s, 1)
}

// RateLimited returns a RATE_LIMITED refusal to retry after retryAfter.
func RateLimited(retryAfter time.Duration) *Error {
	return &Error{Code: CodeRateLimited, Message: "too many subscribe requests; retry later", RetryAfter: retryAfter}
}

// SubscriptionLimit returns a SUBSCRIPTION_LIMIT refusal for a connection
// holding limit subscriptions already.
func SubscriptionLimit(limit int) *Error {
	return &Error{Code: CodeSubscriptionLimit, Message: fmt.Sprintf("at most %d active subscriptions per connection", limit), Limit: int64(limit)}
}

// QueryTooLarge returns a QUERY_TOO_LARGE refusal of a document of size bytes.
func QueryTooLarge(size, limit int) *Error {
	return &Error{Code: CodeQueryTooLarge, Message: fmt.Sprintf("query is %d bytes; the limit is %d", size, limit), Limit: int64(limit), Value: int64(size)}
}

// QueryTooComplex returns a QUERY_TOO_COMPLEX refusal of a document whose
// complexity is value.
func QueryTooComplex(value, limit int) *Error {
	return &Error{Code: CodeQueryTooComplex, Message: fmt.Sprintf("query complexity is %d; the limit is %d", value, limit), Limit: int64(limit), Value: int64(value)}
}

// QueryTooDeep returns a QUERY_TOO_COMPLEX refusal of a document whose
// selection sets nest depth levels.
func QueryTooDeep(depth, limit int) *Error {
	return &Error{Code: CodeQueryTooComplex, Message: fmt.Sprintf("query depth is %d; the limit is %d", depth, limit), Limit: int64(limit), Value: int64(depth)}
}

// FilterTooDeep returns a FILTER_TOO_DEEP refusal of a where filter nesting
// depth levels.
func FilterTooDeep(depth, limit int) *Error {
	return &Error{Code: CodeFilterTooDeep, Message: fmt.Sprintf("filter depth is %d; the limit is %d", depth, limit), Limit: int64(limit), Value: int64(depth)}
}

// FilterTooComplex returns a FILTER_TOO_COMPLEX refusal of a where filter of
// operands operands.
func FilterTooComplex(operands, limit int) *Error {
	return &Error{Code: CodeFilterTooComplex, Message: fmt.Sprintf("filter has %d operands; the limit is %d (max_filter_operands)", operands, limit), Limit: int64(limit), Value: int64(operands)}
}

// SubscriptionExpired returns a SUBSCRIPTION_EXPIRED error for a subscription
// that reached its maximum lifetime; the client may resubscribe (with its
// cursor, losing nothing).
func SubscriptionExpired(lifetime time.Duration) *Error {
	return &Error{Code: CodeSubscriptionExpired, Message: fmt.Sprintf("subscription reached its maximum lifetime of %s; resubscribe to continue", lifetime)}
}
