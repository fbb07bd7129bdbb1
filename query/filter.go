package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// opKind is a filter node's operation.
type opKind uint8

const (
	opAnd opKind = iota
	opOr
	opNot
	opEq
	opNeq
	opGt
	opGte
	opLt
	opLte
	opIn
	opNin
	opContains
	opStartsWith
	opIsNull
)

var operators = map[string]opKind{
	"eq": opEq, "neq": opNeq, "gt": opGt, "gte": opGte, "lt": opLt, "lte": opLte,
	"in": opIn, "nin": opNin, "contains": opContains, "startsWith": opStartsWith, "isNull": opIsNull,
}

// fnode is one node of a compiled filter: a combinator over kids, or a
// leaf comparing the value at path with val (or list).
type fnode struct {
	op   opKind
	kids []*fnode

	path []string // from the event root; empty: the event itself
	root int      // index of path[0] in the root capture keys
	val  operand
	list []operand
}

// valKind is the schema kind of a filter operand, which decides how it
// compares with event JSON.
type valKind uint8

const (
	kString valKind = iota // JSON strings, compared by decoded bytes
	kID                    // JSON strings, or numbers by their exact text
	kNumber                // JSON numbers, compared numerically
	kBool                  // JSON true/false
)

type operand struct {
	kind  valKind
	s     string // string or ID text; a number's text
	sb    []byte // s as bytes, for contains and startsWith
	f     float64
	isInt bool // s is an integer literal in canonical form
	b     bool
}

// filterCompiler turns where values (as gqlparser's Value returns them)
// into fnode trees.
type filterCompiler struct {
	schema   *ast.Schema
	opts     *Options
	operands int // counted so far (operands.go)
}

func filterErr(msg string) gqlerror.List { return newErr(CodeValidationFailed, msg) }

