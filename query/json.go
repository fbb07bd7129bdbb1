package query

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds a small validating JSON scanner over []byte. It never
// allocates on valid input and never recurses on event data, so a hostile
// event can cost time linear in its size but no stack or heap.

// maxEventNesting bounds how deeply arrays and objects may nest in an event,
// as encoding/json does. Deeper events are rejected as ErrBadEvent.
const maxEventNesting = 10000

// span is the [s, e) byte range of one JSON value; s < 0 means absent.
type span struct{ s, e int }

var noSpan = span{-1, -1}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanString scans the string starting at b[i] == '"'. It returns the index
// after the closing quote and whether the string holds any escape.
func scanString(b []byte, i int) (end int, esc, ok bool) {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, esc, true
		case c == '\\':
			esc = true
			i++
			if i >= len(b) {
				return i, esc, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return i, esc, false
				}
				i += 5
			default:
				return i, esc, false
			}
		case c < 0x20:
			return i, esc, false
		default:
			i++
		}
	}
	return i, esc, false
}

// scanNumber scans the number starting at b[i] and returns the index after
// it. A number whose value float64 cannot hold (1e400: JSON allows it, but
// clients read it as Infinity or fail) is refused as if it were not a number;
// one that underflows (1e-400) reads as zero everywhere and is accepted.
func scanNumber(b []byte, i int) (int, bool) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	intStart := i
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return i, false
	}
	intEnd := i
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return i, false
		}
	}
	if i >= len(b) || b[i] != 'e' && b[i] != 'E' {
		// No exponent: out of range only with more than 308 integer digits.
		if intEnd-intStart <= 308 {
			return i, true
		}
		return i, inRange(b[start:i], intStart-start, intEnd-start, 0)
	}
	i++
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	d := i
	exp := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if exp < 1_000_000 { // far past any float64 exponent: saturate
			exp = exp*10 + int(b[i]-'0')
		}
		i++
	}
	if i == d {
		return i, false
	}
	if neg {
		exp = -exp
	}
	return i, inRange(b[start:i], intStart-start, intEnd-start, exp)
}

// inRange reports whether the syntactically valid JSON number n, whose
// integer digits are n[is:ie] and whose exponent is exp (saturated), is
// within float64 range. Only numbers near 1e308 need parsing.
func inRange(n []byte, is, ie, exp int) bool {
	mag := ie - is - 1 // the power of ten of the first significant digit
	if n[is] == '0' {
		// 0.000ddd: count the fraction's leading zeros; all zeros is zero.
		j := ie + 1
		for j < len(n) && n[j] == '0' {
			j++
		}
		if ie >= len(n) || n[ie] != '.' || j >= len(n) || n[j] < '1' || n[j] > '9' {
			return true
		}
		mag = ie - j
	}
	switch e := mag + exp; {
	case e < 308:
		return true
	case e > 308:
		return false
	}
	f, _ := strconv.ParseFloat(string(n), 64)
	return !math.IsInf(f, 0)
}

// numberOutOfRange reports whether the bytes before end are a JSON number
// that float64 cannot hold: why a scan that stopped at end failed. It is for
// error messages only.
func numberOutOfRange(b []byte, end int) bool {
	s := end
	for s > 0 && strings.IndexByte("0123456789+-.eE", b[s-1]) >= 0 {
		s--
	}
	if s == end {
		return false
	}
	f, err := strconv.ParseFloat(string(b[s:end]), 64)
	return err != nil && math.IsInf(f, 0)
}

func scanLiteral(b []byte, i int) (int, bool) {
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
			return i + len(lit), true
		}
	}
	return i, false
}

// skipValue validates the value starting at b[i] (after optional
// whitespace) and returns the index just after it.
func skipValue(b []byte, i int) (int, bool) {
	i = skipWS(b, i)
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		end, _, ok := scanString(b, i)
		return end, ok
	case '{', '[':
		return skipContainer(b, i)
	case 't', 'f', 'n':
		return scanLiteral(b, i)
	default:
		return scanNumber(b, i)
	}
}

