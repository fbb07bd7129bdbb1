package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/ws"
)

// graphql-sse single connection mode across a cluster (ws/sse_single.go
// has the protocol). A stream lives on the node that answered its PUT and
// GET: its token starts with that node's id (n.idPrefix, random per
// start). A POST (subscribe) or DELETE (stop) may land on any node behind
// a load balancer without sticky sessions: the node that receives it
// authenticates it (Principal: the same credentials and checks as Open),
// then sends it as a NATS request on "_admin.<prefix>.sse.<node id>" to
// the holder, which checks that the principal is the one that reserved
// the stream and answers with the HTTP result (202, 200, or the coded
// refusal) that the receiving node returns. No node answers (the holder
// is gone, and its streams with it): 404 STREAM_NOT_FOUND.
//
// The principal travels inside the cluster's NATS, which the nodes trust
// as they trust it for admin disconnects and revocations.

var _ ws.StreamHandler = (*Node)(nil)

// streamKind is the admin request kind a node serves its streams' calls
// on.
func streamKind(node string) string { return "sse." + node }

// forwardTimeout bounds a forwarded call: a subscribe may wait for its
// subject's events to start (interestTimeout) on the holder.
const forwardTimeout = interestTimeout + 5*time.Second

// Forward results, the `result` label of fraiseql_sse_forwarded_total.
const (
	forwardOK          = "ok"
	forwardNotFound    = "no_node"
	forwardUnreachable = "unreachable"
)

// streamMetrics count single connection mode's cross-node calls.
type streamMetrics struct {
	forwarded *prometheus.CounterVec // sent to the holder, by result
	served    prometheus.Counter     // received from another node
}

// registerStreamMetrics exports the reservations (ws.Server.StreamStats)
// and the forwarded calls.
func (n *Node) registerStreamMetrics() {
	n.sm = &streamMetrics{
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_sse_forwarded_total",
			Help: "graphql-sse single connection mode requests (subscribe, stop) forwarded to the node holding the stream, by result: ok (answered), no_node (no node holds it: 404), unreachable (no answer in time: 503).",
		}, []string{"result"}),
		served: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fraiseql_sse_forwarded_served_total",
			Help: "graphql-sse single connection mode requests another node forwarded to this one, which holds the stream.",
		}),
	}
	for _, r := range []string{forwardOK, forwardNotFound, forwardUnreachable} {
		n.sm.forwarded.WithLabelValues(r)
	}
	n.reg.MustRegister(n.sm.forwarded, n.sm.served,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fraiseql_sse_reservations",
			Help: "graphql-sse single connection mode reservations (PUT) not opened yet; each holds a connection slot.",
		}, func() float64 { p, _, _, _ := n.wss.StreamStats(); return float64(p) }))
	for outcome, v := range map[string]func() uint64{
		"reserved": func() uint64 { _, r, _, _ := n.wss.StreamStats(); return r },
		"opened":   func() uint64 { _, _, o, _ := n.wss.StreamStats(); return o },
		"expired":  func() uint64 { _, _, _, e := n.wss.StreamStats(); return e },
	} {
		n.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fraiseql_sse_reservations_total",
			Help:        "graphql-sse single connection mode reservations, by outcome: reserved (PUT answered 201), opened (its stream started), expired (not opened within ws.sse_reservation_timeout).",
			ConstLabels: prometheus.Labels{"outcome": outcome},
		}, func() float64 { return float64(v()) }))
	}
}

// Principal implements ws.StreamHandler: who sent r, by the credentials
// Open reads (Authorization header, auth.cookie). With authentication,
// the token's tenant and user (a token without a user claim: its tenant
// and the client's address); without, the client's address in the node's
// tenant, as per-user limits key anonymous users. "": r carries no token.
func (n *Node) Principal(r *http.Request) (string, error) {
	if err := n.checkHost(r); err != nil {
		return "", err
	}
	anon := "ip:" + clientIP(r)
	if !n.authenticated() {
		return n.cfg.Tenant + "\x00" + anon, nil
	}
	tok := n.cfg.Auth.TokenFromRequest(r)
	if tok == "" {
		return "", nil
	}
	id, err := n.cfg.Auth.Verify(tok)
	if err != nil {
		n.met.authFailures.WithLabelValues(reasonOf(err)).Inc()
		return "", &ws.HTTPError{Status: http.StatusForbidden, Message: "Forbidden: " + reasonOf(err)}
	}
	user, revoked := n.userOf(id, anon)
	if revoked {
		return "", &ws.HTTPError{Status: http.StatusForbidden, Message: "Forbidden: token revoked"}
	}
	return user.tenant + "\x00" + user.user, nil
}

// Forward implements ws.StreamHandler: it carries call to the node
// holding the stream and returns that node's answer.
func (n *Node) Forward(ctx context.Context, node string, call ws.StreamCall) ws.StreamResult {
	b, err := json.Marshal(call)
	if err != nil {
		return internalResult()
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	reply, err := n.cl.RequestAdmin(ctx, streamKind(node), b)
	var res ws.StreamResult
	switch {
	case errors.Is(err, cluster.ErrNoResponder):
		n.sm.forwarded.WithLabelValues(forwardNotFound).Inc()
		return ws.StreamNotFound()
	case err == nil && json.Unmarshal(reply, &res) == nil && res.Status >= 200 && res.Status <= 599:
		n.sm.forwarded.WithLabelValues(forwardOK).Inc()
		return res
	}
	n.sm.forwarded.WithLabelValues(forwardUnreachable).Inc()
	n.log.Warn("sse: cannot forward a stream request to the node holding it", "node", node, "op", call.Op, "err", err)
	body, _ := json.Marshal(map[string]any{"errors": []any{codedError(ws.CodeServiceUnavailable,
		"the node holding this stream did not answer; try again")}})
	return ws.StreamResult{Status: http.StatusServiceUnavailable, Body: body, RetryAfter: time.Second}
}

func internalResult() ws.StreamResult {
	body, _ := json.Marshal(map[string]any{"errors": []any{codedError(CodeInternal, "internal error")}})
	return ws.StreamResult{Status: http.StatusInternalServerError, Body: body}
}

// serveStreams answers the calls other nodes forward to this node's
// streams, until the returned stop is called.
func (n *Node) serveStreams() (stop func(), err error) {
	return n.cl.ServeAdmin(streamKind(n.wss.StreamNode()), func(data []byte) []byte {
		var call ws.StreamCall
		res := ws.StreamResult{Status: http.StatusBadRequest}
		if json.Unmarshal(data, &call) == nil {
			n.sm.served.Inc()
			res = n.wss.StreamCall(call)
		}
		b, _ := json.Marshal(res)
		return b
	})
}
