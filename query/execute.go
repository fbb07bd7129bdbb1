package query

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// smallKeys is how many capture keys fit the stack buffers of Execute.
const smallKeys = 16

// Execute filters and projects one event body, the JSON value of the
// field's return type. It appends the JSON of the GraphQL data object,
// e.g. {"messageAdded":{"id":"7","text":"hi"}}, to dst and returns it.
//
// ok is false, and dst is returned unchanged, when the event does not match
// the plan's filters. err wraps ErrBadEvent when the body is not valid JSON,
// holds a number that float64 cannot hold (such as 1e400, anywhere in the
// event), or is not the object (or list) the return type requires. Execute
// never panics, and what it appends is always JSON that every client reads
// as Unicode text: bytes of strings that are not valid UTF-8, and \u
// escapes of UTF-16 surrogates that are not half of a pair, become U+FFFD
// (the filter compares strings decoded the same way). For a list return
// type the filter applies to each element, non-matching elements are left
// out, and ok is false when none match.
func (p *Plan) Execute(dst, event []byte) (out []byte, ok bool, err error) {
	var st emitState
	return p.execute(dst, event, &st)
}

// ExecuteCounted is Execute that also reports whether it replaced any text
// of the event with U+FFFD, so that the caller can count such events.
func (p *Plan) ExecuteCounted(dst, event []byte) (out []byte, ok, replaced bool, err error) {
	var st emitState
	out, ok, err = p.execute(dst, event, &st)
	return out, ok, st.replaced, err
}

// emitState is what projecting one event needs to know, and tells, about
// the event's text.
type emitState struct {
	esc      bool // the event holds a backslash: strings may hold \u escapes
	replaced bool // text was replaced by U+FFFD
}

// badJSON is the error for an event whose scan failed at end.
func badJSON(event []byte, end int) error {
	end = min(end, len(event))
	if numberOutOfRange(event, end) {
		return fmt.Errorf("%w: number out of range (offset %d)", ErrBadEvent, end)
	}
	return fmt.Errorf("%w: not valid JSON (offset %d)", ErrBadEvent, end)
}

func (p *Plan) execute(dst, event []byte, st *emitState) (out []byte, ok bool, err error) {
	orig := dst
	i := skipWS(event, 0)
	if p.listDepth == 0 && !p.leaf && i < len(event) && event[i] == '{' {
		// The common case: one object, validated while it is captured.
		var buf [smallKeys]span
		spans := captureBuf(&buf, len(p.root.keys))
		end, valid := captureObject(event, i, p.root.keys, spans)
		if !valid || skipWS(event, end) != len(event) {
			return orig, false, badJSON(event, end)
		}
		if p.filter != nil && !p.filter.eval(event, span{i, end}, spans) {
			return orig, false, nil
		}
		st.esc = hasEscape(event)
		dst = append(dst, p.prefix...)
		dst = p.root.emit(dst, event, spans, st)
		return append(dst, '}'), true, nil
	}
	end, valid := skipValue(event, i)
	if !valid || skipWS(event, end) != len(event) {
		return orig, false, badJSON(event, end)
	}
	v := span{i, end}
	st.esc = hasEscape(event)
	dst = append(dst, p.prefix...)
	if p.listDepth == 0 {
		if !p.leaf {
			return orig, false, fmt.Errorf("%w: the event must be a JSON object", ErrBadEvent)
		}
		if dst, ok = p.element(dst, event, v, st); !ok {
			return orig, false, nil
		}
		return append(dst, '}'), true, nil
	}
	if event[i] != '[' {
		return orig, false, fmt.Errorf("%w: the event must be a JSON array", ErrBadEvent)
	}
	matched := 0
	dst = append(dst, '[')
	mark := len(dst)
	for j := skipWS(event, i+1); event[j] != ']'; {
		e, _ := skipValue(event, j)
		el := span{j, e}
		before := len(dst)
		if len(dst) > mark {
			dst = append(dst, ',')
		}
		var hit bool
		if dst, hit = p.element(dst, event, el, st); hit {
			matched++
		} else {
			dst = dst[:before]
		}
		j = skipWS(event, e)
		if event[j] == ',' {
			j = skipWS(event, j+1)
		}
	}
	if matched == 0 && p.filter != nil {
		return orig, false, nil
	}
	return append(dst, ']', '}'), true, nil
}

