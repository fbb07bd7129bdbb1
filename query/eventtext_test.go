package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// clientDecodes reports whether a strict client can read b: encoding/json
// refuses numbers out of float64 range (JavaScript reads them as Infinity,
// which JSON cannot carry back), and b must hold no unpaired UTF-16
// surrogate escape (which strict decoders refuse and others turn into
// text that is not Unicode).
func clientDecodes(b []byte) bool {
	var v any
	return json.Unmarshal(b, &v) == nil && !hasLoneSurrogate(b)
}

// hasLoneSurrogate reports whether the JSON text b holds a \u escape of a
// UTF-16 surrogate that is not part of a high-low pair.
func hasLoneSurrogate(b []byte) bool {
	hex := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			switch {
			case c >= '0' && c <= '9':
				n = n<<4 | int(c-'0')
			case c >= 'a' && c <= 'f':
				n = n<<4 | int(c-'a'+10)
			case c >= 'A' && c <= 'F':
				n = n<<4 | int(c-'A'+10)
			default:
				return 0, false
			}
		}
		return n, true
	}
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] != 'u' || i+6 > len(b) {
			i++ // skip the escaped character, e.g. the second \ of \\
			continue
		}
		r, _ := hex(b[i+2 : i+6])
		switch {
		case r >= 0xDC00 && r < 0xE000:
			return true
		case r >= 0xD800 && r < 0xDC00:
			if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
				return true
			}
			if r2, ok := hex(b[i+8 : i+12]); !ok || r2 < 0xDC00 || r2 >= 0xE000 {
				return true
			}
			i += 6
		}
		i += 5
	}
	return false
}

// label shortens a long number for a subtest name.
func label(n string) string {
	if len(n) <= 32 {
		return n
	}
	return fmt.Sprintf("%s…(%d bytes)", n[:8], len(n))
}

