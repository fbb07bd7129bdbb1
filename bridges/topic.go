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
