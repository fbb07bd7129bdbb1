package query

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCompileHappy(t *testing.T) {
	c := newTestCompiler(t, Options{})
	cases := []struct {
		name        string
		req         Request
		field, rkey string
		topic       string
		complexity  int
	}{
		{"literal arg", Request{Query: `subscription { messageAdded(room: "r1") { id text } }`}, "messageAdded", "messageAdded", "chat.r1", 3},
		{"alias", Request{Query: `subscription S { m: messageAdded(room: "r1") { id } }`}, "messageAdded", "m", "chat.r1", 2},
		{"variable", Request{Query: `subscription S($r: ID!) { messageAdded(room: $r) { id } }`, Variables: []byte(`{"r":"lobby"}`)}, "messageAdded", "messageAdded", "chat.lobby", 2},
		{"int ID variable", Request{Query: `subscription ($r: ID!) { messageAdded(room: $r) { id } }`, Variables: []byte(`{"r":42}`)}, "messageAdded", "messageAdded", "chat.42", 2},
		{"int ID literal", Request{Query: `subscription { orderUpdated(id: 42) { id status total } }`}, "orderUpdated", "orderUpdated", "orders.42", 4},
		{"no directive", Request{Query: `subscription { metrics { name value } }`}, "metrics", "metrics", "metrics", 3},
		{"claims", Request{Query: `subscription { notifications { id } }`, Claims: map[string]any{"sub": "u1"}}, "notifications", "notifications", "users.u1.notifications", 2},
		{"numeric claim", Request{Query: `subscription { notifications { id } }`, Claims: map[string]any{"sub": float64(12)}}, "notifications", "notifications", "users.12.notifications", 2},
		{"hostile claim", Request{Query: `subscription { notifications { id } }`, Claims: map[string]any{"sub": "a.>"}}, "notifications", "notifications", "users.a%2E%3E.notifications", 2},
		{"operation name", Request{Query: `subscription A { metrics { name } } subscription B { messageAdded(room: "x") { id } }`, OperationName: "B"}, "messageAdded", "messageAdded", "chat.x", 2},
		{"inline fragment at root", Request{Query: `subscription { ... on Subscription { messageAdded(room: "r") { id } } }`}, "messageAdded", "messageAdded", "chat.r", 2},
		{"list field complexity", Request{Query: `subscription { orders { id status } }`}, "orders", "orders", "orders.all", 21},
		{"scalar kinds in topic", Request{Query: `subscription { feed(channel: "c", flag: true, n: -3, x: 1.5) { id } }`}, "feed", "feed", "feed.c.true.-3.1%2E5", 2},
		{"fragments", Request{Query: `subscription { messageAdded(room: "r") { ...F } } fragment F on Message { id author { ...U } } fragment U on User { name }`}, "messageAdded", "messageAdded", "chat.r", 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, c, tc.req)
			if p.Field != tc.field || p.ResponseKey != tc.rkey || p.Topic != tc.topic || p.Complexity != tc.complexity {
				t.Errorf("got field=%s key=%s topic=%s complexity=%d, want %s %s %s %d",
					p.Field, p.ResponseKey, p.Topic, p.Complexity, tc.field, tc.rkey, tc.topic, tc.complexity)
			}
			if len(p.Key) != 64 {
				t.Errorf("Key = %q, want 64 hex digits", p.Key)
			}
			if !validSubject(p.Topic) {
				t.Errorf("topic %q is not a valid subject", p.Topic)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	c := newTestCompiler(t, Options{})
	deepWhere := func(nots int) string {
		return strings.Repeat("{not: ", nots) + `{text: {eq: "x"}}` + strings.Repeat("}", nots)
	}
	cases := []struct {
		name string
		req  Request
		code string
	}{
		{"syntax", Request{Query: `subscription { messageAdded(room: "r") { id }`}, CodeParseFailed},
		{"bad token", Request{Query: `subscription { § }`}, CodeParseFailed},
		{"empty", Request{Query: ``}, CodeValidationFailed},
		{"query op", Request{Query: `{ health }`}, CodeValidationFailed},
		{"mutation op", Request{Query: `mutation { x }`}, CodeValidationFailed},
		{"unknown field", Request{Query: `subscription { messageAdded(room: "r") { nope } }`}, CodeValidationFailed},
		{"two root fields", Request{Query: `subscription { metrics { name } messageAdded(room: "r") { id } }`}, CodeValidationFailed},
		{"root typename", Request{Query: `subscription { __typename metrics { name } }`}, CodeValidationFailed},
		{"all root fields skipped", Request{Query: `subscription { metrics @skip(if: true) { name } }`}, CodeValidationFailed},
		{"unknown operation", Request{Query: `subscription A { metrics { name } }`, OperationName: "B"}, CodeValidationFailed},
		{"ambiguous operation", Request{Query: `subscription A { metrics { name } } subscription B { metrics { value } }`}, CodeValidationFailed},
		{"missing required arg", Request{Query: `subscription { messageAdded { id } }`}, CodeValidationFailed},
		{"missing variable", Request{Query: `subscription ($r: ID!) { messageAdded(room: $r) { id } }`}, CodeValidationFailed},
		{"variable wrong type", Request{Query: `subscription ($r: ID!) { messageAdded(room: $r) { id } }`, Variables: []byte(`{"r":{"a":1}}`)}, CodeValidationFailed},
		{"variables not object", Request{Query: `subscription { metrics { name } }`, Variables: []byte(`[1]`)}, CodeValidationFailed},
		{"variables not JSON", Request{Query: `subscription { metrics { name } }`, Variables: []byte(`{"a":`)}, CodeValidationFailed},
		{"filter literal type mismatch", Request{Query: `subscription { messageAdded(room: "r", where: {text: {eq: 5}}) { id } }`}, CodeValidationFailed},
		{"filter variable type mismatch", Request{Query: `subscription ($w: MessageFilter) { messageAdded(room: "r", where: $w) { id } }`, Variables: []byte(`{"w":{"text":{"eq":5}}}`)}, CodeValidationFailed},
		{"topic arg missing", Request{Query: `subscription { feed(flag: true, n: 1, x: 1) { id } }`}, CodeValidationFailed},
		{"topic arg null", Request{Query: `subscription ($c: String) { feed(channel: $c, flag: true, n: 1, x: 1) { id } }`, Variables: []byte(`{"c":null}`)}, CodeValidationFailed},
		{"topic too long", Request{Query: fmt.Sprintf(`subscription { messageAdded(room: %q) { id } }`, strings.Repeat("a", 10<<10))}, CodeValidationFailed},
		{"topic too long escaped", Request{Query: fmt.Sprintf(`subscription { messageAdded(room: %q) { id } }`, strings.Repeat(".", 400))}, CodeValidationFailed},
		{"fragment cycle", Request{Query: `subscription { messageAdded(room: "r") { ...A } } fragment A on Message { id ...B } fragment B on Message { text ...A }`}, CodeValidationFailed},
		{"missing claim", Request{Query: `subscription { notifications { id } }`}, CodeForbidden},
		{"empty claim", Request{Query: `subscription { notifications { id } }`, Claims: map[string]any{"sub": ""}}, CodeForbidden},
		{"object claim", Request{Query: `subscription { notifications { id } }`, Claims: map[string]any{"sub": map[string]any{}}}, CodeForbidden},
		{"too deep filter", Request{Query: `subscription { messageAdded(room: "r", where: ` + deepWhere(50) + `) { id } }`}, CodeFilterTooDeep},
		{"too deep", Request{Query: `subscription { messageAdded(room: "r") { author { ` + strings.Repeat("... on User { ", 1) + `name } } } }`}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := c.Compile(tc.req)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("compiled to topic %q, want %s", p.Topic, tc.code)
			}
			if got := errCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			for _, bad := range []string{"runtime", "panic", ".go:", "reflect"} {
				if strings.Contains(err.Error(), bad) {
					t.Errorf("error %q leaks internals (%q)", err, bad)
				}
			}
		})
	}
}

