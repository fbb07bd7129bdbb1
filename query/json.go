package query

import (
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

// scanNumber scans the number starting at b[i] and returns the index after it.
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
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
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return i, false
		}
	}
	return i, true
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

// appendSanitized appends the validated JSON value v to dst, replacing any
// byte that is not valid UTF-8 (which can only sit inside a string) with
// \ufffd so that the output is valid JSON in every decoder.
func appendSanitized(dst, v []byte) []byte {
	if utf8.Valid(v) {
		return append(dst, v...)
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(v[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, v[i:i+n]...)
		}
		i += n
	}
	return dst
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
