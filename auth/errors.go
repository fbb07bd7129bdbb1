package auth

// Error is why Verify refused a token. Reason is fixed, public text, safe to
// send to the client or use as a metrics label; the cause (the JWT
// library's or the file system's error) is kept for the server's log and
// reached through Unwrap, never through Error.
//
// Compare with errors.Is against the Err values below: two *Error match
// when their Reasons are equal.
type Error struct {
	Reason string
	err    error
}

var _ error = (*Error)(nil)

// Error returns the public reason only.
func (e *Error) Error() string { return e.Reason }

// Unwrap returns the cause, for logs.
func (e *Error) Unwrap() error { return e.err }

// Is reports whether target is an *Error with the same Reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// fail returns a refusal with the reason of kind and cause err.
func fail(kind *Error, err error) *Error { return &Error{Reason: kind.Reason, err: err} }

// The refusals Verify returns, by reason.
var (
	// ErrMissingToken: the connection presented no token.
	ErrMissingToken = &Error{Reason: "missing token"}
	// ErrMalformed: not a JWT, over the size limit, or a claim of the
	// wrong JSON type.
	ErrMalformed = &Error{Reason: "malformed token"}
	// ErrBadSignature: the signature does not verify with any configured
	// key, or the algorithm is not one the key sources allow (including
	// "none").
	ErrBadSignature = &Error{Reason: "bad signature"}
	// ErrUnknownKeyID: the token names a kid that no configured key has,
	// even after reloading the JWKS file.
	ErrUnknownKeyID = &Error{Reason: "unknown key id"}
	// ErrExpired: exp is past, beyond the clock skew.
	ErrExpired = &Error{Reason: "token expired"}
	// ErrNoExpiry: the token has no exp and Config.AllowNoExp is false.
	ErrNoExpiry = &Error{Reason: "token has no expiry"}
	// ErrNotYetValid: nbf or iat is in the future, beyond the clock skew.
	ErrNotYetValid = &Error{Reason: "token not yet valid"}
	// ErrWrongIssuer: iss is missing or differs from Config.Issuer.
	ErrWrongIssuer = &Error{Reason: "wrong issuer"}
	// ErrWrongAudience: aud is missing or lacks Config.Audience.
	ErrWrongAudience = &Error{Reason: "wrong audience"}
	// ErrMissingTenant: the tenant claim is absent.
	ErrMissingTenant = &Error{Reason: "missing tenant claim"}
	// ErrInvalidTenant: the tenant claim is not a string of 1 to 64 bytes
	// of [A-Za-z0-9_-].
	ErrInvalidTenant = &Error{Reason: "invalid tenant"}
)
