package query

import (
	"fmt"
	"testing"
)

func TestWhereFilter(t *testing.T) {
	c := newTestCompiler(t, Options{})
	type ev struct {
		event string
		match bool
	}
	msg := `{"id":"7","room":"r1","text":"hello world","author":{"id":"u1","name":"Ann"},"createdAt":"2024-05-01"}`
	cases := []struct {
		name   string
		where  string
		events []ev
	}{
		{"eq", `{text: {eq: "hello world"}}`, []ev{{msg, true}, {`{"text":"nope"}`, false}, {`{"text":5}`, false}, {`{}`, false}, {`{"text":null}`, false}}},
		{"eq escaped", `{text: {eq: "a\"b"}}`, []ev{{`{"text":"a\"b"}`, true}, {`{"text":"a\u0022b"}`, true}, {`{"text":"ab"}`, false}}},
		{"neq", `{text: {neq: "x"}}`, []ev{{msg, true}, {`{"text":"x"}`, false}, {`{"text":1}`, false}, {`{}`, true}, {`{"text":null}`, true}}},
		{"in", `{text: {in: ["a", "hello world"]}}`, []ev{{msg, true}, {`{"text":"b"}`, false}, {`{"text":true}`, false}, {`{}`, false}}},
		{"nin", `{text: {nin: ["a", "b"]}}`, []ev{{msg, true}, {`{"text":"b"}`, false}, {`{"text":[]}`, false}, {`{}`, true}}},
		{"contains", `{text: {contains: "lo wo"}}`, []ev{{msg, true}, {`{"text":"hello"}`, false}, {`{"text":12}`, false}, {`{"text":"lo\u0020wo"}`, true}}},
		{"startsWith", `{text: {startsWith: "hell"}}`, []ev{{msg, true}, {`{"text":"shell"}`, false}, {`{"text":{}}`, false}}},
		{"isNull true", `{createdAt: {isNull: true}}`, []ev{{msg, false}, {`{}`, true}, {`{"createdAt":null}`, true}}},
		{"isNull false", `{createdAt: {isNull: false}}`, []ev{{msg, true}, {`{}`, false}, {`{"createdAt":null}`, false}, {`{"createdAt":1}`, true}}},
		{"string gt", `{createdAt: {gt: "2024-01-01"}}`, []ev{{msg, true}, {`{"createdAt":"2023-12-31"}`, false}, {`{"createdAt":20240601}`, false}}},
		{"string gte lte", `{createdAt: {gte: "2024-05-01", lte: "2024-05-01"}}`, []ev{{msg, true}, {`{"createdAt":"2024-05-02"}`, false}}},
		{"string lt", `{createdAt: {lt: "2024-05-01"}}`, []ev{{msg, false}, {`{"createdAt":"2024-04-30"}`, true}}},
		{"ID as string or number", `{id: {eq: "7"}}`, []ev{{msg, true}, {`{"id":7}`, true}, {`{"id":7.0}`, false}, {`{"id":"07"}`, false}, {`{"id":true}`, false}}},
		{"ID int literal", `{id: {in: [7, 8]}}`, []ev{{`{"id":"8"}`, true}, {`{"id":9}`, false}}},
		{"nested path", `{author: {name: {eq: "Ann"}}}`, []ev{{msg, true}, {`{"author":{"name":"Bob"}}`, false}, {`{"author":null}`, false}, {`{"author":"Ann"}`, false}, {`{}`, false}}},
		{"nested path neq absent", `{author: {name: {neq: "Ann"}}}`, []ev{{msg, false}, {`{}`, true}, {`{"author":{"name":"Bob"}}`, true}}},
		{"and", `{and: [{text: {contains: "hello"}}, {author: {id: {eq: "u1"}}}]}`, []ev{{msg, true}, {`{"text":"hello","author":{"id":"u2"}}`, false}}},
		{"or", `{or: [{text: {eq: "a"}}, {text: {eq: "b"}}]}`, []ev{{`{"text":"a"}`, true}, {`{"text":"b"}`, true}, {`{"text":"c"}`, false}}},
		{"not", `{not: {text: {eq: "a"}}}`, []ev{{`{"text":"a"}`, false}, {`{"text":"b"}`, true}, {`{"text":1}`, true}}},
		{"nested combinators", `{or: [{and: [{text: {eq: "a"}}, {not: {author: {name: {eq: "x"}}}}]}, {id: {eq: "1"}}]}`, []ev{{`{"text":"a","author":{"name":"y"}}`, true}, {`{"text":"a","author":{"name":"x"}}`, false}, {`{"id":1,"text":"z"}`, true}}},
		{"empty and is true", `{and: []}`, []ev{{msg, true}}},
		{"empty or is false", `{or: []}`, []ev{{msg, false}}},
		{"combinators inside path", `{author: {or: [{name: {eq: "Ann"}}, {id: {eq: "u9"}}]}}`, []ev{{msg, true}, {`{"author":{"id":"u9"}}`, true}, {`{"author":{"id":"u8"}}`, false}}},
		{"null operator ignored", `{text: {eq: null, contains: "hello"}}`, []ev{{msg, true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, c, Request{Query: `subscription { messageAdded(room: "r1", where: ` + tc.where + `) { id } }`})
			for _, e := range tc.events {
				out, ok, err := p.Execute(nil, []byte(e.event))
				if err != nil {
					t.Fatalf("%s: %v", e.event, err)
				}
				if ok != e.match {
					t.Errorf("%s: match=%v, want %v", e.event, ok, e.match)
				}
				if !ok && out != nil {
					t.Errorf("no match but output %q", out)
				}
			}
		})
	}
}

