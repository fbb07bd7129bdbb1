package bridges

import (
	"fmt"
	"strings"

	"github.com/fraiseql/subscriptions/cluster"
)

// Topic patterns restrict what a legacy source may publish
// (bridges.<bridge>.legacy[].topics): NATS-style, '*' one token, a last
// '>' one or more.

// ValidateTopicPattern checks a NATS-style topic pattern: '.'-separated
// non-empty tokens, '*' a whole token, '>' a whole last token.
func ValidateTopicPattern(p string) error {
	if p == "" {
		return fmt.Errorf("empty")
	}
	toks := strings.Split(p, ".")
	for i, tok := range toks {
		switch {
		case tok == "*":
		case tok == ">":
			if i != len(toks)-1 {
				return fmt.Errorf("'>' must be the last token")
			}
		case strings.ContainsAny(tok, "*>"):
			return fmt.Errorf("a wildcard must be a whole token")
		default:
			if err := cluster.ValidateTopic(tok); err != nil {
				return err
			}
		}
	}
	return nil
}

// MatchTopic reports whether topic matches pattern: '*' matches one
// token, a last '>' one or more.
func MatchTopic(pattern, topic string) bool {
	for {
		pt, prest, pmore := strings.Cut(pattern, ".")
		if pt == ">" {
			return topic != ""
		}
		tt, trest, tmore := strings.Cut(topic, ".")
		if pt != "*" && pt != tt {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = prest, trest
	}
}

// SourceTrust is what the envelopes of one legacy source may name: the
// source's own tenant, the other tenants it lists (or any), and the topics
// its patterns match (nil: any valid topic).
type SourceTrust struct {
	Tenant    string          // the tenant of envelopes that name none
	AnyTenant bool            // tenants: ["*"]
	Tenants   map[string]bool // the others it may name
	Topics    []string        // patterns; nil: any
}

// NewSourceTrust builds a source's trust from its configuration: tenant
// (already defaulted), tenants (["*"] alone means any) and topics.
func NewSourceTrust(tenant string, tenants, topics []string) SourceTrust {
	t := SourceTrust{Tenant: tenant, Topics: topics}
	if len(tenants) == 1 && tenants[0] == "*" {
		t.AnyTenant = true
		return t
	}
	t.Tenants = make(map[string]bool, len(tenants))
	for _, x := range tenants {
		t.Tenants[x] = true
	}
	return t
}

// AllowTenant reports whether an envelope of the source may name tenant t.
func (s *SourceTrust) AllowTenant(t string) bool {
	return t == s.Tenant || s.AnyTenant || s.Tenants[t]
}

// AllowTopic reports whether the source may publish to topic t.
func (s *SourceTrust) AllowTopic(t string) bool {
	if s.Topics == nil {
		return true
	}
	for _, p := range s.Topics {
		if MatchTopic(p, t) {
			return true
		}
	}
	return false
}
