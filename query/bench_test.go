package query

import "testing"

// BenchmarkExecute measures projecting one typical chat message (the
// per-event, per-plan cost on the fan-out path); allocs/op should be 0.
func BenchmarkExecute(b *testing.B) {
	c := newTestCompiler(b, Options{})
	p := mustCompile(b, c, Request{Query: `subscription { messageAdded(room: "r1") { __typename id text createdAt tags author { id name } } }`})
	event := []byte(chatEvent)
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := p.Execute(buf[:0], event); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkFilter measures evaluating a where filter (string, nested path,
// in-list and or) over one event that it rejects, so no projection runs.
func BenchmarkFilter(b *testing.B) {
	c := newTestCompiler(b, Options{})
	p := mustCompile(b, c, Request{Query: `subscription { messageAdded(room: "r1", where: {text: {contains: "hi"}, or: [{author: {name: {eq: "Bob"}}}, {id: {in: ["1", "2", "3"]}}]}) { id } }`})
	event := []byte(chatEvent)
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := p.Execute(buf[:0], event); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkCompileCached measures Compile for a request whose plan is cached:
// the per-subscribe cost once a document has been seen.
func BenchmarkCompileCached(b *testing.B) {
	c := newTestCompiler(b, Options{})
	req := Request{
		Query:     `subscription Chat($r: ID!) { messageAdded(room: $r, where: {text: {contains: "hi"}}) { id text author { name } } }`,
		Variables: []byte(`{"r":"lobby"}`),
	}
	mustCompile(b, c, req)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Compile(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompileUncached measures a full compile (parse, check, validate,
// build) of a typical subscription.
func BenchmarkCompileUncached(b *testing.B) {
	c := NewCompiler(demoSchema(b), Options{}, 1)
	reqs := [2]Request{
		{Query: `subscription { messageAdded(room: "a", where: {text: {contains: "hi"}}) { id text author { name } } }`},
		{Query: `subscription { messageAdded(room: "b", where: {text: {contains: "hi"}}) { id text author { name } } }`},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := c.Compile(reqs[i&1]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecuteEscapes is BenchmarkExecute on a message whose strings
// hold escapes (a newline, quotes, an escaped surrogate pair), which take
// the slower, checking copy; allocs/op should be 0.
func BenchmarkExecuteEscapes(b *testing.B) {
	c := newTestCompiler(b, Options{})
	p := mustCompile(b, c, Request{Query: `subscription { messageAdded(room: "r1") { __typename id text createdAt tags author { id name } } }`})
	event := []byte(`{"id":"7","room":"r1","text":"line one\nline \"two\" \ud83d\ude00","author":{"id":"u1","name":"Ann \"A\""},"tags":["a","b"],"createdAt":"2024-01-01T00:00:00Z","extra":{"deep":[1,2.5e3,{"x":null}]}}`)
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := p.Execute(buf[:0], event); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
