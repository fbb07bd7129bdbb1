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

// fuzzCursorState is a cursor state with a fixed key and stream.
func fuzzCursorState(t testing.TB) *cursorState {
	keys, err := parseCursorKeys([]byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"))
	if err != nil {
		t.Fatal(err)
	}
	return newCursorState(keys, 1700000000000000000)
}

// FuzzDecodeCursor checks that no input panics the decoder, that every
// refusal is ErrBadCursor or ErrCursorExpired, and that every accepted
// input re-encodes to itself (one cursor per position and tenant).
func FuzzDecodeCursor(f *testing.F) {
	st := fuzzCursorState(f)
	f.Add("acme", st.encode("acme", 42))
	f.Add("acme", st.encode("acme", 0))
	f.Add("t", st.encode("acme", 1))
	f.Add("acme", "")
	f.Add("acme", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("acme", "AQAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, tenant, s string) {
		seq, err := st.decode(tenant, s)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) && !errors.Is(err, ErrCursorExpired) {
				t.Fatalf("decode(%q, %q) = %v, want ErrBadCursor or ErrCursorExpired", tenant, s, err)
			}
			return
		}
		if got := st.encode(tenant, seq); got != s {
			t.Fatalf("decode(%q, %q) = %d re-encodes to %q", tenant, s, seq, got)
		}
	})
}
