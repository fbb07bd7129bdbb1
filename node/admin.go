package node

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/fraiseql/subscriptions/auth"
	"github.com/fraiseql/subscriptions/ws"
)

// The admin API (Config.AdminToken) acts on connections from the ops
// listener: disconnects and revocations on every node (fleet.go). Every request carries "Authorization: Bearer <token>";
// without the token configured the routes do not exist (404).
//
//	GET  /admin/connections?tenant=T&user=U&limit=N   list connections and their subscriptions
//	POST /admin/disconnect  {"conn"|"tenant"[,"user"], "reason"}   close them with 4403
//	POST /admin/revoke      {"tenant","user","before"}   refuse the user's tokens issued before a time
//	POST /admin/reload-schema   load the schema again from its file (reload.go)
//
// Lock order: registry.sessMu, then session.mu or registry.revokeMu.

// Bounds of the admin API.
const (
	// MinAdminTokenBytes is the shortest admin token New accepts.
	MinAdminTokenBytes = 32
	adminBodyBytes     = 64 << 10 // a request body
	adminListDefault   = 1000     // connections listed without ?limit
	adminListMax       = 10_000   // the largest ?limit
	adminReasonBytes   = 100      // a disconnect reason (a close reason is at most 123 bytes)
)

// maxRevocations bounds the users with a revocation on this node; a
// variable so that tests can reach it.
var maxRevocations = 10_000

// registry holds the node's initialised connections, for the admin API.
type registry struct {
	sessMu   sync.Mutex
	sessions map[*session]struct{} // guarded by sessMu

	revokeMu sync.RWMutex
	revoked  map[userKey]time.Time // tokens issued before are refused; guarded by revokeMu
}

// register adds s once its connection_init succeeded: from then on its
// tenant and user no longer change.
func (n *Node) register(s *session) {
	s.since = time.Now()
	n.admin.sessMu.Lock()
	defer n.admin.sessMu.Unlock()
	if n.admin.sessions == nil {
		n.admin.sessions = map[*session]struct{}{}
	}
	n.admin.sessions[s] = struct{}{}
}

func (n *Node) unregister(s *session) {
	n.admin.sessMu.Lock()
	defer n.admin.sessMu.Unlock()
	delete(n.admin.sessions, s)
}

// matching returns the registered sessions f accepts, leaving out those
// an admin request is closing already.
func (n *Node) matching(f func(*session) bool) []*session {
	n.admin.sessMu.Lock()
	defer n.admin.sessMu.Unlock()
	var out []*session
	for s := range n.admin.sessions {
		if !s.kicked.Load() && f(s) {
			out = append(out, s)
		}
	}
	return out
}

// revokedToken reports whether a token of user issued at iat (unix
// seconds; 0: the token has no iat) falls under a revocation of the user.
// A token without iat cannot show it is newer: refused too.
func (n *Node) revokedToken(user userKey, iat int64) bool {
	n.admin.revokeMu.RLock()
	before, ok := n.admin.revoked[user]
	n.admin.revokeMu.RUnlock()
	return ok && (iat == 0 || time.Unix(iat, 0).Before(before))
}

// issuedAt is the token's iat claim in unix seconds, 0 when absent.
func issuedAt(id *auth.Identity) int64 {
	switch v := id.Claims["iat"].(type) {
	case json.Number:
		if f, err := v.Float64(); err == nil && f >= 1 {
			return int64(f)
		}
	case float64:
		if v >= 1 {
			return int64(v)
		}
	}
	return 0
}

// adminHandler serves /admin/ behind the bearer token.
func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/connections", n.adminList)
	mux.HandleFunc("POST /admin/disconnect", n.adminDisconnect)
	mux.HandleFunc("POST /admin/revoke", n.adminRevoke)
	mux.HandleFunc("POST /admin/reload-schema", n.adminReloadSchema)
	want := []byte("Bearer " + n.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := []byte(r.Header.Get("Authorization")); subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fraiseql-admin"`)
			adminError(w, http.StatusUnauthorized, "UNAUTHORIZED", "a valid admin token is required (Authorization: Bearer <admin token>)")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, adminBodyBytes)
		mux.ServeHTTP(w, r)
	})
}

func adminError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "error": msg})
}

func adminJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// ConnectionInfo is one connection in GET /admin/connections.
type ConnectionInfo struct {
	Conn          string             `json:"conn"`
	Tenant        string             `json:"tenant"`
	User          string             `json:"user"`
	Remote        string             `json:"remote"`
	Subprotocol   string             `json:"subprotocol"`
	Since         time.Time          `json:"since"`
	Subscriptions []SubscriptionInfo `json:"subscriptions"`
}

// SubscriptionInfo is one subscription of a connection.
type SubscriptionInfo struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
}

func (n *Node) adminList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tenant, user := q.Get("tenant"), q.Get("user")
	limit := adminListDefault
	if l := q.Get("limit"); l != "" {
		v, err := strconv.Atoi(l)
		if err != nil || v < 1 || v > adminListMax {
			adminError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("limit must be 1 to %d", adminListMax))
			return
		}
		limit = v
	}
	found := n.matching(func(s *session) bool {
		return (tenant == "" || s.tenant == tenant) && (user == "" || s.user.user == user)
	})
	slices.SortFunc(found, func(a, b *session) int { return a.since.Compare(b.since) })
	out := struct {
		Total       int              `json:"total"`
		Connections []ConnectionInfo `json:"connections"`
	}{Total: len(found), Connections: []ConnectionInfo{}}
	for _, s := range found[:min(limit, len(found))] {
		ci := ConnectionInfo{Conn: s.id, Tenant: s.tenant, User: s.user.user, Remote: s.conn.RemoteAddr(),
			Subprotocol: s.conn.Protocol(), Since: s.since.UTC(), Subscriptions: []SubscriptionInfo{}}
		s.mu.Lock()
		for wsub, sub := range s.subs {
			ci.Subscriptions = append(ci.Subscriptions, SubscriptionInfo{ID: wsub.ID(), Subject: sub.subject})
		}
		s.mu.Unlock()
		slices.SortFunc(ci.Subscriptions, func(a, b SubscriptionInfo) int { return strings.Compare(a.ID, b.ID) })
		out.Connections = append(out.Connections, ci)
	}
	adminJSON(w, out)
}