// TestLimits checks each limit at its boundary.
func TestLimits(t *testing.T) {
	const base = `subscription { messageAdded(room: "r") { id } }`
	pad := func(n int) string { return base + strings.Repeat(" ", n-len(base)) }
	aliases := func(n int) string {
		var sb strings.Builder
		sb.WriteString(`subscription { messageAdded(room: "r") {`)
		for i := range n {
			fmt.Fprintf(&sb, " a%d: id", i)
		}
		sb.WriteString(" } }")
		return sb.String()
	}
	where := func(depth int) string {
		nots := depth - 1
		return `subscription { messageAdded(room: "r", where: ` + strings.Repeat("{not: ", nots) + `{text: {eq: "x"}}` + strings.Repeat("}", nots) + `) { id } }`
	}
	inList := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf("%q", fmt.Sprint(i))
		}
		return `subscription { messageAdded(room: "r", where: {text: {in: [` + strings.Join(items, ",") + `]}}) { id } }`
	}
	cases := []struct {
		name string
		opts Options
		req  Request
		code string
	}{
		{"bytes limit-1", Options{MaxQueryBytes: 100}, Request{Query: pad(99)}, ""},
		{"bytes limit", Options{MaxQueryBytes: 100}, Request{Query: pad(100)}, ""},
		{"bytes limit+1", Options{MaxQueryBytes: 100}, Request{Query: pad(101)}, CodeQueryTooLarge},
		{"bytes with variables", Options{MaxQueryBytes: 100}, Request{Query: pad(90), Variables: []byte(`{"a":"12345"}`)}, CodeQueryTooLarge},
		{"default bytes", Options{}, Request{Query: pad(64<<10 + 1)}, CodeQueryTooLarge},
		{"tokens at limit", Options{MaxTokens: 12}, Request{Query: base}, ""},
		{"tokens over limit", Options{MaxTokens: 11}, Request{Query: base}, CodeQueryTooLarge},
		{"depth at limit", Options{MaxDepth: 3}, Request{Query: `subscription { messageAdded(room: "r") { author { name } } }`}, ""},
		{"depth over limit", Options{MaxDepth: 2}, Request{Query: `subscription { messageAdded(room: "r") { author { name } } }`}, CodeQueryTooComplex},
		{"depth through fragments", Options{MaxDepth: 2}, Request{Query: `subscription { messageAdded(room: "r") { ...F } } fragment F on Message { author { name } }`}, CodeQueryTooComplex},
		{"complexity at limit", Options{}, Request{Query: aliases(999)}, ""},
		{"complexity over limit", Options{}, Request{Query: aliases(1000)}, CodeQueryTooComplex},
		{"complexity list at limit", Options{MaxComplexity: 21}, Request{Query: `subscription { orders { id status } }`}, ""},
		{"complexity list over limit", Options{MaxComplexity: 20}, Request{Query: `subscription { orders { id status } }`}, CodeQueryTooComplex},
		{"filter depth 49", Options{}, Request{Query: where(49)}, ""},
		{"filter depth 50", Options{}, Request{Query: where(50)}, ""},
		{"filter depth 51", Options{}, Request{Query: where(51)}, CodeFilterTooDeep},
		{"filter depth custom", Options{MaxFilterDepth: 2}, Request{Query: where(3)}, CodeFilterTooDeep},
		{"path depth counts", Options{MaxFilterDepth: 1}, Request{Query: `subscription { messageAdded(room: "r", where: {author: {name: {eq: "x"}}}) { id } }`}, CodeFilterTooDeep},
		{"path depth at limit", Options{MaxFilterDepth: 2}, Request{Query: `subscription { messageAdded(room: "r", where: {author: {name: {eq: "x"}}}) { id } }`}, ""},
		{"and/or depth", Options{MaxFilterDepth: 2}, Request{Query: `subscription { messageAdded(room: "r", where: {and: [{or: [{text: {eq: "x"}}]}]}) { id } }`}, CodeFilterTooDeep},
		{"in list 100", Options{}, Request{Query: inList(100)}, ""},
		{"in list 101", Options{}, Request{Query: inList(101)}, CodeFilterTooComplex}, // operands, checked first
		{"in list 101 under operand limit", Options{MaxFilterOperands: 200}, Request{Query: inList(101)}, CodeValidationFailed},
		{"nin list custom", Options{MaxInList: 2}, Request{Query: `subscription { messageAdded(room: "r", where: {text: {nin: ["a","b","c"]}}) { id } }`}, CodeValidationFailed},
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

func TestLimitExtensions(t *testing.T) {
	c := newTestCompiler(t, Options{MaxQueryBytes: 50, MaxComplexity: 2})
	_, err := c.Compile(Request{Query: strings.Repeat(" ", 51)})
	e := firstErr(t, err)
	if e.Extensions["size"] != 51 || e.Extensions["limit"] != 50 {
		t.Errorf("extensions %v, want size 51 limit 50", e.Extensions)
	}
	_, err = c.Compile(Request{Query: `subscription{orders{id}}`})
	e = firstErr(t, err)
	if e.Extensions["code"] != CodeQueryTooComplex || e.Extensions["limit"] != 2 || e.Extensions["complexity"].(int) <= 2 {
		t.Errorf("extensions %v", e.Extensions)
	}
}

// TestBoundedPrecheck checks that hostile documents are refused by the
// bounded walk, with few visits and before full validation.
func TestBoundedPrecheck(t *testing.T) {
	nestedInline := `subscription { messageAdded(room: "r") { ` + strings.Repeat("... on Message { ", 700) + "id" + strings.Repeat(" }", 700) + " } }"
	var aliases strings.Builder
	aliases.WriteString(`subscription { messageAdded(room: "r") {`)
	for i := range 1000 {
		fmt.Fprintf(&aliases, " a%d: text", i)
	}
	aliases.WriteString(" } }")
	var bomb strings.Builder
	bomb.WriteString(`subscription { messageAdded(room: "r") { ...F0 } }`)
	for i := range 30 {
		fmt.Fprintf(&bomb, " fragment F%d on Message { ...F%d ...F%d }", i, i+1, i+1)
	}
	bomb.WriteString(" fragment F30 on Message { id }")
	cycle := `subscription { messageAdded(room: "r") { ...A } } fragment A on Message { ...B } fragment B on Message { ...A }`

	c := newTestCompiler(t, Options{MaxTokens: 1 << 20, MaxQueryBytes: 1 << 20})
	budget := visitBudget(&c.opts)
	cases := []struct {
		name      string
		query     string
		code      string
		maxVisits int
	}{
		{"700 nested inline fragments", nestedInline, CodeQueryTooComplex, maxFragmentNesting + 2},
		{"1000 aliases", aliases.String(), CodeQueryTooComplex, 1001},
		{"fragment bomb", bomb.String(), CodeQueryTooComplex, budget + 1},
		{"fragment cycle", cycle, CodeValidationFailed, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			visits, code := c.precheck(tc.query)
			if code != tc.code {
				t.Fatalf("code %q, want %q", code, tc.code)
			}
			if visits > tc.maxVisits {
				t.Errorf("visits = %d, want <= %d", visits, tc.maxVisits)
			}
			start := time.Now()
			_, err := c.Compile(Request{Query: tc.query})
			if errCode(err) != tc.code {
				t.Errorf("Compile code %q, want %q", errCode(err), tc.code)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Compile took %v", d)
			}
		})
	}
}