// scanKeyColon scans `"key" :` at b[i] and returns the index after the colon.
func scanKeyColon(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, _, ok := scanString(b, i)
	if !ok {
		return i, false
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return i + 1, true
}

// skipContainer validates the object or array at b[i] without recursion,
// keeping one bit per open container (1 = object).
func skipContainer(b []byte, i int) (int, bool) {
	var small [4]uint64 // 256 levels on the stack; deeper events grow it once
	stack := small[:]
	depth := 0
	ok := true
	for {
		// A value starts at i.
		i = skipWS(b, i)
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case '{', '[':
			obj := b[i] == '{'
			i = skipWS(b, i+1)
			if i < len(b) && (obj && b[i] == '}' || !obj && b[i] == ']') {
				i++
				break
			}
			if depth >= maxEventNesting {
				return i, false
			}
			if depth>>6 >= len(stack) {
				stack = append(stack, make([]uint64, len(stack))...)
			}
			if obj {
				stack[depth>>6] |= 1 << (depth & 63)
				depth++
				if i, ok = scanKeyColon(b, i); !ok {
					return i, false
				}
			} else {
				stack[depth>>6] &^= 1 << (depth & 63)
				depth++
			}
			continue
		case '"':
			if i, _, ok = scanString(b, i); !ok {
				return i, false
			}
		case 't', 'f', 'n':
			if i, ok = scanLiteral(b, i); !ok {
				return i, false
			}
		default:
			if i, ok = scanNumber(b, i); !ok {
				return i, false
			}
		}
		// A value ended at i: close what ends here, or move to the next one.
		for {
			if depth == 0 {
				return i, true
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			top := depth - 1
			obj := stack[top>>6]&(1<<(top&63)) != 0
			if b[i] == ',' {
				i++
				if obj {
					if i, ok = scanKeyColon(b, skipWS(b, i)); !ok {
						return i, false
					}
				}
				break
			}
			if obj && b[i] == '}' || !obj && b[i] == ']' {
				i++
				depth--
				continue
			}
			return i, false
		}
	}
}

// captureObject validates the object at b[i] == '{' and sets spans[k] to the
// value of the last member whose key equals keys[k] (absent: noSpan).
// It returns the index after the object.
func captureObject(b []byte, i int, keys []string, spans []span) (int, bool) {
	for k := range spans {
		spans[k] = noSpan
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		ks := i + 1
		end, esc, ok := scanString(b, i)
		if !ok {
			return end, false
		}
		key := b[ks : end-1]
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		vs := skipWS(b, i+1)
		if i, ok = skipValue(b, vs); !ok {
			return i, false
		}
		for k, name := range keys {
			if keyEqual(key, esc, name) {
				spans[k] = span{vs, i}
				break
			}
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// findKey returns the value of the last member named name of the object
// that sp holds (which must start with '{').
func findKey(b []byte, sp span, name string) (span, bool) {
	var keys [1]string
	var spans [1]span
	keys[0] = name
	if _, ok := captureObject(b[:sp.e], sp.s, keys[:], spans[:]); !ok || spans[0].s < 0 {
		return noSpan, false
	}
	return spans[0], true
}

// keyEqual reports whether the raw string body key (without quotes; esc
// when it has escapes) decodes to name.
func keyEqual(key []byte, esc bool, name string) bool {
	if !esc {
		return string(key) == name
	}
	if len(key) < len(name) {
		// Escapes only make the raw form longer than the decoded one... for
		// ASCII; a \u escape can encode 3 UTF-8 bytes in 6, still longer.
		return false
	}
	var buf [64]byte
	return string(unescape(buf[:0], key)) == name
}

// unescape appends the decoded form of the raw, already validated JSON
// string body s to dst.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		i++
		switch s[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := rune(hex4(s[i+1:]))
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				if r2 := rune(hex4(s[i+3:])); r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, r) // lone surrogates become U+FFFD
		default: // '"', '\\', '/'
			dst = append(dst, s[i])
		}
		i++
	}
	return dst
}

func hex4(s []byte) int {
	n := 0
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		n = n<<4 | int(c)
	}
	return n
}

