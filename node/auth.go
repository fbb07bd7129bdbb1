package node

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/ws"
)

// Authentication. With Config.Auth set (mode jwt), a connection must
// present a valid token: in the connection_init payload
// ({"Authorization":"Bearer …"} or {"token":"…"}) or on the upgrade request
// (Authorization header or the configured cookie); the init payload wins.
// A missing or invalid token closes the connection with 4403 before
// anything is sent. The token's tenant claim is the connection's tenant,
// for every subject it can reach; its claims feed {claims.x} topics and
// @requires guards.
//
// A token that expires while connected (exp plus auth.clock_skew, the
// leeway it was verified with) closes the connection with 4403,
// unless the client first sends a fresh token for the same tenant and user
// in a graphql-transport-ws `ping` payload ({"type":"ping","payload":
// {"token":"…"}}). Legacy graphql-ws clients reconnect with a new token and
// resume by cursor.

// authenticated reports whether connections must present a token.
func (n *Node) authenticated() bool {
	return n.cfg.Auth != nil && n.cfg.Auth.Mode() == auth.ModeJWT
}

// userOf is the user a verified token speaks for — a token without a
// user claim speaks for fallback, the peer's address, as anonymous users
// do — and whether that user's tokens of its age were revoked (counted as
// an auth failure).
func (n *Node) userOf(id *auth.Identity, fallback string) (user userKey, revoked bool) {
	user = userKey{tenant: id.Tenant, user: id.User}
	if id.User == "" {
		user.user = fallback
	}
	if n.revokedToken(user, issuedAt(id)) {
		n.met.authFailures.WithLabelValues("token revoked").Inc()
		return user, true
	}
	return user, false
}

// identify reads a token from the upgrade request, before admission, so
// that per-user connection caps apply to the user when it is known then.
func (s *session) identify(r *http.Request) {
	if !s.n.authenticated() {
		return
	}
	if tok := s.n.cfg.Auth.TokenFromRequest(r); tok != "" {
		s.identity, s.authErr = s.n.cfg.Auth.Verify(tok)
	}
}

// authenticate resolves the connection's identity at connection_init and
// applies it: tenant, user, claims, per-tenant limits, token expiry.
func (s *session) authenticate(c *ws.Conn, payload json.RawMessage) error {
	if !s.n.authenticated() {
		return nil
	}
	if tok := auth.TokenFromInit(payload); tok != "" {
		s.identity, s.authErr = s.n.cfg.Auth.Verify(tok)
	}
	if s.identity == nil {
		err := s.authErr
		if err == nil {
			err = auth.ErrMissingToken
		}
		s.n.met.authFailures.WithLabelValues(reasonOf(err)).Inc()
		return forbidden(reasonOf(err))
	}
	id := s.identity
	user, revoked := s.n.userOf(id, s.user.user) // no user claim: the peer address, as for anonymous users
	if revoked {
		return forbidden("token revoked")
	}
	if user != s.user {
		// The user became known at init: move the per-user connection
		// ticket from the address to the user.
		t, ok := s.n.guards.userConns.AcquireTicket(user)
		if !ok {
			s.n.guards.refused.WithLabelValues(limitMaxConnsPerUser).Inc()
			return forbidden("too many connections for this user")
		}
		s.perUser.Release()
		s.perUser, s.user = t, user
	}
	s.tenant = id.Tenant
	s.authed = true
	s.iat.Store(issuedAt(id))
	s.setLogger()
	s.claims = id.RequestClaims()
	s.lim = s.n.cfg.Limits.For(s.tenant)
	s.subsCap.Init(s.lim.MaxSubscriptionsPerConn)
	if !id.Expires.IsZero() {
		s.tokenTimer = time.AfterFunc(s.n.untilExpired(id), func() { // stopped in Close
			s.n.met.authFailures.WithLabelValues("token expired while connected").Inc()
			c.Close(ws.CloseForbidden, "Forbidden: token expired")
		})
	}
	return nil
}

// refresh takes a fresh token from a ping payload: same tenant and user,
// later expiry. An invalid one closes the connection.
func (s *session) refresh(payload json.RawMessage) {
	if !s.n.authenticated() || s.identity == nil {
		return
	}
	tok := auth.TokenFromInit(payload)
	if tok == "" {
		return
	}
	id, err := s.n.cfg.Auth.Verify(tok)
	if err == nil && (id.Tenant != s.identity.Tenant || id.User != s.identity.User) {
		err = &auth.Error{Reason: "token is for another tenant or user"}
	}
	if err == nil && s.n.revokedToken(s.user, issuedAt(id)) {
		err = &auth.Error{Reason: "token revoked"}
	}
	if err != nil {
		s.n.met.authFailures.WithLabelValues(reasonOf(err)).Inc()
		if s.conn != nil {
			s.conn.Close(ws.CloseForbidden, "Forbidden: "+reasonOf(err))
		}
		return
	}
	s.identity = id
	s.iat.Store(issuedAt(id))
	s.claims = id.RequestClaims()
	if s.tokenTimer != nil && !id.Expires.IsZero() {
		s.tokenTimer.Reset(s.n.untilExpired(id))
	}
}

// untilExpired is how long until id's token is refused as expired: its exp
// plus auth.clock_skew, the leeway Verify grants it too. A token that
// Verify accepted within the skew is not closed at once.
func (n *Node) untilExpired(id *auth.Identity) time.Duration {
	return time.Until(id.Expires) + n.cfg.Auth.ClockSkew()
}

func forbidden(reason string) error {
	return &ws.CloseError{Code: ws.CloseForbidden, Reason: "Forbidden: " + reason}
}

// reasonOf is the public reason of an auth error (never library text).
func reasonOf(err error) string {
	if e, ok := err.(*auth.Error); ok {
		return e.Reason
	}
	return "invalid token"
}