// TestExecuteNumbersOutOfRange: a number that float64 cannot hold is not
// JSON a client can read, so the event is refused as ErrBadEvent (the node
// counts it as invalid), wherever the number sits; numbers within range,
// and those that underflow to zero, pass through unchanged.
func TestExecuteNumbersOutOfRange(t *testing.T) {
	c := newTestCompiler(t, Options{})
	obj := mustCompile(t, c, Request{Query: `subscription { messageAdded(room: "r1") { id text } }`})
	list := mustCompile(t, c, Request{Query: `subscription { orders { id total } }`})
	refused := []string{
		"1e400", "-1e400", "1E+400", "1e309", "1.8e308", "-1.7976931348623159e308", "10e308", "0.1e310",
		"1" + strings.Repeat("0", 309), "-" + strings.Repeat("9", 400) + ".5",
		"1e99999999999999999999999", "0.000001e315",
	}
	for _, n := range refused {
		for _, ev := range []struct {
			name  string
			plan  *Plan
			event string
		}{
			{"selected", obj, `{"id":` + n + `,"text":"x"}`},
			{"not selected", obj, `{"id":"1","text":"x","n":` + n + `}`},
			{"nested", obj, `{"id":"1","text":"x","extra":{"deep":[1,{"n":[` + n + `]}]}}`},
			{"list element", list, `[{"id":"1","total":1},{"id":"2","total":` + n + `}]`},
		} {
			t.Run(label(n)+"/"+ev.name, func(t *testing.T) {
				out, ok, err := ev.plan.Execute([]byte("keep"), []byte(ev.event))
				if !errors.Is(err, ErrBadEvent) || ok || string(out) != "keep" {
					t.Fatalf("ok=%v err=%v out=%q, want ErrBadEvent", ok, err, out)
				}
				if !strings.Contains(err.Error(), "out of range") {
					t.Errorf("error %q does not say why", err)
				}
			})
		}
	}
	accepted := []string{
		"1e308", "-1e308", "1.7976931348623157e308", "-1.7976931348623157e308", "1.7976931348623158e308",
		"4.9e-324", "5e-324", "1e-400", "-1e-400", "1e-99999999999999999999", "0e999999", "0.0E+400", "-0.000e401",
		"0.00001e310", "9" + strings.Repeat("0", 307), "123", "-0", "0.5",
	}
	for _, n := range accepted {
		t.Run("accepted/"+label(n), func(t *testing.T) {
			event := `{"id":` + n + `,"text":"x","n":` + n + `}`
			out, ok, err := obj.Execute(nil, []byte(event))
			if err != nil || !ok {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			if want := `{"messageAdded":{"id":` + n + `,"text":"x"}}`; string(out) != want {
				t.Errorf("out %s, want %s", out, want)
			}
			if !clientDecodes(out) {
				t.Errorf("a client cannot decode %s", out)
			}
		})
	}
}

// TestExecuteLoneSurrogates: a \u escape of a UTF-16 surrogate outside a
// high-low pair is not Unicode; it becomes \ufffd in the output, as bytes
// that are not UTF-8 do, and the filter sees U+FFFD too.
func TestExecuteLoneSurrogates(t *testing.T) {
	c := newTestCompiler(t, Options{})
	p := mustCompile(t, c, Request{Query: `subscription { messageAdded(room: "r1") { text author { name } } }`})
	cases := []struct{ in, want string }{
		{`\ud800`, `\ufffd`},
		{`\udc00`, `\ufffd`},
		{`\udc00x`, `\ufffdx`},
		{`a\ud800b`, `a\ufffdb`},
		{`\uDBFF`, `\ufffd`},
		{`\udfff`, `\ufffd`},
		{`\ud800\udc00`, `\ud800\udc00`},
		{`\uD83D\uDE00 ok`, `\uD83D\uDE00 ok`},
		{`\ud800\ud800\udc00`, `\ufffd\ud800\udc00`},
		{`\udc00\ud800`, `\ufffd\ufffd`},
		{`\ud800\u0041`, `\ufffd\u0041`},
		{`\ud800\n`, `\ufffd\n`},
		{`\\ud800`, `\\ud800`},
		{`\\\ud800`, `\\\ufffd`},
		{`\u00e9\u2028`, `\u00e9\u2028`},
		{`x` + strings.Repeat(`\ud83d`, 3), `x` + strings.Repeat(`\ufffd`, 3)},
		{"\xff" + `\ud800`, `\ufffd\ufffd`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			event := `{"text":"` + tc.in + `","author":{"name":"` + tc.in + `"}}`
			out, ok, replaced, err := p.ExecuteCounted(nil, []byte(event))
			if err != nil || !ok {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			want := `{"messageAdded":{"text":"` + tc.want + `","author":{"name":"` + tc.want + `"}}}`
			if string(out) != want {
				t.Errorf("out %s\nwant %s", out, want)
			}
			if !clientDecodes(out) {
				t.Errorf("a client cannot decode %s", out)
			}
			if wantRep := tc.in != tc.want; replaced != wantRep {
				t.Errorf("replaced = %v, want %v", replaced, wantRep)
			}
		})
	}

	// The filter compares what the client receives.
	f := mustCompile(t, c, Request{Query: `subscription { messageAdded(room: "r1", where: {text: {eq: "a\uFFFDb"}}) { text } }`})
	if out, ok, err := f.Execute(nil, []byte(`{"text":"a\ud800b"}`)); err != nil || !ok || string(out) != `{"messageAdded":{"text":"a\ufffdb"}}` {
		t.Errorf("filter on a lone surrogate: ok=%v err=%v out=%s", ok, err, out)
	}

	// Other places event text reaches the output: list elements and an
	// abstract type's __typename taken from the event.
	list := mustCompile(t, c, Request{Query: `subscription { orders { status } }`})
	if out, _, replaced, err := list.ExecuteCounted(nil, []byte(`[{"status":"ok"},{"status":"\udfff"}]`)); err != nil || !replaced || string(out) != `{"orders":[{"status":"ok"},{"status":"\ufffd"}]}` {
		t.Errorf("list: replaced=%v err=%v out=%s", replaced, err, out)
	}
	nodes := mustCompile(t, c, Request{Query: `subscription { nodes { __typename id } }`})
	if out, _, replaced, err := nodes.ExecuteCounted(nil, []byte(`{"__typename":"Bot\ud800","id":"1"}`)); err != nil || !replaced || string(out) != `{"nodes":{"__typename":"Bot\ufffd","id":"1"}}` {
		t.Errorf("__typename: replaced=%v err=%v out=%s", replaced, err, out)
	}
	// A clean event reports no replacement.
	if _, _, replaced, err := p.ExecuteCounted(nil, []byte(chatEvent)); err != nil || replaced {
		t.Errorf("clean event: replaced=%v err=%v", replaced, err)
	}
}

// TestScanNumberRange compares the range check of scanNumber with
// strconv.ParseFloat on numbers around the edges of float64's range.
func TestScanNumberRange(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	for range 5000 {
		var sb strings.Builder
		if r.IntN(2) == 0 {
			sb.WriteByte('-')
		}
		switch r.IntN(4) {
		case 0: // 0.000ddd
			sb.WriteString("0." + strings.Repeat("0", r.IntN(12)) + digits(1+r.IntN(20)))
		case 1: // long integers
			sb.WriteString(fmt.Sprint(1+r.IntN(9)) + digits(300+r.IntN(15)))
		default:
			sb.WriteString(fmt.Sprint(1+r.IntN(9)) + digits(r.IntN(4)))
			if r.IntN(2) == 0 {
				sb.WriteString("." + digits(1+r.IntN(20)))
			}
		}
		if r.IntN(4) != 1 {
			sb.WriteString([]string{"e", "E", "e+", "e-"}[r.IntN(4)] + fmt.Sprint(290+r.IntN(40)))
		}
		n := sb.String()
		f, _ := strconv.ParseFloat(n, 64)
		end, ok := scanNumber([]byte(n), 0)
		if end != len(n) {
			t.Fatalf("scanNumber(%q) stopped at %d", n, end)
		}
		if want := !math.IsInf(f, 0); ok != want {
			t.Fatalf("scanNumber(%q) ok=%v, ParseFloat gives %v", n, ok, f)
		}
	}
}

// TestExecuteDoesNotAllocate: the per-event path allocates nothing, for
// clean events and for those whose text is replaced.
func TestExecuteDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race")
	}
	c := newTestCompiler(t, Options{})
	obj := mustCompile(t, c, Request{Query: `subscription { messageAdded(room: "r1", where: {text: {contains: "h"}}) { __typename id text tags author { id name } } }`})
	list := mustCompile(t, c, Request{Query: `subscription { orders { id total status } }`})
	buf := make([]byte, 0, 1024)
	for _, tc := range []struct {
		name  string
		plan  *Plan
		event string
	}{
		{"clean", obj, chatEvent},
		{"escapes and surrogates", obj, `{"id":"7","text":"h\ud83d\ude00 \ud800 \"q\" \n","author":{"id":"u1","name":"\udc00` + "\xff" + `"},"tags":["\u00e9"],"n":1e-400}`},
		{"list", list, `[{"id":1,"total":1.7976931348623157e308,"status":"\udfff"},{"id":2,"total":-0.5e-10,"status":"ok"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			event := []byte(tc.event)
			if _, ok, _, err := tc.plan.ExecuteCounted(buf[:0], event); err != nil || !ok {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			if n := testing.AllocsPerRun(200, func() { tc.plan.ExecuteCounted(buf[:0], event) }); n != 0 {
				t.Fatalf("Execute allocates %v times per event, want 0", n)
			}
		})
	}
}
