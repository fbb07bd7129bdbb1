package query

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// orContains returns a MessageFilter value, as JSON, that ors n contains
// operators on text, each with the operand word.
func orContains(n int, word string) string {
	var sb strings.Builder
	sb.WriteString(`{"or":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"text":{"contains":"` + word + `"}}`)
	}
	sb.WriteString(`]}`)
	return sb.String()
}

// unquoteKeys turns the JSON of orContains into a GraphQL literal.
var unquoteKeys = strings.NewReplacer(`"or"`, "or", `"text"`, "text", `"contains"`, "contains")

// TestFilterOperandsAttack is the attack that stalled routing for every
// tenant: one filter of ~1,480 contains operands, within max_query_bytes,
// passed as a variable. It must be refused with FILTER_TOO_COMPLEX, quickly.
func TestFilterOperandsAttack(t *testing.T) {
	c := newTestCompiler(t, Options{})
	req := Request{
		Query:     `subscription ($w: MessageFilter) { messageAdded(room: "r1", where: $w) { id } }`,
		Variables: json.RawMessage(`{"w":` + orContains(1480, "needle") + `}`),
	}
	if n := len(req.Query) + len(req.Variables); n > 64<<10 {
		t.Fatalf("attack is %d bytes, over the default max_query_bytes", n)
	}
	start := time.Now()
	_, err := c.Compile(req)
	if got := errCode(err); got != CodeFilterTooComplex {
		t.Fatalf("code %q (%v), want %s", got, err, CodeFilterTooComplex)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing the attack took %v", d)
	}
	e := firstErr(t, err)
	if e.Extensions["limit"] != 100 {
		t.Errorf("extensions %v, want limit 100", e.Extensions)
	}
	if !strings.Contains(e.Message, "max_filter_operands") {
		t.Errorf("message %q does not name the setting", e.Message)
	}
}

// TestFilterOperands checks the operand count at limit-1, limit and
// limit+1, in every form a filter can take.
func TestFilterOperands(t *testing.T) {
	const q = `subscription ($w: MessageFilter) { messageAdded(room: "r1", where: $w) { id } }`
	lit := func(where string) Request {
		return Request{Query: `subscription { messageAdded(room: "r1", where: ` + where + `) { id } }`}
	}
	vars := func(where string) Request {
		return Request{Query: q, Variables: json.RawMessage(`{"w":` + where + `}`)}
	}
	list := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`"%d"`, i)
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	// nested builds and/or/not nesting with n operators in all: text eq
	// at the top, then not { or [ contains…, and [ startsWith… ] ] }.
	nested := func(n int) string {
		var parts []string
		for i := range n - 1 {
			if i%2 == 0 {
				parts = append(parts, `{text: {contains: "c"}}`)
			} else {
				parts = append(parts, `{and: [{author: {name: {startsWith: "s"}}}]}`)
			}
		}
		return `{text: {eq: "x"}, not: {or: [` + strings.Join(parts, ", ") + `]}}`
	}
	cases := []struct {
		name string
		opts Options
		req  Request
		code string
	}{
		{"literal or limit-1", Options{}, lit(unquoteKeys.Replace(orContains(99, "a"))), ""},
		{"literal or limit", Options{}, lit(unquoteKeys.Replace(orContains(100, "a"))), ""},
		{"literal or limit+1", Options{}, lit(unquoteKeys.Replace(orContains(101, "a"))), CodeFilterTooComplex},
		{"variable limit-1", Options{}, vars(orContains(99, "a")), ""},
		{"variable limit", Options{}, vars(orContains(100, "a")), ""},
		{"variable limit+1", Options{}, vars(orContains(101, "a")), CodeFilterTooComplex},
		{"nested limit-1", Options{MaxFilterOperands: 10}, lit(nested(9)), ""},
		{"nested limit", Options{MaxFilterOperands: 10}, lit(nested(10)), ""},
		{"nested limit+1", Options{MaxFilterOperands: 10}, lit(nested(11)), CodeFilterTooComplex},
		{"in items limit-1", Options{MaxFilterOperands: 10}, lit(`{id: {eq: "1"}, text: {in: ` + list(8) + `}}`), ""},
		{"in items limit", Options{MaxFilterOperands: 10}, lit(`{id: {eq: "1"}, text: {in: ` + list(9) + `}}`), ""},
		{"in items limit+1", Options{MaxFilterOperands: 10}, lit(`{id: {eq: "1"}, text: {in: ` + list(10) + `}}`), CodeFilterTooComplex},
		{"nin items in a variable", Options{MaxFilterOperands: 10}, vars(`{"id":{"eq":"1"},"text":{"nin":` + list(10) + `}}`), CodeFilterTooComplex},
		{"in list variable inside a literal", Options{MaxFilterOperands: 10},
			Request{Query: `subscription ($l: [String!]) { messageAdded(room: "r1", where: {id: {eq: "1"}, text: {in: $l}}) { id } }`, Variables: json.RawMessage(`{"l":` + list(10) + `}`)}, CodeFilterTooComplex},
		{"in list variable inside a literal at limit", Options{MaxFilterOperands: 10},
			Request{Query: `subscription ($l: [String!]) { messageAdded(room: "r1", where: {id: {eq: "1"}, text: {in: $l}}) { id } }`, Variables: json.RawMessage(`{"l":` + list(9) + `}`)}, ""},
		{"empty in counts 1", Options{MaxFilterOperands: 1}, lit(`{id: {eq: "1"}, text: {in: []}}`), CodeFilterTooComplex},
		{"nulls count nothing", Options{MaxFilterOperands: 1}, lit(`{id: {eq: "1"}, text: {eq: null, in: null}}`), ""},
		{"a variable counts where it is used", Options{MaxFilterOperands: 10},
			Request{Query: `subscription ($a: MessageFilter) { messageAdded(room: "r1", where: {or: [$a, $a, $a]}) { id } }`, Variables: json.RawMessage(`{"a":{"text":{"in":["a","b","c","d"]}}}`)}, CodeFilterTooComplex},
		{"variable default", Options{MaxFilterOperands: 2},
			Request{Query: `subscription ($w: MessageFilter = {text: {eq: "a"}, id: {eq: "1"}, room: {eq: "r"}}) { messageAdded(room: "r1", where: $w) { id } }`}, CodeFilterTooComplex},
		{"variable given over its default", Options{MaxFilterOperands: 2},
			Request{Query: `subscription ($w: MessageFilter = {text: {eq: "a"}, id: {eq: "1"}, room: {eq: "r"}}) { messageAdded(room: "r1", where: $w) { id } }`, Variables: json.RawMessage(`{"w":{"text":{"eq":"a"}}}`)}, ""},
		{"through a fragment", Options{MaxFilterOperands: 2},
			Request{Query: `subscription { ...F } fragment F on Subscription { messageAdded(room: "r1", where: {text: {eq: "a"}, id: {eq: "1"}, room: {eq: "r"}}) { id } }`}, CodeFilterTooComplex},
		{"before validation", Options{MaxFilterOperands: 2},
			lit(`{text: {eq: "a"}, id: {eq: "1"}, room: {eq: "r"}, nope: {eq: 1}}`), CodeFilterTooComplex},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCompiler(t, tc.opts)
			_, err := c.Compile(tc.req)
			if got := errCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
		})
	}
}