// adminDisconnect closes the connections named by conn, or by tenant (and
// user), with 4403 and the reason.
func (n *Node) adminDisconnect(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Conn   string `json:"conn"`
		Tenant string `json:"tenant"`
		User   string `json:"user"`
		Reason string `json:"reason"`
	}
	if err := decodeStrict(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
		return
	}
	switch {
	case req.Conn == "" && req.Tenant == "":
		adminError(w, http.StatusBadRequest, "BAD_REQUEST", "name a conn, or a tenant (and optionally a user of it)")
		return
	case req.Conn != "" && (req.Tenant != "" || req.User != ""):
		adminError(w, http.StatusBadRequest, "BAD_REQUEST", "name either a conn or a tenant (and user), not both")
		return
	}
	if req.Reason == "" {
		req.Reason = "disconnected by an operator"
	}
	if err := checkReason(req.Reason); err != nil {
		adminError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
		return
	}
	closed := n.disconnect(req.Conn, req.Tenant, req.User, req.Reason)
	if err := n.fleet.publishDisconnect(n, req.Conn, req.Tenant, req.User, req.Reason); err != nil {
		adminError(w, http.StatusServiceUnavailable, "CLUSTER_UNREACHABLE",
			fmt.Sprintf("closed %d connections on this node; the other nodes were not told: %v", closed, err))
		return
	}
	adminJSON(w, map[string]int{"closed": closed})
}

// disconnect closes this node's connections named by conn, or by tenant
// (and user), with 4403 and the reason; it returns how many.
func (n *Node) disconnect(conn, tenant, user, reason string) int {
	found := n.matching(func(s *session) bool {
		if conn != "" {
			return s.id == conn
		}
		return s.tenant == tenant && (user == "" || s.user.user == user)
	})
	closed := 0
	for _, s := range found {
		if s.kicked.CompareAndSwap(false, true) {
			s.Logger().Info("connection closed by an operator", "reason", reason)
			s.conn.Close(ws.CloseForbidden, "Forbidden: "+reason)
			closed++
		}
	}
	return closed
}

// adminRevoke refuses the user's tokens issued before a time, at connect
// and at refresh, and closes the user's open connections whose token was.
func (n *Node) adminRevoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Tenant string    `json:"tenant"`
		User   string    `json:"user"`
		Before time.Time `json:"before"`
	}
	if err := decodeStrict(r, &req); err != nil {
		adminError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
		return
	}
	if req.Tenant == "" || req.User == "" || req.Before.IsZero() {
		adminError(w, http.StatusBadRequest, "BAD_REQUEST", `tenant, user and before (RFC 3339, e.g. "2026-12-03T12:00:00Z") are required`)
		return
	}
	key := userKey{tenant: req.Tenant, user: req.User}
	n.admin.revokeMu.RLock()
	_, known := n.admin.revoked[key]
	full := !known && len(n.admin.revoked) >= maxRevocations
	n.admin.revokeMu.RUnlock()
	if full {
		adminError(w, http.StatusInsufficientStorage, "TOO_MANY_REVOCATIONS",
			fmt.Sprintf("this node holds revocations for %d users already; wait until the revoked tokens have expired (admin.revocation_ttl)", maxRevocations))
		return
	}
	// Stored for every node first: a revocation this node alone applied
	// would leave the user's tokens valid elsewhere.
	if err := n.fleet.storeRevocation(r.Context(), key, req.Before); err != nil {
		adminError(w, http.StatusServiceUnavailable, "CLUSTER_UNREACHABLE", "revocation not stored (nothing changed): "+err.Error())
		return
	}
	adminJSON(w, map[string]int{"closed": n.revoke(key, req.Before)})
}

// revoke refuses key's tokens issued before a time, at connect and at
// refresh, and closes its open connections whose token was; it returns
// how many it closed.
func (n *Node) revoke(key userKey, before time.Time) int {
	n.admin.revokeMu.Lock()
	if n.admin.revoked == nil {
		n.admin.revoked = map[userKey]time.Time{}
	}
	if cur, ok := n.admin.revoked[key]; !ok || before.After(cur) {
		n.admin.revoked[key] = before
	}
	n.admin.revokeMu.Unlock()
	found := n.matching(func(s *session) bool { return s.user == key && s.authed && n.revokedToken(key, s.iat.Load()) })
	closed := 0
	for _, s := range found {
		if s.kicked.CompareAndSwap(false, true) {
			s.Logger().Info("connection closed: its token was revoked by an operator")
			s.n.met.authFailures.WithLabelValues("token revoked").Inc()
			s.conn.Close(ws.CloseForbidden, "Forbidden: token revoked")
			closed++
		}
	}
	return closed
}

// decodeStrict reads one JSON object with only known fields.
func decodeStrict(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return fmt.Errorf("body over %d bytes", adminBodyBytes)
		}
		return fmt.Errorf("body is not the expected JSON object: %v", err)
	}
	return nil
}

// checkReason accepts a close reason clients may see: printable, short.
func checkReason(s string) error {
	if len(s) > adminReasonBytes {
		return fmt.Errorf("reason is %d bytes; at most %d", len(s), adminReasonBytes)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return errors.New("reason must be printable text")
		}
	}
	return nil
}
