package query

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const chatEvent = `{"id":"7","room":"r1","text":"hi","author":{"id":"u1","name":"Ann"},"tags":["a","b"],"createdAt":"2024-01-01T00:00:00Z","extra":{"deep":[1,2,{"x":null}]}}`

func TestProjection(t *testing.T) {
	c := newTestCompiler(t, Options{})
	cases := []struct {
		name  string
		query string
		vars  string
		event string
		want  string
	}{
		{"fields", `subscription { messageAdded(room: "r1") { id text } }`, "", chatEvent,
			`{"messageAdded":{"id":"7","text":"hi"}}`},
		{"aliases", `subscription { m: messageAdded(room: "r1") { ident: id t: text t2: text } }`, "", chatEvent,
			`{"m":{"ident":"7","t":"hi","t2":"hi"}}`},
		{"typename", `subscription { messageAdded(room: "r1") { __typename id author { __typename name } } }`, "", chatEvent,
			`{"messageAdded":{"__typename":"Message","id":"7","author":{"__typename":"User","name":"Ann"}}}`},
		{"nested", `subscription { messageAdded(room: "r1") { author { name id } } }`, "", chatEvent,
			`{"messageAdded":{"author":{"name":"Ann","id":"u1"}}}`},
		{"scalar list", `subscription { messageAdded(room: "r1") { tags } }`, "", chatEvent,
			`{"messageAdded":{"tags":["a","b"]}}`},
		{"order follows selection", `subscription { messageAdded(room: "r1") { text createdAt id } }`, "", chatEvent,
			`{"messageAdded":{"text":"hi","createdAt":"2024-01-01T00:00:00Z","id":"7"}}`},
		{"missing fields", `subscription { messageAdded(room: "r1") { id createdAt author { name } tags } }`, "", `{"id":"1"}`,
			`{"messageAdded":{"id":"1","createdAt":null,"author":null,"tags":null}}`},
		{"null nested", `subscription { messageAdded(room: "r1") { author { name } } }`, "", `{"author":null}`,
			`{"messageAdded":{"author":null}}`},
		{"wrong shape nested", `subscription { messageAdded(room: "r1") { author { name } } }`, "", `{"author":"x"}`,
			`{"messageAdded":{"author":null}}`},
		{"inline fragment", `subscription { messageAdded(room: "r1") { ... on Message { id } ... { text } } }`, "", chatEvent,
			`{"messageAdded":{"id":"7","text":"hi"}}`},
		{"named fragments merge", `subscription { messageAdded(room: "r1") { id ...F author { id } } } fragment F on Message { text id author { name } }`, "", chatEvent,
			`{"messageAdded":{"id":"7","text":"hi","author":{"name":"Ann","id":"u1"}}}`}, // CollectFields order: F's author comes first
		{"skip include literals", `subscription { messageAdded(room: "r1") { id @skip(if: true) text @include(if: true) room @include(if: false) } }`, "", chatEvent,
			`{"messageAdded":{"text":"hi"}}`},
		{"skip include variables", `subscription ($a: Boolean!, $b: Boolean = true) { messageAdded(room: "r1") { id @skip(if: $a) ... @include(if: $b) { text } ...F @skip(if: $b) } } fragment F on Message { room }`, `{"a":false}`, chatEvent,
			`{"messageAdded":{"id":"7","text":"hi"}}`},
		{"numbers verbatim", `subscription { orderUpdated(id: 1) { total } }`, "", `{"total":1.50e+3}`,
			`{"orderUpdated":{"total":1.50e+3}}`},
		{"hostile strings", `subscription { messageAdded(room: "r1") { text } }`, "", `{"text":"</script><script>\"\\u0000\u2028"}`,
			`{"messageAdded":{"text":"</script><script>\"\\u0000\u2028"}}`},
		{"escaped keys", `subscription { messageAdded(room: "r1") { text } }`, "", `{"t\u0065xt":"a","\"text":"b"}`,
			`{"messageAdded":{"text":"a"}}`},
		{"duplicate keys: last wins", `subscription { messageAdded(room: "r1") { text } }`, "", `{"text":"a","text":"b"}`,
			`{"messageAdded":{"text":"b"}}`},
		{"invalid utf8 replaced", `subscription { messageAdded(room: "r1") { text } }`, "", "{\"text\":\"a\xffb\"}",
			`{"messageAdded":{"text":"a\ufffdb"}}`},
		{"object in scalar field copied", `subscription { messageAdded(room: "r1") { text } }`, "", `{"text": {"a" : [1, 2]}}`,
			`{"messageAdded":{"text":{"a" : [1, 2]}}}`},
		{"whitespace around", `subscription { messageAdded(room: "r1") { id } }`, "", " \n{ \"id\" : \"7\" } \t",
			`{"messageAdded":{"id":"7"}}`},
		{"object list root", `subscription { orders { id } }`, "", `[{"id":"1","status":"x"},null,{"id":2}]`,
			`{"orders":[{"id":"1"},null,{"id":2}]}`},
		{"empty list root", `subscription { orders { id } }`, "", `[]`, `{"orders":[]}`},
		{"interface with typename", `subscription { nodes { __typename id ... on Robot { model } ... on Human { name } } }`, "", `{"__typename":"Human","id":"h","name":"Hu","model":"m"}`,
			`{"nodes":{"__typename":"Human","id":"h","name":"Hu"}}`},
		{"interface without typename", `subscription { nodes { __typename id ... on Robot { model } } }`, "", `{"id":"r","model":"m"}`,
			`{"nodes":{"__typename":"Node","id":"r"}}`},
		{"union list", `subscription { things { __typename ... on Robot { model } ... on Human { name } } }`, "", `[{"__typename":"Robot","model":"m"},{"__typename":"Human","name":"n"},{"__typename":"Alien"}]`,
			`{"things":[{"__typename":"Robot","model":"m"},{"__typename":"Human","name":"n"},{"__typename":"Alien"}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Query: tc.query}
			if tc.vars != "" {
				req.Variables = []byte(tc.vars)
			}
			p := mustCompile(t, c, req)
			dst := []byte("prefix")
			out, ok, err := p.Execute(dst, []byte(tc.event))
			if err != nil || !ok {
				t.Fatalf("Execute: ok=%v err=%v", ok, err)
			}
			got := string(out[len("prefix"):])
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("invalid JSON %s", got)
			}
		})
	}
}

func TestExecuteBadEvents(t *testing.T) {
	c := newTestCompiler(t, Options{})
	obj := mustCompile(t, c, Request{Query: `subscription { messageAdded(room: "r1") { id } }`})
	list := mustCompile(t, c, Request{Query: `subscription { orders { id } }`})
	cases := []struct {
		name  string
		plan  *Plan
		event string
	}{
		{"empty", obj, ``},
		{"not json", obj, `hello`},
		{"truncated", obj, `{"id":"7"`},
		{"trailing garbage", obj, `{"id":"7"} x`},
		{"two values", obj, `{} {}`},
		{"array for object", obj, `[{"id":"7"}]`},
		{"string for object", obj, `"x"`},
		{"null for object", obj, `null`},
		{"object for list", list, `{"id":"1"}`},
		{"bad escape", obj, `{"id":"\x"}`},
		{"control char", obj, "{\"id\":\"a\nb\"}"},
		{"bad number", obj, `{"id":01}`},
		{"bad literal", obj, `{"id":tru}`},
		{"unterminated nested", obj, `{"a":[1,2,{"b":}]}`},
		{"missing colon", obj, `{"id" "7"}`},
		{"trailing comma", obj, `{"id":"7",}`},
		{"too deep", obj, `{"a":` + strings.Repeat("[", maxEventNesting+2) + strings.Repeat("]", maxEventNesting+2) + `}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, ok, err := tc.plan.Execute(dst, []byte(tc.event))
			if !errors.Is(err, ErrBadEvent) || ok {
				t.Fatalf("ok=%v err=%v, want ErrBadEvent", ok, err)
			}
			if string(out) != "keep" {
				t.Errorf("dst changed to %q", out)
			}
		})
	}
}

func TestExecuteLargeEvent(t *testing.T) {
	c := newTestCompiler(t, Options{})
	p := mustCompile(t, c, Request{Query: `subscription { messageAdded(room: "r1") { id text } }`})
	big := `{"id":"1","pad":"` + strings.Repeat("x", 1<<20) + `","text":"` + strings.Repeat("é", 1000) + `"}`
	out, ok, err := p.Execute(nil, []byte(big))
	if err != nil || !ok || !json.Valid(out) {
		t.Fatalf("ok=%v err=%v", ok, err)
	}
	deep := `{"id":"1","x":` + strings.Repeat("[", maxEventNesting) + strings.Repeat("]", maxEventNesting) + `}`
	if _, ok, err := p.Execute(nil, []byte(deep)); err != nil || !ok {
		t.Fatalf("nesting at the limit: ok=%v err=%v", ok, err)
	}
}