// appendSanitized appends the validated JSON value v to dst so that the
// output is JSON every decoder reads as Unicode text: a byte that is not
// valid UTF-8 (which can only sit inside a string) becomes \ufffd, and so
// does a \u escape of a UTF-16 surrogate that is not half of a high-low
// pair. replaced reports whether anything was replaced.
func appendSanitized(dst, v []byte) (_ []byte, replaced bool) {
	if utf8.Valid(v) {
		if bytes.IndexByte(v, '\\') < 0 {
			return append(dst, v...), false
		}
		return appendPairedOnly(dst, v)
	}
	// Not valid UTF-8 (rare): look at every backslash and non-ASCII byte.
	for i := 0; i < len(v); {
		j := i
		for j < len(v) && v[j] != '\\' && v[j] < utf8.RuneSelf {
			j++
		}
		dst = append(dst, v[i:j]...)
		if i = j; i == len(v) {
			break
		}
		if v[i] != '\\' {
			r, n := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, `\ufffd`...)
				replaced = true
			} else {
				dst = append(dst, v[i:i+n]...)
			}
			i += n
			continue
		}
		// An escape; v is validated, so a \u has its four hex digits.
		if v[i+1] != 'u' {
			dst = append(dst, v[i:i+2]...)
			i += 2
			continue
		}
		n := 6
		if isSurrogateEscape(v[i:]) {
			if !isHighSurrogateEscape(v[i:]) || !isLowSurrogateEscape(v[i+6:]) {
				dst = append(dst, `\ufffd`...)
				replaced = true
				i += 6
				continue
			}
			n = 12 // a pair: one character
		}
		dst = append(dst, v[i:i+n]...)
		i += n
	}
	return dst, replaced
}

// appendPairedOnly appends the validated, valid UTF-8 JSON value v to dst
// with each \u escape of an unpaired UTF-16 surrogate replaced by \ufffd,
// copying the rest in runs.
func appendPairedOnly(dst, v []byte) (_ []byte, replaced bool) {
	from := 0 // v[from:i] is not copied yet
	for i := 0; ; {
		k := bytes.IndexByte(v[i:], '\\')
		if k < 0 {
			break
		}
		i += k
		if v[i+1] != 'u' {
			i += 2
			continue
		}
		if !isSurrogateEscape(v[i:]) {
			i += 6
			continue
		}
		if isHighSurrogateEscape(v[i:]) && isLowSurrogateEscape(v[i+6:]) {
			i += 12 // a pair: one character
			continue
		}
		dst = append(append(dst, v[from:i]...), `\ufffd`...)
		replaced = true
		i += 6
		from = i
	}
	return append(dst, v[from:]...), replaced
}

// isSurrogateEscape reports whether s starts with a \u escape of a UTF-16
// surrogate (U+D800 to U+DFFF); isHighSurrogateEscape and
// isLowSurrogateEscape, of a high (U+D800 to U+DBFF) or low (U+DC00 to
// U+DFFF) one. s is part of a validated JSON string.
func isSurrogateEscape(s []byte) bool {
	return len(s) >= 6 && s[0] == '\\' && s[1] == 'u' && s[2]|0x20 == 'd' && isHexIn(s[3], '8', 'f')
}

func isHighSurrogateEscape(s []byte) bool { return isSurrogateEscape(s) && isHexIn(s[3], '8', 'b') }

func isLowSurrogateEscape(s []byte) bool { return isSurrogateEscape(s) && isHexIn(s[3], 'c', 'f') }

// isHexIn reports whether the hex digit c is within [lo, hi] (lowercase
// bounds; c may be uppercase).
func isHexIn(c, lo, hi byte) bool {
	if c >= 'A' && c <= 'F' {
		c |= 0x20
	}
	return c >= lo && c <= hi
}

// appendQuoted appends s as a JSON string; s is a GraphQL name or type name
// in practice, but any input is escaped correctly.
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
