package node

import (
	"errors"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/fraiseql/subscriptions/query"
)

// CodeSchemaChanged ends a subscription that a schema reload made invalid,
// or whose result the new schema changes (another topic, filter or
// selection): the client subscribes again, under the new schema.
const CodeSchemaChanged = "SCHEMA_CHANGED"

// ReloadResult is the outcome of a schema reload.
type ReloadResult struct {
	Kept  int `json:"kept"`  // subscriptions that continue unchanged
	Ended int `json:"ended"` // subscriptions ended with SCHEMA_CHANGED
}

// reloader serialises schema reloads. Lock order: reloader.mu, then
// registry.sessMu, then session.mu.
type reloader struct {
	mu      sync.Mutex
	results *prometheus.CounterVec // fraiseql_schema_reloads_total by result
}

func newReloader(reg prometheus.Registerer) reloader {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fraiseql_schema_reloads_total",
		Help: "Schema reloads (admin API or SIGHUP), by result: ok, or refused (the schema did not load; the old one stays).",
	}, []string{"result"})
	v.WithLabelValues("ok")
	v.WithLabelValues("refused")
	reg.MustRegister(v)
	return reloader{results: v}
}

// ReloadSchema makes s the node's schema. Every open subscription is
// compiled again under s, with its own request and claims: one whose plan
// is unchanged (same topic, filter and output) continues without a gap;
// any other ends with an `error` coded SCHEMA_CHANGED (then `complete`),
// and its client subscribes again. New subscriptions compile against s
// from the moment ReloadSchema is called.
func (n *Node) ReloadSchema(s *query.Schema) (ReloadResult, error) {
	if s == nil {
		return ReloadResult{}, errors.New("schema: no schema loaded")
	}
	n.reload.mu.Lock()
	defer n.reload.mu.Unlock()
	c := query.NewCompiler(s, n.cfg.queryOptions(), n.cfg.PlanCache)
	// Store first: a Subscribe that compiled against the old compiler
	// either registers before the scan below (which checks it) or sees c
	// afterwards and checks itself (Subscribe, recheck).
	n.compiler.Store(c)
	var res ReloadResult
	for _, sess := range n.matching(func(*session) bool { return true }) {
		sess.mu.Lock()
		subs := make([]*subscription, 0, len(sess.subs))
		for _, sub := range sess.subs {
			subs = append(subs, sub)
		}
		sess.mu.Unlock()
		for _, sub := range subs {
			switch n.recheck(sub, c) {
			case recheckKept:
				res.Kept++
			case recheckEnded:
				res.Ended++
			}
		}
	}
	n.reload.results.WithLabelValues("ok").Inc()
	n.log.Info("schema reloaded", "fields", s.Fields(), "kept", res.Kept, "ended", res.Ended)
	return res, nil
}

const (
	recheckDone  = iota // another caller checked sub against c already
	recheckKept         // sub's plan is the same under c
	recheckEnded        // sub was ended with SCHEMA_CHANGED
)

// recheck compiles sub's request with c, once per compiler whichever of
// ReloadSchema and Subscribe gets there first, and ends sub when its plan
// is no longer valid or no longer the same.
func (n *Node) recheck(sub *subscription, c *query.Compiler) int {
	old := sub.compiler.Load()
	if old == c || sub.schemaEnded.Load() || !sub.compiler.CompareAndSwap(old, c) {
		return recheckDone
	}
	plan, err := c.Compile(sub.req)
	if err == nil && plan.Key == sub.plan.Key {
		return recheckKept
	}
	msg := "the schema changed and this subscription's result with it; subscribe again"
	if err != nil {
		msg = "the schema changed and this subscription is no longer valid (" + firstMessage(err) + "); subscribe again"
	}
	sub.schemaEnded.Store(true)
	sub.log.Info("subscription ended by a schema reload", "valid", err == nil)
	n.met.subscribeErrors.WithLabelValues(CodeSchemaChanged).Inc()
	e := codedError(CodeSchemaChanged, msg)
	if x, ok := sub.ws.(interface{ Expire(error) }); ok {
		x.Expire(e) // error, then complete: both protocols see it end
	} else {
		sub.ws.Error(e)
	}
	return recheckEnded
}

// firstMessage is the first GraphQL error's message of a compile error.
func firstMessage(err error) string {
	if l, ok := errors.AsType[gqlerror.List](err); ok && len(l) > 0 {
		return l[0].Message
	}
	return err.Error()
}

// ErrNoSchemaSource: the node was given its schema without
// Config.LoadSchema, so it cannot reload it.
var ErrNoSchemaSource = errors.New("schema: this node has no schema file to reload from")

// ReloadSchemaSource loads the schema again with Config.LoadSchema and
// applies it (ReloadSchema). A schema that does not load is refused with
// its error and changes nothing. The admin API and SIGHUP call it.
func (n *Node) ReloadSchemaSource() (ReloadResult, error) {
	if n.cfg.LoadSchema == nil {
		return ReloadResult{}, ErrNoSchemaSource
	}
	s, err := n.cfg.LoadSchema()
	if err != nil {
		n.reload.results.WithLabelValues("refused").Inc()
		n.log.Warn("schema reload refused: the schema does not load; the current one stays", "err", err)
		return ReloadResult{}, err
	}
	return n.ReloadSchema(s)
}

// adminReloadSchema serves POST /admin/reload-schema.
func (n *Node) adminReloadSchema(w http.ResponseWriter, r *http.Request) {
	res, err := n.ReloadSchemaSource()
	switch {
	case errors.Is(err, ErrNoSchemaSource):
		adminError(w, http.StatusNotImplemented, "NO_SCHEMA_SOURCE", err.Error())
	case err != nil:
		adminError(w, http.StatusUnprocessableEntity, "SCHEMA_INVALID", err.Error())
	default:
		adminJSON(w, res)
	}
}