// element filters and projects one (validated) value of the root field.
// For a list return type, p.listDepth-1 list levels remain inside v.
// st.replaced is set when text is replaced (appendSanitized).
func (p *Plan) element(dst, b []byte, v span, st *emitState) ([]byte, bool) {
	var buf [smallKeys]span
	spans := captureBuf(&buf, len(p.root.keys))
	isObj := b[v.s] == '{'
	if isObj {
		captureObject(b, v.s, p.root.keys, spans)
	} else {
		for k := range spans {
			spans[k] = noSpan
		}
	}
	if p.filter != nil && !p.filter.eval(b, v, spans) {
		return dst, false
	}
	switch {
	case p.leaf:
		return sanitize(dst, b[v.s:v.e], st), true
	case p.listDepth > 1:
		return p.root.projectValue(dst, b, v, p.listDepth-1, st), true
	case !isObj:
		return append(dst, "null"...), true
	}
	return p.root.emit(dst, b, spans, st), true
}

// projectValue projects the validated value v, listDepth list levels above
// objects of o's type. Values of the wrong shape project as null.
func (o *objProj) projectValue(dst, b []byte, v span, listDepth int, st *emitState) []byte {
	c := b[v.s]
	if listDepth == 0 {
		if c != '{' {
			return append(dst, "null"...)
		}
		return o.project(dst, b, v, st)
	}
	if c != '[' {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	first := true
	for j := skipWS(b, v.s+1); b[j] != ']'; {
		e, _ := skipValue(b, j)
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = o.projectValue(dst, b, span{j, e}, listDepth-1, st)
		j = skipWS(b, e)
		if b[j] == ',' {
			j = skipWS(b, j+1)
		}
	}
	return append(dst, ']')
}

// project projects the validated object v.
func (o *objProj) project(dst, b []byte, v span, st *emitState) []byte {
	var buf [smallKeys]span
	spans := captureBuf(&buf, len(o.keys))
	captureObject(b, v.s, o.keys, spans)
	return o.emit(dst, b, spans, st)
}

// emit writes the output object from the captured member values spans.
func (o *objProj) emit(dst, b []byte, spans []span, st *emitState) []byte {
	fs := o.static
	var typeSpan span = noSpan
	if o.abstract {
		fs = o.fallback
		if ts := spans[o.typenameIdx]; ts.s >= 0 && b[ts.s] == '"' {
			typeSpan = ts
			raw := b[ts.s+1 : ts.e-1]
			var nb [64]byte
			if f, ok := o.byType[string(unescape(nb[:0], raw))]; ok {
				fs = f
			}
		}
	}
	dst = append(dst, '{')
	for i := range fs.fields {
		f := &fs.fields[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.keyJSON...)
		switch f.typename {
		case 1:
			dst = append(dst, f.typeJSON...)
			continue
		case 2:
			if typeSpan.s >= 0 {
				dst = sanitize(dst, b[typeSpan.s:typeSpan.e], st)
			} else {
				dst = append(dst, f.typeJSON...)
			}
			continue
		}
		sp := spans[f.keyIdx]
		switch {
		case sp.s < 0:
			dst = append(dst, "null"...)
		case f.sub == nil:
			dst = sanitize(dst, b[sp.s:sp.e], st)
		default:
			dst = f.sub.projectValue(dst, b, sp, f.listDepth, st)
		}
	}
	return append(dst, '}')
}

// captureBuf returns n spans, from buf when they fit.
func captureBuf(buf *[smallKeys]span, n int) []span {
	if n > smallKeys {
		return make([]span, n)
	}
	return buf[:n]
}

// hasEscape reports whether the event holds a backslash, and so strings
// that may need appendSanitized's look at their escapes: one look per event
// spares one per value projected.
func hasEscape(event []byte) bool { return bytes.IndexByte(event, '\\') >= 0 }

// sanitize is appendSanitized that records in st when it replaced text,
// and skips the look for escapes when the event has none.
func sanitize(dst, v []byte, st *emitState) []byte {
	if !st.esc && utf8.Valid(v) {
		return append(dst, v...)
	}
	dst, r := appendSanitized(dst, v)
	st.replaced = st.replaced || r
	return dst
}