// compile compiles the filter object v of the input type def, applying to
// the value at path, nested depth levels below the where argument.
func (fc *filterCompiler) compile(v any, def *ast.Definition, path []string, depth int) (*fnode, gqlerror.List) {
	if depth > fc.opts.MaxFilterDepth {
		return nil, newErr(CodeFilterTooDeep,
			fmt.Sprintf("filter is too deep: nesting exceeds the limit of %d", fc.opts.MaxFilterDepth),
			"limit", fc.opts.MaxFilterDepth)
	}
	m, ok := v.(map[string]any)
	if !ok || def == nil || def.Kind != ast.InputObject {
		return nil, filterErr("a filter must be an input object")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // evaluation order does not matter; canonical order keeps Plan.Key stable
	and := &fnode{op: opAnd}
	for _, k := range keys {
		val := m[k]
		if val == nil {
			continue // a null operator or field sets no condition
		}
		fd := def.Fields.ForName(k)
		if fd == nil {
			return nil, filterErr(fmt.Sprintf("unknown filter field %q", k))
		}
		childDef := fc.schema.Types[fd.Type.Name()]
		switch k {
		case "and", "or":
			n := &fnode{op: opAnd}
			if k == "or" {
				n.op = opOr
			}
			for _, item := range asList(val) {
				kid, errs := fc.compile(item, childDef, path, depth+1)
				if errs != nil {
					return nil, errs
				}
				n.kids = append(n.kids, kid)
			}
			and.kids = append(and.kids, n)
			continue
		case "not":
			kid, errs := fc.compile(val, childDef, path, depth+1)
			if errs != nil {
				return nil, errs
			}
			and.kids = append(and.kids, &fnode{op: opNot, kids: []*fnode{kid}})
			continue
		}
		if op, isOp := operators[k]; isOp {
			leaf, errs := fc.leaf(op, k, val, fd.Type, path)
			if errs != nil {
				return nil, errs
			}
			and.kids = append(and.kids, leaf)
			continue
		}
		// A field of the return type: its operators apply one level down.
		kid, errs := fc.compile(val, childDef, append(slices.Clip(path), k), depth+1)
		if errs != nil {
			return nil, errs
		}
		and.kids = append(and.kids, kid)
	}
	if len(and.kids) == 1 {
		return and.kids[0], nil
	}
	return and, nil
}

func (fc *filterCompiler) leaf(op opKind, name string, val any, t *ast.Type, path []string) (*fnode, gqlerror.List) {
	items := -1
	if op == opIn || op == opNin {
		items = len(asList(val))
	}
	if fc.operands += operandWeight(op, items); fc.operands > fc.opts.MaxFilterOperands {
		return nil, filterTooComplex(fc.opts.MaxFilterOperands)
	}
	n := &fnode{op: op, path: slices.Clone(path)}
	switch op {
	case opIsNull:
		b, ok := val.(bool)
		if !ok {
			return nil, filterErr("isNull takes a Boolean")
		}
		n.val = operand{kind: kBool, b: b}
		return n, nil
	case opIn, opNin:
		items := asList(val)
		if len(items) > fc.opts.MaxInList {
			return nil, filterErr(fmt.Sprintf("%s list has %d items, more than the limit of %d", name, len(items), fc.opts.MaxInList))
		}
		et := t
		if t.Elem != nil {
			et = t.Elem
		}
		for _, item := range items {
			o, errs := fc.operand(item, et, name)
			if errs != nil {
				return nil, errs
			}
			n.list = append(n.list, o)
		}
		return n, nil
	}
	o, errs := fc.operand(val, t, name)
	if errs != nil {
		return nil, errs
	}
	n.val = o
	return n, nil
}

// operand converts a coerced GraphQL value of the scalar or enum type t.
func (fc *filterCompiler) operand(v any, t *ast.Type, name string) (operand, gqlerror.List) {
	bad := filterErr(fmt.Sprintf("filter value of %s must be a %s", name, t.String()))
	if t.Elem != nil {
		return operand{}, bad
	}
	def := fc.schema.Types[t.Name()]
	if def == nil {
		return operand{}, bad
	}
	o, ok := toOperand(v, def)
	if !ok {
		return operand{}, bad
	}
	return o, nil
}

// toOperand converts v (string, bool, int64, float64, json.Number from
// literals or variables) to an operand of the leaf type def.
func toOperand(v any, def *ast.Definition) (operand, bool) {
	if def.Kind == ast.Enum {
		s, ok := v.(string)
		return strOperand(kString, s), ok
	}
	if def.Kind != ast.Scalar {
		return operand{}, false
	}
	switch def.Name {
	case "String":
		s, ok := v.(string)
		return strOperand(kString, s), ok
	case "ID":
		if s, ok := v.(string); ok {
			return strOperand(kID, s), true
		}
		o, ok := numOperand(v)
		if !ok || !o.isInt {
			return operand{}, false
		}
		return strOperand(kID, o.s), true
	case "Int":
		o, ok := numOperand(v)
		return o, ok && o.isInt
	case "Float":
		return numOperand(v)
	case "Boolean":
		b, ok := v.(bool)
		return operand{kind: kBool, b: b}, ok
	}
	// A custom scalar compares as whatever JSON kind the value has.
	switch v := v.(type) {
	case string:
		return strOperand(kString, v), true
	case bool:
		return operand{kind: kBool, b: v}, true
	}
	return numOperand(v)
}

func strOperand(k valKind, s string) operand { return operand{kind: k, s: s, sb: []byte(s)} }

func numOperand(v any) (operand, bool) {
	switch v := v.(type) {
	case int64:
		return operand{kind: kNumber, s: strconv.FormatInt(v, 10), f: float64(v), isInt: true}, true
	case int:
		return numOperand(int64(v))
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return operand{}, false
		}
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return numOperand(int64(v))
		}
		return operand{kind: kNumber, s: strconv.FormatFloat(v, 'g', -1, 64), f: v}, true
	case json.Number:
		s := string(v)
		end, ok := scanNumber([]byte(s), 0)
		if !ok || end != len(s) {
			return operand{}, false
		}
		if isIntText([]byte(s)) {
			if i, err := v.Int64(); err == nil {
				return numOperand(i)
			}
			f, _ := v.Float64()
			return operand{kind: kNumber, s: canonInt(s), f: f, isInt: true}, true
		}
		f, err := v.Float64()
		if err != nil {
			return operand{}, false
		}
		return numOperand(f)
	}
	return operand{}, false
}

// canonInt returns the JSON integer text s with "-0" as "0".
func canonInt(s string) string {
	if s == "-0" {
		return "0"
	}
	return s
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	// Variable coercion wraps a single value into a typed slice.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
		l := make([]any, rv.Len())
		for i := range l {
			l[i] = rv.Index(i).Interface()
		}
		return l
	}
	return []any{v} // GraphQL input coercion: a single value is a one-item list
}

// leaves calls f on every leaf of n.
func (n *fnode) leaves(f func(*fnode)) {
	if n.op <= opNot {
		for _, k := range n.kids {
			k.leaves(f)
		}
		return
	}
	f(n)
}

