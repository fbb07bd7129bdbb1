package node

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/pires/go-proxyproto"
)

// Values of Config.ProxyProtocol.
const (
	ProxyProtocolOff      = "off"      // never read a PROXY header (the default)
	ProxyProtocolOptional = "optional" // trusted peers may send one
	ProxyProtocolRequired = "required" // trusted peers must send one
)

// Values of Config.ForwardedHeader.
const (
	ForwardedXFF  = "x-forwarded-for" // X-Forwarded-For (the default)
	ForwardedRFC  = "forwarded"       // RFC 7239 Forwarded, its for= parameters
	ForwardedNone = "none"
)

// proxies decides whose word on a client's address the node takes: only
// the peers in trusted_proxies, through the PROXY protocol on the
// connection and/or a forwarding header on the request.
type proxies struct {
	trusted []netip.Prefix
	proxy   string // a ProxyProtocol* value
	header  string // a Forwarded* value
}

func newProxies(cfg Config) proxies {
	p := proxies{trusted: cfg.TrustedProxies, proxy: cfg.ProxyProtocol, header: cfg.ForwardedHeader}
	if len(p.trusted) == 0 {
		p.proxy, p.header = ProxyProtocolOff, ForwardedNone
	}
	return p
}

// trusts reports whether a is in trusted_proxies.
func (p proxies) trusts(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, pr := range p.trusted {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// policy is the PROXY header policy for a connection from a trusted or an
// untrusted peer; ok is false when the protocol is off (nothing is read
// ahead of HTTP). A header from an untrusted peer is refused (REJECT): the
// connection is closed and counted, never taken as plain HTTP that a
// misrouted proxy's clients would all share.
func (p proxies) policy(trustedPeer bool) (_ proxyproto.Policy, ok bool) {
	switch {
	case p.proxy == ProxyProtocolOff:
		return 0, false
	case !trustedPeer:
		return proxyproto.REJECT, true
	case p.proxy == ProxyProtocolRequired:
		return proxyproto.REQUIRE, true
	default:
		return proxyproto.USE, true
	}
}

// ValidateProxies checks the trusted_proxies, proxy_protocol and
// forwarded_header settings.
func ValidateProxies(c Config) error {
	switch c.ProxyProtocol {
	case "", ProxyProtocolOff:
	case ProxyProtocolOptional, ProxyProtocolRequired:
		if len(c.TrustedProxies) == 0 {
			return fmt.Errorf("proxy_protocol: %q needs trusted_proxies: the PROXY header is only taken from them", c.ProxyProtocol)
		}
	default:
		return fmt.Errorf("proxy_protocol: %q is not off, optional or required", c.ProxyProtocol)
	}
	switch c.ForwardedHeader {
	case "", ForwardedXFF, ForwardedRFC, ForwardedNone:
	default:
		return fmt.Errorf("forwarded_header: %q is not x-forwarded-for, forwarded or none", c.ForwardedHeader)
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return fmt.Errorf("trusted_proxies: %v is not a valid CIDR", p)
		}
	}
	return nil
}

// ParseTrustedProxies parses trusted_proxies entries: CIDRs, or single
// addresses (a /32 or /128). Errors name the key and the entry.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), max(0, p.Bits()-96))
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is not a CIDR (e.g. 10.0.0.0/8) or an IP address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// forwarded wraps h: a request from a trusted proxy (its address, after any
// PROXY header, in trusted_proxies) gets as RemoteAddr the client address
// its forwarding header names, so that limits and logs see the client.
func (p proxies) forwarded(h http.Handler) http.Handler {
	if p.header == ForwardedNone {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := p.clientAddr(r); ok {
			r = r.WithContext(r.Context()) // a shallow copy: the caller's request is not changed
			r.RemoteAddr = netip.AddrPortFrom(a, 0).String()
		}
		h.ServeHTTP(w, r)
	})
}

// clientAddr is the client's address from the request's forwarding header,
// if its peer is a trusted proxy. The header is read right to left: each
// trusted proxy appends the address it received from, so the right-most
// address that is not a trusted proxy is the first that no proxy of ours
// vouches for, and everything left of it may have been written by the
// client. An entry that is not an address ends the walk at the last trusted
// hop. If every entry is a trusted proxy, the left-most is the client.
func (p proxies) clientAddr(r *http.Request) (netip.Addr, bool) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !p.trusts(peer.Addr()) {
		return netip.Addr{}, false
	}
	var hops []string
	switch p.header {
	case ForwardedXFF:
		for _, line := range r.Header.Values("X-Forwarded-For") {
			for f := range strings.SplitSeq(line, ",") {
				hops = append(hops, trimOWS(f))
			}
		}
	case ForwardedRFC:
		for _, line := range r.Header.Values("Forwarded") {
			hops = append(hops, forwardedFor(line)...)
		}
	}
	client := peer.Addr().Unmap()
	found := false
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client, found = a, true
		if !p.trusts(a) {
			break
		}
	}
	return client, found
}

// forwardedFor returns the for= values of a Forwarded header line
// (RFC 7239 section 4), one per element, in order; an element without
// for= yields "" (not an address: it ends the walk).
func forwardedFor(line string) []string {
	var out []string
	for _, elem := range splitQuoted(line, ',') {
		v := ""
		for _, pair := range splitQuoted(elem, ';') {
			k, val, ok := strings.Cut(trimOWS(pair), "=")
			if ok && strings.EqualFold(trimOWS(k), "for") {
				v = strings.Trim(trimOWS(val), `"`)
			}
		}
		out = append(out, v)
	}
	return out
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// parseHop parses one forwarded address: "192.0.2.1", "2001:db8::1",
// "[2001:db8::1]", with or without a port.
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// trimOWS trims HTTP's optional white space (spaces and tabs, RFC 9110):
// any other byte around an address makes it no address.
func trimOWS(s string) string { return strings.Trim(s, " \t") }
