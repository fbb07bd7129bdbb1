package node

import (
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/fraiseql/subscriptions/ws"
)

// reasonHost is the fraiseql_auth_failures_total reason of a request
// refused by checkHost.
const reasonHost = "host not allowed without authentication"

// CheckOriginPatterns (Config.Validate calls it) refuses ws.origin_patterns that coder/websocket
// would reject or misread at the first cross-origin request, and, when
// browsers authenticate with a cookie, patterns that admit any site:
// a browser sends the cookie with a WebSocket upgrade from every page, so
// a page of any origin the patterns admit acts as the user
// (cross-site WebSocket hijacking).
//
// A pattern with a wildcard must end in a literal domain of at least two
// labels that is not a public suffix ("*.example.com", "app-?.example.com");
// "*", "*.*", "*.com", "*.co.uk", "*.github.io" or "*example.com" are
// refused with cookie authentication.
func CheckOriginPatterns(patterns []string, cookieAuth bool) error {
	for _, p := range patterns {
		if p == "" {
			return fmt.Errorf("ws.origin_patterns: an empty pattern matches nothing; remove it")
		}
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("ws.origin_patterns: %q is not a valid pattern (path.Match syntax: *, ?, [a-z]): %w", p, err)
		}
		if strings.Contains(p, "://") || strings.Contains(p, "/") {
			return fmt.Errorf("ws.origin_patterns: %q must be a host pattern such as app.example.com or *.example.com, without scheme or path", p)
		}
		if cookieAuth && !narrowPattern(p) {
			return fmt.Errorf("ws.origin_patterns: %q admits pages of any site while auth.cookie is set, so any web page could act as a logged-in user; "+
				"list your sites' hosts (app.example.com) or a wildcard under your own domain (*.example.com)", p)
		}
	}
	return nil
}

// narrowPattern reports whether p names hosts of one domain: no wildcard,
// or a literal suffix after the last wildcard of ".<label>.<label>" that
// is not itself a public suffix (com, co.uk, github.io, vercel.app: the
// public suffix list, ICANN and private sections), where anyone can
// register a name.
func narrowPattern(p string) bool {
	i := strings.LastIndexAny(p, `*?[]\`)
	if i < 0 {
		return true
	}
	suffix := p[i+1:]
	if !strings.HasPrefix(suffix, ".") {
		return false
	}
	domain := strings.ToLower(strings.TrimPrefix(suffix, "."))
	if h, _, err := net.SplitHostPort(domain); err == nil {
		domain = h
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" {
			return false
		}
	}
	ps, _ := publicsuffix.PublicSuffix(domain)
	return ps != domain
}

// rebindingSafeHost reports whether an unauthenticated node may answer a
// request for host (the Host header): an IP address or localhost (and
// *.localhost), with or without a port. Any other name may be an
// attacker's domain that resolves to this node (DNS rebinding): a page of
// that domain is same-origin with it, so browsers let it connect.
func rebindingSafeHost(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "" {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// checkHost refuses, in auth mode none, requests whose Host is a name
// other than localhost (see rebindingSafeHost).
func (n *Node) checkHost(r *http.Request) error {
	if n.authenticated() || rebindingSafeHost(r.Host) {
		return nil
	}
	n.met.authFailures.WithLabelValues(reasonHost).Inc()
	return &ws.HTTPError{Status: http.StatusForbidden, Message: fmt.Sprintf(
		"Host %q refused: without authentication (auth.mode: none) the node answers only requests for localhost or an IP address; "+
			"configure authentication to serve other host names", r.Host)}
}