func TestNumberFilter(t *testing.T) {
	c := newTestCompiler(t, Options{})
	cases := []struct {
		name  string
		where string
		event string
		match bool
	}{
		{"float eq int text", `{value: {eq: 1.5}}`, `{"value":1.5}`, true},
		{"float eq exp", `{value: {eq: 1500}}`, `{"value":1.5e3}`, true},
		{"float neq", `{value: {neq: 1}}`, `{"value":1.0}`, false},
		{"float gt", `{value: {gt: 1}}`, `{"value":1.0001}`, true},
		{"float gt equal", `{value: {gt: 1}}`, `{"value":1}`, false},
		{"float gte", `{value: {gte: 1}}`, `{"value":1}`, true},
		{"float lt", `{value: {lt: -2}}`, `{"value":-3}`, true},
		{"float lte", `{value: {lte: -2}}`, `{"value":-1}`, false},
		{"float string mismatch", `{value: {gt: 1}}`, `{"value":"5"}`, false},
		{"float in", `{value: {in: [1, 2.5]}}`, `{"value":2.5}`, true},
		{"float nin", `{value: {nin: [1, 2.5]}}`, `{"value":3}`, true},
		{"int eq", `{count: {eq: 3}}`, `{"count":3}`, true},
		{"int big exact", `{count: {eq: 9007199254740993}}`, `{"count":9007199254740992}`, false},
		{"int big exact eq", `{count: {eq: 9007199254740993}}`, `{"count":9007199254740993}`, true},
		{"int negative order", `{count: {lt: -5}}`, `{"count":-10}`, true},
		{"int negative order 2", `{count: {gt: -5}}`, `{"count":-10}`, false},
		{"int vs float event", `{count: {lt: 4}}`, `{"count":3.5}`, true},
		{"int zero", `{count: {eq: 0}}`, `{"count":-0}`, true},
		{"int isNull", `{count: {isNull: true}}`, `{"count":null}`, true},
		{"int bool mismatch", `{count: {eq: 1}}`, `{"count":true}`, false},
		{"huge event number", `{value: {gt: 1}}`, `{"value":1.7976931348623157e308}`, true}, // 1e400: a bad event (TestExecuteNumbersOutOfRange)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, c, Request{Query: `subscription { metricsWhere(where: ` + tc.where + `) { name } }`})
			_, ok, err := p.Execute(nil, []byte(tc.event))
			if err != nil || ok != tc.match {
				t.Errorf("match=%v err=%v, want %v", ok, err, tc.match)
			}
		})
	}
}

