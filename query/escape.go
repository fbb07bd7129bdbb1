package query

// EscapeToken returns v as exactly one NATS subject token that contains no
// wildcard, separator or whitespace: bytes in [A-Za-z0-9_-] pass through,
// every other byte (including '.', '*', '>', '%', space, control bytes and
// each byte of a non-ASCII UTF-8 sequence) becomes %XX with uppercase hex,
// and the empty string becomes "%". The mapping is injective, so two
// different values never share a topic. Publishers must escape topic values
// the same way.
func EscapeToken(v string) string {
	if v == "" {
		return "%"
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if !tokenSafe(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if tokenSafe(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

func tokenSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// validSubject reports whether s is a non-empty sequence of non-empty NATS
// tokens joined by '.', with no wildcard, whitespace or control byte.
func validSubject(s string) bool {
	if s == "" {
		return false
	}
	tokenLen := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if tokenLen == 0 {
				return false
			}
			tokenLen = 0
			continue
		case c <= ' ' || c == 0x7f || c == '*' || c == '>':
			return false
		}
		tokenLen++
	}
	return tokenLen > 0
}
