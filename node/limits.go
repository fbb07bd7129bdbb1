package node

import (
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/ws"
)

// userKey names a user for per-user limits. Anonymous users are keyed by
// their IP address.
type userKey struct{ tenant, user string }

// Limit names, the `limit` label of fraiseql_limit_refusals_total.
const (
	limitConnRatePerIP     = "conn_rate_per_ip"
	limitMaxConns          = "max_conns"
	limitMaxConnsPerUser   = "max_conns_per_user"
	limitSubscribeRate     = "subscribe_rate"
	limitSubscriptionsConn = "max_subscriptions_per_conn"
	limitEventRate         = "event_rate"
	limitLifetime          = "max_subscription_duration"
)

// guards are the node's limiters, built from Config.Limits.
type guards struct {
	cfg       limits.Config
	connIP    *limits.Keyed[string]
	conns     *limits.Cap
	userConns *limits.KeyedCap[userKey]
	subscribe *limits.Keyed[userKey]
	refused   *prometheus.CounterVec
	// eventDrops is refused.WithLabelValues(limitEventRate), resolved once
	// because it is counted on the per-event path.
	eventDrops prometheus.Counter
}

func newGuards(cfg limits.Config, reg *prometheus.Registry) *guards {
	g := &guards{
		cfg:    cfg,
		connIP: &limits.Keyed[string]{MaxKeys: cfg.MaxKeys},
		conns:  limits.NewCap(cfg.MaxConns),
		userConns: &limits.KeyedCap[userKey]{
			Max: cfg.MaxConnsPerUser,
		},
		subscribe: &limits.Keyed[userKey]{MaxKeys: cfg.MaxKeys},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fraiseql_limit_refusals_total",
			Help: "Requests refused (or events dropped, for event_rate) by a limit, by limit name.",
		}, []string{"limit"}),
	}
	g.connIP.Rate, g.connIP.Burst = cfg.ConnLimitPerIP()
	g.subscribe.Rate, g.subscribe.Burst = cfg.SubscribeLimit()
	if len(cfg.Tenants) > 0 {
		g.subscribe.RateFor = func(k userKey) (float64, int) { return cfg.For(k.tenant).SubscribeLimit() }
		g.userConns.MaxFor = func(k userKey) int { return cfg.For(k.tenant).MaxConnsPerUser }
	}
	for _, l := range []string{limitConnRatePerIP, limitMaxConns, limitMaxConnsPerUser, limitSubscribeRate,
		limitSubscriptionsConn, limitEventRate, limitLifetime} {
		g.refused.WithLabelValues(l) // export every limit at 0
	}
	g.eventDrops = g.refused.WithLabelValues(limitEventRate)
	evictions := func(limiter string, k interface{ Evictions() (uint64, uint64) }) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "fraiseql_limiter_evictions_total",
			Help:        "Keys evicted from a keyed limiter at max_keys while still holding state (a sign of a key flood).",
			ConstLabels: prometheus.Labels{"limiter": limiter},
		}, func() float64 { _, lossy := k.Evictions(); return float64(lossy) })
	}
	reg.MustRegister(g.refused, evictions(limitConnRatePerIP, g.connIP), evictions(limitSubscribeRate, g.subscribe))
	return g
}

// admit runs the connection limits before the WebSocket upgrade, so a
// refused client costs no WebSocket state. On success the caller owns the
// returned tickets and releases them when the connection ends.
func (g *guards) admit(r *http.Request, user userKey) (global, perUser *limits.Ticket, err error) {
	ip := clientIP(r)
	if ok, retry := g.connIP.Allow(ip); !ok {
		g.refused.WithLabelValues(limitConnRatePerIP).Inc()
		return nil, nil, &ws.HTTPError{Status: http.StatusTooManyRequests, Message: "too many new connections from this address", RetryAfter: retry}
	}
	global, ok := g.conns.AcquireTicket()
	if !ok {
		g.refused.WithLabelValues(limitMaxConns).Inc()
		return nil, nil, &ws.HTTPError{Status: http.StatusServiceUnavailable, Message: "node is at its connection limit; try another node", RetryAfter: time.Second}
	}
	perUser, ok = g.userConns.AcquireTicket(user)
	if !ok {
		global.Release()
		g.refused.WithLabelValues(limitMaxConnsPerUser).Inc()
		return nil, nil, &ws.HTTPError{Status: http.StatusTooManyRequests, Message: "too many connections for this user", RetryAfter: 5 * time.Second}
	}
	return global, perUser, nil
}

// clientIP is the host part of the request's peer address: the client's
// own address, also behind a load balancer in trusted_proxies, because the
// edge listener takes it from the PROXY header and proxies.forwarded from
// the forwarding header (listener.go, proxy.go). Nobody else's header is
// believed.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
