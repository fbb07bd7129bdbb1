package cluster_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fraiseql/subscriptions/cluster"
)

func TestValidateTenant(t *testing.T) {
	for _, tc := range []struct {
		name, tenant string
		ok           bool
	}{
		{"simple", "acme", true},
		{"dash underscore digits", "Acme_co-42", true},
		{"max length", strings.Repeat("a", 64), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", 65), false},
		{"star", "*", false},
		{"gt", ">", false},
		{"dot", "a.b", false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"nul", "a\x00b", false},
		{"newline", "a\r\nb", false},
		{"unicode", "café", false},
		{"unicode lookalike dot", "a\u2024b", false},
		{"wildcard suffix", "x.>", false},
		{"slash", "a/b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cluster.ValidateTenant(tc.tenant)
			if tc.ok && err != nil {
				t.Fatalf("ValidateTenant(%q) = %v, want nil", tc.tenant, err)
			}
			if !tc.ok && !errors.Is(err, cluster.ErrBadTenant) {
				t.Fatalf("ValidateTenant(%q) = %v, want ErrBadTenant", tc.tenant, err)
			}
		})
	}
}

func TestValidateTopic(t *testing.T) {
	for _, tc := range []struct {
		name, topic string
		ok          bool
	}{
		{"one token", "metrics", true},
		{"two tokens", "chat.r1", true},
		{"many tokens", "a.b.c.d-e_f", true},
		{"unicode letters", "chat.café", true},
		{"max length", strings.Repeat("a", 1024), true},
		{"too long", strings.Repeat("a", 1025), false},
		{"empty", "", false},
		{"star", "*", false},
		{"gt", ">", false},
		{"star token", "chat.*", false},
		{"gt token", "x.>", false},
		{"star inside token", "ch*at", false},
		{"leading dot", ".chat", false},
		{"trailing dot", "chat.", false},
		{"empty token", "chat..r1", false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"nul", "a\x00b", false},
		{"del", "a\x7fb", false},
		{"newline", "chat\r\nPUB x 1", false},
		{"nbsp", "a\u00a0b", false},
		{"line separator", "a\u2028b", false},
		{"c1 control", "a\u0085b", false},
		{"invalid utf8", "a\xffb", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cluster.ValidateTopic(tc.topic)
			if tc.ok && err != nil {
				t.Fatalf("ValidateTopic(%q) = %v, want nil", tc.topic, err)
			}
			if !tc.ok && !errors.Is(err, cluster.ErrBadTopic) {
				t.Fatalf("ValidateTopic(%q) = %v, want ErrBadTopic", tc.topic, err)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	c := open(t, cluster.Config{Prefix: "fq"})
	got, err := c.Subject("acme", "chat.r1")
	if err != nil || got != "fq.acme.chat.r1" {
		t.Fatalf("Subject = %q, %v; want fq.acme.chat.r1", got, err)
	}
	if _, err := c.Subject(">", "chat"); !errors.Is(err, cluster.ErrBadTenant) {
		t.Fatalf("Subject(>) err = %v, want ErrBadTenant", err)
	}
	if _, err := c.Subject("acme", "chat.>"); !errors.Is(err, cluster.ErrBadTopic) {
		t.Fatalf("Subject(chat.>) err = %v, want ErrBadTopic", err)
	}
	// A bad subject is refused before anything is sent.
	if _, err := c.Publish(testCtx(t), "a.b", "chat", []byte("{}"), ""); !errors.Is(err, cluster.ErrBadTenant) {
		t.Fatalf("Publish(a.b) err = %v, want ErrBadTenant", err)
	}
}

// FuzzValidate checks that whatever passes validation yields a subject of
// exactly 2+n literal tokens, never a wildcard.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"acme", "chat.r1", ">", "*", "a.b", "a b", "\x00", "café", "x.>"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, tenant, topic string) {
		if cluster.ValidateTenant(tenant) != nil || cluster.ValidateTopic(topic) != nil {
			return
		}
		subj := "p." + tenant + "." + topic
		for _, tok := range strings.Split(subj, ".") {
			if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n\x00*>") {
				t.Fatalf("valid tenant %q topic %q gave subject %q", tenant, topic, subj)
			}
		}
		if got := strings.Count(subj, "."); got != 2+strings.Count(topic, ".") {
			t.Fatalf("tenant %q split the subject", tenant)
		}
	})
}
