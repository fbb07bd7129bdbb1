package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// TestJetStreamUnavailable: what start-up retries (the broker's passing
// states) and what it reports at once.
func TestJetStreamUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("kv: %w", jetstream.ErrNoStreamResponse), true}, // a KV bucket's replicas electing
		{nats.ErrNoStreamResponse, true},
		{nats.ErrNoResponders, true},
		{context.DeadlineExceeded, true},
		{&jetstream.APIError{Code: 503}, true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10005}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058}, false}, // stream name in use with other settings
		{errors.New("authorization violation"), false},
	} {
		if got := jetStreamUnavailable(tc.err); got != tc.want {
			t.Errorf("jetStreamUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
