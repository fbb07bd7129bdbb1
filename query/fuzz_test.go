package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

func FuzzCompile(f *testing.F) {
	f.Add(`subscription { messageAdded(room: "r1") { id text } }`, []byte(nil))
	f.Add(`subscription ($r: ID!) { messageAdded(room: $r) { id } }`, []byte(`{"r":"x.>"}`))
	f.Add(`subscription ($w: MessageFilter) { messageAdded(room: "*", where: $w) { id author { name } } }`, []byte(`{"w":{"or":[{"text":{"eq":"a"}},{"not":{"id":{"in":[1,"2"]}}}]}}`))
	f.Add(`subscription { notifications { ...F } } fragment F on Message { id ...F }`, []byte(nil))
	f.Add(`subscription { nodes { __typename ... on Robot { model } } }`, []byte(`null`))
	f.Add(`subscription { feed(channel: "", flag: false, n: 0, x: 1e300) { id } }`, []byte(`{}`))
	c := NewCompiler(demoSchema(f), Options{}, 64)
	event := []byte(chatEvent)
	f.Fuzz(func(t *testing.T, query string, variables []byte) {
		p, err := c.Compile(Request{Query: query, Variables: variables, Claims: map[string]any{"sub": "u.>"}})
		if err != nil {
			if errCode(err) == "" {
				t.Fatalf("error without code: %v", err)
			}
			return
		}
		checkTopic(t, p.Topic)
		if len(p.Topic) > maxTopicBytes {
			t.Fatalf("topic of %d bytes", len(p.Topic))
		}
		out, ok, err := p.Execute(nil, event)
		if err == nil && ok && !clientDecodes(out) {
			t.Fatalf("invalid output %s", out)
		}
	})
}

func FuzzEscapeToken(f *testing.F) {
	for _, s := range []string{"", ">", "*", "x.>", "a.b", "a b", "\x00", "\t", "%", "%25", "é", "日本", "😀", "\xff\xfe", "ok-_1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EscapeToken(s)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("EscapeToken(%q) = %q", s, tok)
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] >= 0x7f {
				t.Fatalf("EscapeToken(%q) = %q has byte %#x", s, tok, tok[i])
			}
		}
		// Injective: the token decodes back to exactly s.
		if back, ok := unescapeToken(tok); !ok || back != s {
			t.Fatalf("EscapeToken(%q) = %q decodes to %q, %v", s, tok, back, ok)
		}
	})
}

func FuzzExecute(f *testing.F) {
	for _, s := range []string{
		chatEvent, `{}`, `[]`, `null`, `"x"`, `{"text":"a\ud800b"}`, "{\"text\":\"\xff\"}",
		`{"author":{"name":"Ann","name":"x"},"id":7}`, `{"t\u0065xt":"</script>"}`, `{"a":[[[[{}]]]]}`,
		`[{"id":1,"status":"paid","__typename":"Robot"},{"__typename":"Human\u0000"}]`, `{"id":1e999,"total":-0}`,
		`{"__typename":"Robot","model":{"k":"v"}}`, `{"id":"7"`, `{"text":"lo wo","createdAt":null}`,
		`{"id":1e400}`, `[{"total":-1E+400}]`, `{"id":1e-400,"text":"\udc00x"}`, `{"text":"\ud800\udc00\ud800"}`,
		`{"text":"\\ud800","author":{"name":"\uDBFF"}}`, `{"__typename":"Human\ud800","id":0.1e310}`,
	} {
		f.Add([]byte(s))
	}
	c := NewCompiler(demoSchema(f), Options{}, 0)
	var plans []*Plan
	for _, q := range []string{
		`subscription { m: messageAdded(room: "r1", where: {or: [{text: {contains: "lo"}}, {author: {name: {eq: "Ann"}}}, {id: {in: [7, "8"]}}]}) { __typename id text tags author { name id } } }`,
		`subscription { orders(status: "paid") { id total status } }`,
		`subscription { things { __typename ... on Robot { model } ... on Human { name } } }`,
		`subscription { nodes { __typename id } }`,
		`subscription { metricsWhere(where: {value: {gt: 1}, not: {count: {isNull: true}}}) { name value } }`,
	} {
		plans = append(plans, mustCompile(f, c, Request{Query: q}))
	}
	f.Fuzz(func(t *testing.T, event []byte) {
		for _, p := range plans {
			dst := []byte("x")
			out, ok, err := p.Execute(dst, event)
			switch {
			case err != nil:
				if !errors.Is(err, ErrBadEvent) || ok || !bytes.Equal(out, dst) {
					t.Fatalf("err=%v ok=%v out=%q", err, ok, out)
				}
				// A client-readable event (encoding/json reads it: numbers
				// within float64 range) is refused only for its shape.
				if json.Unmarshal(event, new(any)) == nil && !bytes.Contains(event, []byte("[[[[[[[[")) && (bytes.HasPrefix(bytes.TrimSpace(event), []byte("{")) || bytes.HasPrefix(bytes.TrimSpace(event), []byte("["))) && p.listDepth == 0 == (bytes.TrimSpace(event)[0] == '{') {
					t.Fatalf("valid event %q refused: %v", event, err)
				}
			case !ok:
				if !bytes.Equal(out, dst) {
					t.Fatalf("no match but output %q", out)
				}
			default:
				if !clientDecodes(out[1:]) {
					t.Fatalf("invalid output %q for %q", out, event)
				}
			}
		}
	})
}

// FuzzFilter compiles an arbitrary `where` value (as a variable, so every
// shape reaches the filter compiler) and evaluates it on an arbitrary
// event: compile either refuses with a coded error or yields a plan, and
// evaluation never panics and never yields invalid JSON.
func FuzzFilter(f *testing.F) {
	for _, s := range []struct{ where, event string }{
		{`{"text":{"contains":"lo"}}`, chatEvent},
		{`{"or":[{"text":{"eq":"x"}},{"author":{"name":{"startsWith":"A"}}}]}`, chatEvent},
		{`{"not":{"id":{"in":["7",8,"9"]}}}`, `{"id":7,"text":"x"}`},
		{`{"and":[{"createdAt":{"isNull":true}},{"text":{"gte":"a","lt":"z"}}]}`, `{"text":"m","createdAt":null}`},
		{`{"id":{"nin":[]},"room":{"neq":null}}`, `{}`},
		{`{"not":{"not":{"not":{"not":{"text":{"eq":"deep"}}}}}}`, `{"text":"deep"}`},
		{`{"author":{"id":{"eq":"\u0000"}}}`, `{"author":{"id":"\u0000"}}`},
		{`[]`, `{}`},
		{`"x"`, `[]`},
	} {
		f.Add(s.where, []byte(s.event))
	}
	c := NewCompiler(demoSchema(f), Options{}, 0)
	const q = `subscription($w: MessageFilter) { messageAdded(room: "r1", where: $w) { id text author { name } } }`
	f.Fuzz(func(t *testing.T, where string, event []byte) {
		if !json.Valid([]byte(where)) {
			return
		}
		p, err := c.Compile(Request{Query: q, Variables: json.RawMessage(`{"w":` + where + `}`)})
		if err != nil {
			var list gqlerror.List
			if !errors.As(err, &list) || len(list) == 0 || list[0].Extensions["code"] == nil {
				t.Fatalf("uncoded compile error for where %s: %v", where, err)
			}
			return
		}
		out, ok, err := p.Execute(nil, event)
		if err == nil && ok && !clientDecodes(out) {
			t.Fatalf("invalid output %q for where %s, event %q", out, where, event)
		}
	})
}