// TestValidationCostWithinLimits compiles the costliest shapes that pass the
// bounded walk and checks full validation stays fast.
func TestValidationCostWithinLimits(t *testing.T) {
	c := newTestCompiler(t, Options{})
	nested := `subscription { messageAdded(room: "r") { ` + strings.Repeat("... on Message { id text ", maxFragmentNesting) + strings.Repeat(" }", maxFragmentNesting) + " } }"
	same := `subscription { messageAdded(room: "r") {` + strings.Repeat(" text", 999) + " } }"
	for name, q := range map[string]string{"nested fragments at limit": nested, "999 identical fields": same} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			if _, err := c.Compile(Request{Query: q}); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Compile took %v", d)
			}
		})
	}
}

func TestCompileCache(t *testing.T) {
	c := NewCompiler(demoSchema(t), Options{}, 2)
	q := func(room string) Request {
		return Request{Query: `subscription ($r: ID!) { messageAdded(room: $r) { id } }`, Variables: []byte(`{"r":"` + room + `"}`)}
	}
	p1 := mustCompile(t, c, q("a"))
	if p2 := mustCompile(t, c, q("a")); p1 != p2 {
		t.Error("same request did not hit the cache")
	}
	mustCompile(t, c, q("b"))
	mustCompile(t, c, q("c"))
	if n := c.cacheLen(); n != 2 {
		t.Errorf("cache holds %d plans, want 2", n)
	}
	if p := mustCompile(t, c, q("a")); p == p1 || p.Key != p1.Key {
		t.Error("evicted plan should be rebuilt with the same key")
	}
	// Claims the topic uses are part of the cache key.
	n := Request{Query: `subscription { notifications { id } }`}
	n.Claims = map[string]any{"sub": "u1"}
	pa := mustCompile(t, c, n)
	n.Claims = map[string]any{"sub": "u2"}
	pb := mustCompile(t, c, n)
	if pa.Topic == pb.Topic {
		t.Errorf("different claims share topic %q", pa.Topic)
	}
	n.Claims = nil
	if _, err := c.Compile(n); errCode(err) != CodeForbidden {
		t.Errorf("no claims: %v, want FORBIDDEN", err)
	}
}