func TestFilterVariables(t *testing.T) {
	c := newTestCompiler(t, Options{})
	q := `subscription ($w: MetricFilter) { metricsWhere(where: $w) { name } }`
	cases := []struct {
		name, vars, event string
		match             bool
	}{
		{"int var", `{"w":{"count":{"gte":10}}}`, `{"count":10}`, true},
		{"float var", `{"w":{"value":{"lt":0.5}}}`, `{"value":0.25}`, true},
		{"in var", `{"w":{"name":{"in":["a","b"]}}}`, `{"name":"b"}`, true},
		{"single value in", `{"w":{"name":{"in":"a"}}}`, `{"name":"a"}`, true},
		{"deep var", `{"w":{"not":{"not":{"name":{"eq":"a"}}}}}`, `{"name":"a"}`, true},
		{"null where", `{"w":null}`, `{"name":"zzz"}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustCompile(t, c, Request{Query: q, Variables: []byte(tc.vars)})
			_, ok, err := p.Execute(nil, []byte(tc.event))
			if err != nil || ok != tc.match {
				t.Errorf("match=%v err=%v, want %v", ok, err, tc.match)
			}
		})
	}
	bad := []struct{ name, vars string }{
		{"string for int", `{"w":{"count":{"eq":"5"}}}`},
		{"fraction for int", `{"w":{"count":{"eq":1.5}}}`},
		{"number for string", `{"w":{"name":{"eq":5}}}`},
		{"unknown field", `{"w":{"nope":{"eq":5}}}`},
	}
	for _, tc := range bad {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			_, err := c.Compile(Request{Query: q, Variables: []byte(tc.vars)})
			if errCode(err) != CodeValidationFailed {
				t.Errorf("err %v, want %s", err, CodeValidationFailed)
			}
		})
	}
	long := fmt.Sprintf(`{"w":{"count":{"in":[%s0]}}}`, repeatStr("1,", 100))
	wide := newTestCompiler(t, Options{MaxFilterOperands: 1000})
	if _, err := wide.Compile(Request{Query: q, Variables: []byte(long)}); errCode(err) != CodeValidationFailed {
		t.Errorf("in list of 101: %v, want %s", err, CodeValidationFailed)
	}
	deep := `{"w":` + repeatStr(`{"not":`, 51) + `{"name":{"eq":"a"}}` + repeatStr("}", 52)
	if _, err := c.Compile(Request{Query: q, Variables: []byte(deep)}); errCode(err) != CodeFilterTooDeep {
		t.Errorf("deep variable filter: %v, want %s", err, CodeFilterTooDeep)
	}
}

func repeatStr(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func TestEqualityArgs(t *testing.T) {
	c := newTestCompiler(t, Options{})
	cases := []struct {
		name, args, event string
		match             bool
	}{
		{"ID string", `id: "7"`, `{"id":"7"}`, true},
		{"ID number event", `id: "7"`, `{"id":7}`, true},
		{"ID int literal", `id: 7`, `{"id":"7"}`, true},
		{"ID other", `id: "7"`, `{"id":"8"}`, false},
		{"ID missing", `id: "7"`, `{}`, false},
		{"String", `text: "hi"`, `{"text":"hi"}`, true},
		{"String vs number", `text: "5"`, `{"text":5}`, false},
		{"Boolean", `active: true`, `{"active":true}`, true},
		{"Boolean false", `active: true`, `{"active":false}`, false},
		{"Int", `n: 3`, `{"n":3}`, true},
		{"Int vs string", `n: 3`, `{"n":"3"}`, false},
		{"two args", `id: "1", text: "a"`, `{"id":"1","text":"b"}`, false},
		{"null arg filters nothing", `id: null`, `{"id":"9"}`, true},
		{"no args", ``, `{"x":1}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := `subscription { messageById` + map[bool]string{true: "(" + tc.args + ")", false: ""}[tc.args != ""] + ` { id } }`
			p := mustCompile(t, c, Request{Query: q})
			_, ok, err := p.Execute(nil, []byte(tc.event))
			if err != nil || ok != tc.match {
				t.Errorf("match=%v err=%v, want %v", ok, err, tc.match)
			}
		})
	}
	// On a list return type the filter keeps matching elements.
	p := mustCompile(t, c, Request{Query: `subscription { orders(status: "paid") { id } }`})
	out, ok, err := p.Execute(nil, []byte(`[{"id":1,"status":"paid"},{"id":2,"status":"new"},{"id":3,"status":"paid"}]`))
	if err != nil || !ok || string(out) != `{"orders":[{"id":1},{"id":3}]}` {
		t.Errorf("list filter: %s %v %v", out, ok, err)
	}
	if _, ok, _ := p.Execute(nil, []byte(`[{"id":2,"status":"new"}]`)); ok {
		t.Error("list with no matching element matched")
	}
}