// eval reports whether the event matches n. root is the event value;
// spans holds the values of the root capture keys when it is an object.
func (n *fnode) eval(b []byte, root span, spans []span) bool {
	switch n.op {
	case opAnd:
		for _, k := range n.kids {
			if !k.eval(b, root, spans) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range n.kids {
			if k.eval(b, root, spans) {
				return true
			}
		}
		return false
	case opNot:
		return !n.kids[0].eval(b, root, spans)
	}
	sp, ok := n.lookup(b, root, spans)
	if !ok || b[sp.s] == 'n' { // absent or null
		switch n.op {
		case opIsNull:
			return n.val.b
		case opNeq, opNin:
			return true // nothing is not equal to a value
		}
		return false
	}
	switch n.op {
	case opIsNull:
		return !n.val.b
	case opIn, opNin:
		for i := range n.list {
			c, ok := compare(b, sp, &n.list[i])
			if !ok {
				return false
			}
			if c == 0 {
				return n.op == opIn
			}
		}
		return n.op == opNin
	case opContains, opStartsWith:
		if b[sp.s] != '"' || n.val.kind != kString && n.val.kind != kID {
			return false
		}
		raw := b[sp.s+1 : sp.e-1]
		var buf [128]byte
		if bytes.IndexByte(raw, '\\') >= 0 {
			raw = unescape(buf[:0], raw)
		}
		if n.op == opContains {
			return bytes.Contains(raw, n.val.sb)
		}
		return bytes.HasPrefix(raw, n.val.sb)
	}
	c, ok := compare(b, sp, &n.val)
	if !ok {
		return false
	}
	switch n.op {
	case opEq:
		return c == 0
	case opNeq:
		return c != 0
	case opGt:
		return c > 0
	case opGte:
		return c >= 0
	case opLt:
		return c < 0
	case opLte:
		return c <= 0
	}
	return false
}

// lookup finds the value at n.path.
func (n *fnode) lookup(b []byte, root span, spans []span) (span, bool) {
	if len(n.path) == 0 {
		return root, true
	}
	sp := spans[n.root]
	if sp.s < 0 {
		return noSpan, false
	}
	for _, k := range n.path[1:] {
		if b[sp.s] != '{' {
			return noSpan, false
		}
		var ok bool
		if sp, ok = findKey(b, sp, k); !ok {
			return noSpan, false
		}
	}
	return sp, true
}

// compare compares the non-null event value at sp with o: ok is false
// when their kinds differ, which no operator matches.
func compare(b []byte, sp span, o *operand) (c int, ok bool) {
	v := b[sp.s:sp.e]
	switch o.kind {
	case kString, kID:
		if v[0] == '"' {
			raw := v[1 : len(v)-1]
			if bytes.IndexByte(raw, '\\') >= 0 {
				var buf [128]byte
				raw = unescape(buf[:0], raw)
			}
			return cmpStr(raw, o.s), true
		}
		if o.kind == kID && isNumberStart(v[0]) {
			return cmpStr(v, o.s), true // an ID given as a number matches by its exact digits
		}
		return 0, false
	case kNumber:
		if !isNumberStart(v[0]) {
			return 0, false
		}
		return cmpNumber(v, o), true
	case kBool:
		switch v[0] {
		case 't':
			return cmpBool(true, o.b), true
		case 'f':
			return cmpBool(false, o.b), true
		}
	}
	return 0, false
}

func isNumberStart(c byte) bool { return c == '-' || c >= '0' && c <= '9' }

func cmpStr(a []byte, s string) int {
	switch {
	case string(a) == s:
		return 0
	case string(a) < s:
		return -1
	}
	return 1
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

func isIntText(v []byte) bool { return !bytes.ContainsAny(v, ".eE") }

// cmpNumber compares the JSON number v with o: exactly when both are
// integers (so large IDs and counters compare right), else as float64.
func cmpNumber(v []byte, o *operand) int {
	if o.isInt && isIntText(v) {
		return cmpIntText(v, o.s)
	}
	f, _ := strconv.ParseFloat(string(v), 64) // out of range: ±Inf, which still orders
	switch {
	case f < o.f:
		return -1
	case f > o.f:
		return 1
	}
	return 0
}

// cmpIntText compares two integer literals without leading zeros.
func cmpIntText(a []byte, b string) int {
	negA := len(a) > 1 && a[0] == '-' && !(len(a) == 2 && a[1] == '0')
	negB := len(b) > 1 && b[0] == '-' && b != "-0"
	if negA != negB {
		if negA {
			return -1
		}
		return 1
	}
	if len(a) > 0 && a[0] == '-' {
		a = a[1:]
	}
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	c := 0
	switch {
	case len(a) != len(b):
		c = cmpLen(len(a), len(b))
	default:
		c = cmpStr(a, b)
	}
	if negA {
		return -c
	}
	return c
}

func cmpLen(a, b int) int {
	if a < b {
		return -1
	}
	return 1
}
