package cluster

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxTenantLen = 64
	maxTopicLen  = 1024
)

// ValidateTenant reports whether t can be the tenant token of a subject:
// 1 to 64 bytes of [A-Za-z0-9_-]. Anything else ("*", ">", "a.b", "",
// spaces, non-ASCII) wraps ErrBadTenant, so no tenant can change the
// subject's shape or reach another tenant's events.
func ValidateTenant(t string) error {
	if t == "" {
		return fmt.Errorf("%w: empty", ErrBadTenant)
	}
	if len(t) > maxTenantLen {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrBadTenant, len(t), maxTenantLen)
	}
	for i := 0; i < len(t); i++ {
		if !tenantByte(t[i]) {
			return fmt.Errorf("%w: byte %#x at %d is not [A-Za-z0-9_-]", ErrBadTenant, t[i], i)
		}
	}
	return nil
}

func tenantByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-'
}

// ValidateTopic reports whether t can be the topic part of a subject:
// at most 1024 bytes of valid UTF-8, split on '.' into non-empty tokens
// that hold no '*', '>', whitespace or control characters. Failures wrap
// ErrBadTopic. Non-ASCII letters are allowed, as NATS allows them.
func ValidateTopic(t string) error {
	if t == "" {
		return fmt.Errorf("%w: empty", ErrBadTopic)
	}
	if len(t) > maxTopicLen {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrBadTopic, len(t), maxTopicLen)
	}
	if !utf8.ValidString(t) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadTopic)
	}
	start := 0
	for i, r := range t {
		switch {
		case r == '.':
			if i == start {
				return fmt.Errorf("%w: empty token at %d", ErrBadTopic, i)
			}
			start = i + 1
		case r == '*' || r == '>':
			return fmt.Errorf("%w: wildcard %q at %d", ErrBadTopic, r, i)
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return fmt.Errorf("%w: whitespace or control character %U at %d", ErrBadTopic, r, i)
		}
	}
	if start == len(t) {
		return fmt.Errorf("%w: empty last token", ErrBadTopic)
	}
	return nil
}

// validToken reports whether s is a single, literal subject token.
func validToken(s string) bool {
	return s != "" && !strings.Contains(s, ".") && ValidateTopic(s) == nil
}

// Subject returns "<prefix>.<tenant>.<topic>" once tenant and topic pass
// ValidateTenant and ValidateTopic.
func (c *Cluster) Subject(tenant, topic string) (string, error) {
	return subject(c.cfg.Prefix, tenant, topic)
}

func subject(prefix, tenant, topic string) (string, error) {
	if err := ValidateTenant(tenant); err != nil {
		return "", err
	}
	if err := ValidateTopic(topic); err != nil {
		return "", err
	}
	return prefix + "." + tenant + "." + topic, nil
}

// parseSubject splits "<prefix>.<tenant>.<topic>" for the given prefix.
// ok is false when the subject does not have that shape or the tenant
// is invalid. The topic is not re-validated: the stream only stores
// literal subjects, and a topic published around Publish is still one
// the subscriber may have asked for.
func parseSubject(prefix, subj string) (tenant, topic string, ok bool) {
	rest, found := strings.CutPrefix(subj, prefix)
	if !found || len(rest) < 2 || rest[0] != '.' {
		return "", "", false
	}
	tenant, topic, found = strings.Cut(rest[1:], ".")
	if !found || topic == "" || ValidateTenant(tenant) != nil {
		return "", "", false
	}
	return tenant, topic, true
}
