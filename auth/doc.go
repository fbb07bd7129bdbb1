// Package auth authenticates WebSocket connections: it verifies the JWT a
// client presents (in connection_init, the upgrade request's Authorization
// header, or a cookie) and returns the connection's Identity, whose Tenant
// names the subjects the connection may read (DESIGN.md, "Subjects": the
// tenant comes from the authenticated connection, never from the query).
//
// Verification is golang-jwt/jwt/v5's; this package chooses the keys and
// algorithms, reads the claims, and turns every refusal into an *Error with
// a fixed, public Reason. Keys come from an HS256 secret, PEM public key
// files, and a JWKS file that is reloaded when it changes. There is no JWKS
// URL fetcher: a sidecar or cron job that writes the file keeps network
// access, retries and TLS policy out of the edge node.
//
// # Concurrency
//
// A Verifier is safe for concurrent use. With a JWKS file it owns one
// goroutine that polls the file; Close stops it and waits. Verify reads the
// key set through an atomic pointer; a reload on an unknown kid takes a
// mutex, and happens at most once a second whatever the traffic.
//
// # Threat model
//
// The attacker controls everything a client sends: the token, its header
// (alg, kid), its claims, the init payload, the query. The node's
// configuration and key files are trusted.
//
// A forged token (any signature made without a configured key) is refused
// with "bad signature" or "unknown key id" before a single claim is read.
// The algorithm is taken from the token only to be checked against a list
// derived from the key sources: "none" is never on it, HS256 only when a
// secret is configured, RS256/ES256 only with public keys, and each
// algorithm is handed keys of its own type only. So the classic algorithm
// confusion (an HS256 token "signed" with the RSA public key as its secret)
// fails: HS256 is verified with the configured secret or not at all. A kid
// selects among configured keys and nothing else; it is never a path or a
// URL. Unknown kids cost at most one JWKS file read a second.
//
// An expired token (exp past by more than ClockSkew), a not-yet-valid one
// (nbf or iat in the future by more than ClockSkew) and, by default, one
// without exp are refused. The check is made when the connection
// authenticates: a connection outlives its token unless the node closes it
// at Identity.Expires, which the node, not this package, must do.
//
// A token for another tenant is, by construction, a valid identity in that
// tenant: whoever holds a validly signed token for tenant B reads B's
// subjects and nothing else. No token can reach more than one tenant: the
// tenant claim must be one subject token of [A-Za-z0-9_-] (1 to 64 bytes),
// so "*", ">", "a.b", "" and anything longer are refused with "invalid
// tenant", and the query cannot name a tenant at all. A token with no
// tenant claim is refused ("missing tenant claim"), never defaulted.
//
// Within a tenant, roles and claims reach query's @requires guards and
// {claims.x} topics; both are only as trustworthy as the issuer that signed
// them. Issuer and Audience, when set, stop tokens minted for another
// service by the same identity provider.
//
// What this package cannot do: revoke a token before its exp (keep tokens
// short-lived, rotate keys through the JWKS file); protect a leaked secret
// or private key; detect replay of a stolen, unexpired token (use TLS, and
// prefer the init payload or a cookie over query strings, which end up in
// logs). Mode "none" turns all of this off: every connection becomes the
// anonymous identity in AnonymousTenant. It is for development only.
//
// Refusal reasons are fixed strings ("token expired", "bad signature", …)
// that reveal nothing of the keys or the library's internals; the cause,
// for the server's log, is reached through errors.Unwrap.
package auth
