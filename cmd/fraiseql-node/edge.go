package main

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fraiseql/subscriptions/limits"
	"github.com/fraiseql/subscriptions/node"
)

// addrList is trusted_proxies: a YAML list, or one comma-separated string
// (so that FRAISEQL_TRUSTED_PROXIES can set it).
type addrList []string

// UnmarshalYAML takes a sequence or a comma-separated scalar.
func (l *addrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return l.UnmarshalText([]byte(n.Value))
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// UnmarshalText splits a comma-separated list.
func (l *addrList) UnmarshalText(b []byte) error {
	*l = nil
	for s := range strings.SplitSeq(string(b), ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// trustedProxies is trusted_proxies parsed (validate has checked it).
func (c Config) trustedProxies() []netip.Prefix {
	p, _ := node.ParseTrustedProxies(c.TrustedProxies)
	return p
}

// edgeConfig is the node's view of trusted_proxies, proxy_protocol and
// forwarded_header; errors name the key.
func (c Config) edgeConfig() (node.Config, error) {
	trusted, err := node.ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return node.Config{}, err
	}
	nc := node.Config{TrustedProxies: trusted, ProxyProtocol: c.ProxyProtocol, ForwardedHeader: c.ForwardedHeader}
	return nc, node.ValidateProxies(nc)
}

// descriptorHeadroom is what the node keeps open besides client
// connections: NATS, bridges, the store, metrics scrapes, logs.
const descriptorHeadroom = 1024

// checkDescriptors raises the soft RLIMIT_NOFILE to the hard limit, logs
// both, and warns if the node may need more descriptors than that:
// limits.max_conns WebSockets, limits.max_pending_conns connections before
// their upgrade, and descriptorHeadroom.
func checkDescriptors(l limits.Config, log *slog.Logger) {
	checkNOFILE(l.WithDefaults(), log, getNOFILE, setNOFILE)
}

func checkNOFILE(l limits.Config, log *slog.Logger, get func() (cur, hard uint64, err error), set func(cur, hard uint64) error) {
	cur, hard, err := get()
	if err != nil {
		log.Warn("cannot read the file descriptor limit (RLIMIT_NOFILE)", "err", err)
		return
	}
	if cur < hard {
		if err := set(hard, hard); err != nil {
			log.Warn("cannot raise the file descriptor limit (RLIMIT_NOFILE) to its hard limit", "soft", cur, "hard", hard, "err", err)
		} else {
			cur = hard
		}
	}
	need := uint64(math.MaxUint64) // some cap is unlimited: the node cannot bound its descriptors
	if l.MaxConns >= 0 && l.MaxPendingConns >= 0 {
		need = uint64(l.MaxConns) + uint64(l.MaxPendingConns) + descriptorHeadroom
	}
	if cur >= need {
		log.Info("file descriptor limit", "soft", cur, "hard", hard, "needed", need)
		return
	}
	log.Warn(fmt.Sprintf("file descriptor limit (RLIMIT_NOFILE) %d is below limits.max_conns (%d) + limits.max_pending_conns (%d) + %d: "+
		"past it new connections fail with \"too many open files\"; raise it (ulimit -n, systemd LimitNOFILE=, docker --ulimit nofile=) "+
		"or lower limits.max_conns (negative values mean unlimited)",
		cur, l.MaxConns, l.MaxPendingConns, descriptorHeadroom), "soft", cur, "hard", hard)
}
