package query

import (
	"strings"
	"testing"
)

// unescapeToken inverts EscapeToken; ok is false for strings it never returns.
func unescapeToken(s string) (string, bool) {
	if s == "%" {
		return "", true
	}
	if s == "" {
		return "", false
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenSafe(c) {
			b = append(b, c)
			continue
		}
		if c != '%' || i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
			return "", false
		}
		v := unhex(s[i+1])<<4 | unhex(s[i+2])
		if tokenSafe(v) {
			return "", false // EscapeToken never escapes these
		}
		b = append(b, v)
		i += 2
	}
	return string(b), true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// checkTopic fails unless every token of topic is non-empty and free of
// wildcards, whitespace and control bytes.
func checkTopic(t testing.TB, topic string) {
	t.Helper()
	for _, tok := range strings.Split(topic, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n\x00\x7f") {
			t.Fatalf("topic %q has a bad token %q", topic, tok)
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] < 0x20 || tok[i] >= 0x7f {
				t.Fatalf("topic %q has a byte %#x", topic, tok[i])
			}
		}
	}
}

func TestEscapeToken(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain", "room-1_A", "room-1_A"},
		{"gt", ">", "%3E"},
		{"star", "*", "%2A"},
		{"wildcard tail", "x.>", "x%2E%3E"},
		{"dot", "a.b", "a%2Eb"},
		{"space", "a b", "a%20b"},
		{"nul", "\x00", "%00"},
		{"tab", "\t", "%09"},
		{"percent", "%", "%25"},
		{"percent escape", "%2E", "%252E"},
		{"e acute", "é", "%C3%A9"},
		{"japanese", "日本", "%E6%97%A5%E6%9C%AC"},
		{"emoji", "😀", "%F0%9F%98%80"},
		{"empty", "", "%"},
		{"invalid utf8", "\xff", "%FF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := EscapeToken(tc.in)
			if got != tc.want {
				t.Fatalf("EscapeToken(%q) = %q, want %q", tc.in, got, tc.want)
			}
			checkTopic(t, got)
			if back, ok := unescapeToken(got); !ok || back != tc.in {
				t.Errorf("unescape(%q) = %q, %v", got, back, ok)
			}
		})
	}
}

// TestHostileTopics derives topics from hostile argument values, through
// both literals and variables.
func TestHostileTopics(t *testing.T) {
	c := newTestCompiler(t, Options{})
	cases := []struct{ name, room, topic, code string }{
		{"gt", ">", "chat.%3E", ""},
		{"star", "*", "chat.%2A", ""},
		{"wildcard tail", "x.>", "chat.x%2E%3E", ""},
		{"dot", "a.b", "chat.a%2Eb", ""},
		{"space", "a b", "chat.a%20b", ""},
		{"nul", "\x00", "chat.%00", ""},
		{"tab", "\t", "chat.%09", ""},
		{"percent", "%", "chat.%25", ""},
		{"e acute", "é", "chat.%C3%A9", ""},
		{"japanese", "日本", "chat.%E6%97%A5%E6%9C%AC", ""},
		{"emoji", "😀", "chat.%F0%9F%98%80", ""},
		{"empty", "", "chat.%", ""},
		{"10 KB", strings.Repeat("x", 10<<10), "", CodeValidationFailed},
		{"at length limit", strings.Repeat("x", maxTopicBytes-len("chat.")), "chat." + strings.Repeat("x", maxTopicBytes-len("chat.")), ""},
		{"over length limit", strings.Repeat("x", maxTopicBytes-len("chat.")+1), "", CodeValidationFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := c.Compile(Request{
				Query:     `subscription ($r: ID!) { messageAdded(room: $r) { id } }`,
				Variables: vars(t, map[string]any{"r": tc.room}),
			})
			if tc.code != "" {
				if errCode(err) != tc.code {
					t.Fatalf("err %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Topic != tc.topic {
				t.Fatalf("topic %q, want %q", p.Topic, tc.topic)
			}
			checkTopic(t, p.Topic)
		})
	}
}

func TestLoadSchemaErrors(t *testing.T) {
	cases := []struct{ name, sdl, want string }{
		{"no subscription", `type Query { a: Int }`, "no Subscription type"},
		{"unknown placeholder", `type Query { a: Int } type Subscription { s(room: ID!): Int @topic(name: "chat.{rom}") }`, "s: @topic \"chat.{rom}\": placeholder {rom}"},
		{"bad claim", `type Query { a: Int } type Subscription { s: Int @topic(name: "u.{claims.}") }`, "{claims.}"},
		{"unclosed", `type Query { a: Int } type Subscription { s(r: ID): Int @topic(name: "u.{r") }`, "unclosed"},
		{"wildcard literal", `type Query { a: Int } type Subscription { s: Int @topic(name: "u.>") }`, "not a valid subject"},
		{"empty token", `type Query { a: Int } type Subscription { s(r: ID): Int @topic(name: "u..{r}") }`, "not a valid subject"},
		{"input object placeholder", `type Query { a: Int } input F { x: Int } type Subscription { s(w: F): Int @topic(name: "u.{w}") }`, "placeholder {w}"},
		{"syntax", `type Query {`, "schema"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSchema("s.graphql", tc.sdl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadSchemaAddsDirective(t *testing.T) {
	s, err := LoadSchema("s", `type Query { a: Int } type Subscription { b(x: ID!): Int @topic(name: "b.{x}") a: Int }`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Fields(), ","); got != "a,b" {
		t.Errorf("Fields() = %s", got)
	}
	if got := strings.Join(demoSchema(t).Fields(), ","); got != "feed,messageAdded,messageById,metrics,metricsWhere,nodes,notifications,orderUpdated,orders,things" {
		t.Errorf("demo Fields() = %s", got)
	}
}