func TestCompileConcurrent(t *testing.T) {
	c := NewCompiler(demoSchema(t), Options{}, 8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				p, err := c.Compile(Request{Query: fmt.Sprintf(`subscription { messageAdded(room: "r%d") { id } }`, (g+i)%12)})
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := p.Execute(nil, []byte(`{"id":"1"}`)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

func TestKey(t *testing.T) {
	c := newTestCompiler(t, Options{})
	key := func(q, v string) string {
		t.Helper()
		req := Request{Query: q}
		if v != "" {
			req.Variables = []byte(v)
		}
		return mustCompile(t, c, req).Key
	}
	base := key(`subscription { messageAdded(room: "r1", where: {text: {eq: "x"}}) { id text } }`, "")
	same := []struct{ name, q, v string }{
		{"whitespace", "subscription{messageAdded(room:\"r1\",where:{text:{eq:\"x\"}}){id\n text}}", ""},
		{"variables", `subscription ($r: ID!, $t: String) { messageAdded(room: $r, where: {text: {eq: $t}}) { id text } }`, `{"r":"r1","t":"x"}`},
		{"named op and fragment", `subscription S { messageAdded(room: "r1", where: {text: {eq: "x"}}) { ...F } } fragment F on Message { id text }`, ""},
		{"duplicate field", `subscription { messageAdded(room: "r1", where: {text: {eq: "x"}}) { id text id } }`, ""},
		{"include true", `subscription { messageAdded(room: "r1", where: {text: {eq: "x"}}) { id text author @include(if: false) { name } } }`, ""},
	}
	for _, tc := range same {
		t.Run("same/"+tc.name, func(t *testing.T) {
			if k := key(tc.q, tc.v); k != base {
				t.Errorf("key differs")
			}
		})
	}
	diff := []struct{ name, q string }{
		{"alias", `subscription { messageAdded(room: "r1", where: {text: {eq: "x"}}) { id t: text } }`},
		{"root alias", `subscription { m: messageAdded(room: "r1", where: {text: {eq: "x"}}) { id text } }`},
		{"arg", `subscription { messageAdded(room: "r2", where: {text: {eq: "x"}}) { id text } }`},
		{"filter value", `subscription { messageAdded(room: "r1", where: {text: {eq: "y"}}) { id text } }`},
		{"filter op", `subscription { messageAdded(room: "r1", where: {text: {neq: "x"}}) { id text } }`},
		{"no filter", `subscription { messageAdded(room: "r1") { id text } }`},
		{"order", `subscription { messageAdded(room: "r1", where: {text: {eq: "x"}}) { text id } }`},
		{"typename", `subscription { messageAdded(room: "r1", where: {text: {eq: "x"}}) { id text __typename } }`},
	}
	for _, tc := range diff {
		t.Run("different/"+tc.name, func(t *testing.T) {
			if k := key(tc.q, ""); k == base {
				t.Errorf("key is the same")
			}
		})
	}
}