// TestFilterOperandsPrecheck checks that the operand limit is enforced by
// the bounded walk, before full validation.
func TestFilterOperandsPrecheck(t *testing.T) {
	c := newTestCompiler(t, Options{MaxFilterOperands: 3})
	_, code := c.precheck(`subscription { messageAdded(room: "r1", where: {or: [{text: {eq: "a"}}, {text: {eq: "b"}}, {text: {eq: "c"}}, {text: {eq: "d"}}]}) { id } }`)
	if code != CodeFilterTooComplex {
		t.Fatalf("precheck code %q, want %s", code, CodeFilterTooComplex)
	}
}

// TestFilterOperandsBounded checks that counting a huge filter stops at the
// limit, and that refusing one costs little.
func TestFilterOperandsBounded(t *testing.T) {
	var huge any
	if err := json.Unmarshal([]byte(orContains(5_000, "x")), &huge); err != nil {
		t.Fatal(err)
	}
	oc := operandCounter{limit: 100}
	if n := oc.jsonFilter(huge); n != 101 {
		t.Errorf("count = %d, want 101 (saturated)", n)
	}
	c := newTestCompiler(t, Options{MaxQueryBytes: 8 << 20})
	req := Request{
		Query:     `subscription ($w: MessageFilter) { messageAdded(room: "r1", where: $w) { id } }`,
		Variables: json.RawMessage(`{"w":` + orContains(20_000, "x") + `}`), // 660 KB
	}
	start := time.Now()
	if _, err := c.Compile(req); errCode(err) != CodeFilterTooComplex {
		t.Fatalf("code %q (%v), want %s", errCode(err), err, CodeFilterTooComplex)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing %d bytes of filter took %v", len(req.Variables), d)
	}
}

// TestFilterOperandsComplexity checks that filter operands count 1 each in
// the complexity score, and so against max_complexity.
func TestFilterOperandsComplexity(t *testing.T) {
	const base = `subscription { messageAdded(room: "r1"`
	cases := []struct {
		name       string
		opts       Options
		query      string
		complexity int
		code       string
	}{
		{"no filter", Options{}, base + `) { id text } }`, 3, ""},
		{"one operand", Options{}, base + `, where: {text: {eq: "a"}}) { id text } }`, 4, ""},
		{"nested and in", Options{}, base + `, where: {or: [{text: {contains: "a"}}, {not: {id: {in: ["1", "2", "3"]}}}]}) { id text } }`, 7, ""},
		{"operands at max_complexity", Options{MaxComplexity: 5}, base + `, where: {text: {eq: "a"}, id: {eq: "1"}}) { id text } }`, 5, ""},
		{"operands over max_complexity", Options{MaxComplexity: 5}, base + `, where: {text: {eq: "a"}, id: {in: ["1", "2"]}}) { id text } }`, 0, CodeQueryTooComplex},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCompiler(t, tc.opts)
			p, err := c.Compile(Request{Query: tc.query})
			if got := errCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			if err == nil && p.Complexity != tc.complexity {
				t.Errorf("complexity %d, want %d", p.Complexity, tc.complexity)
			}
		})
	}
}

// TestFilterOperandsSchemaDefault checks the exact count made while the
// filter compiles, which also covers a where default set by the schema.
func TestFilterOperandsSchemaDefault(t *testing.T) {
	s, err := LoadSchema("d.graphql", chatSDL+`
extend type Subscription {
  defaulted(where: MessageFilter = {text: {eq: "a"}, id: {in: ["1", "2"]}}): Message @topic(name: "d")
}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		limit int
		code  string
	}{{2, CodeFilterTooComplex}, {3, ""}} {
		c := NewCompiler(s, Options{MaxFilterOperands: tc.limit}, 0)
		if _, err := c.Compile(Request{Query: `subscription { defaulted { id } }`}); errCode(err) != tc.code {
			t.Errorf("limit %d: code %q (%v), want %q", tc.limit, errCode(err), err, tc.code)
		}
	}
}
