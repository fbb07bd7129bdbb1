package cluster

import (
	"errors"
	"testing"
)

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		subj, tenant, topic string
		ok                  bool
	}{
		{"fraiseql.acme.chat.r1", "acme", "chat.r1", true},
		{"fraiseql.acme.metrics", "acme", "metrics", true},
		{"fraiseql.acme", "", "", false},
		{"fraiseql.acme.", "", "", false},
		{"fraiseql..chat", "", "", false},
		{"fraiseqlx.acme.chat", "", "", false},
		{"other.acme.chat", "", "", false},
		{"fraiseql", "", "", false},
		{"fraiseql.a%b.chat", "", "", false},
	} {
		tenant, topic, ok := parseSubject("fraiseql", tc.subj)
		if tenant != tc.tenant || topic != tc.topic || ok != tc.ok {
			t.Errorf("parseSubject(%q) = %q, %q, %v", tc.subj, tenant, topic, ok)
		}
	}
}

// FuzzDecodeCursor checks that no input panics the decoder and that every
// accepted input re-encodes to itself (one cursor per position).
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(1700000000000000000, 42))
	f.Add(encodeCursor(0, 0))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		id, seq, err := decodeCursor(s)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("decodeCursor(%q) = %v, want ErrBadCursor", s, err)
			}
			return
		}
		if got := encodeCursor(id, seq); got != s {
			t.Fatalf("decodeCursor(%q) re-encodes to %q", s, got)
		}
	})
}
