package query

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// maxTopicBytes bounds a derived topic, well inside NATS's subject limits.
const maxTopicBytes = 1024

// Plan is a compiled subscription: where its events come from (Topic),
// which of them it wants (the filter) and what it sends (the projection).
// A Plan is immutable and safe for concurrent use.
type Plan struct {
	// Key is equal for two plans that deliver identical bytes for every
	// event (same topic, filter and projection, aliases included), and
	// differs otherwise: a hex SHA-256 of a canonical form of the plan.
	Key string
	// Field is the schema field name, e.g. "messageAdded".
	Field string
	// ResponseKey is the alias or field name: the key in "data".
	ResponseKey string
	// Topic is the derived topic, e.g. "chat.r1": valid NATS tokens joined
	// by ".", with every substituted value escaped by EscapeToken.
	Topic string
	// Complexity is the document's complexity score (see the package doc).
	Complexity int

	prefix    []byte   // `{"<ResponseKey>":`
	listDepth int      // list levels of the field's return type
	root      *objProj // projection of the return type; keys also feed the filter
	leaf      bool     // the return type is a scalar or enum
	filter    *fnode   // nil: every event matches
}

// objProj projects JSON objects of one composite type.
type objProj struct {
	typeName string
	keys     []string // event keys to capture, without duplicates
	static   *fieldSet
	// Abstract types pick a field set by the event's __typename.
	abstract    bool
	typenameIdx int
	byType      map[string]*fieldSet
	fallback    *fieldSet
}

type fieldSet struct {
	fields []outField
}

// outField is one key of the output object.
type outField struct {
	keyJSON   []byte // `"key":`
	keyIdx    int    // into objProj.keys; unused for __typename
	typename  int8   // 0: a field; 1: static __typename (typeJSON); 2: the event's __typename
	typeJSON  []byte
	listDepth int
	sub       *objProj // nil for leaf types
}

func (o *objProj) keyIndex(name string) int {
	if i := slices.Index(o.keys, name); i >= 0 {
		return i
	}
	o.keys = append(o.keys, name)
	return len(o.keys) - 1
}

// builder builds the projection of a validated operation.
type builder struct {
	schema *ast.Schema
	vars   map[string]any
	nodes  int // output fields built; bounded by budget
	budget int
}

// group is the fields of one response key, merged as GraphQL's
// CollectFields does.
type group struct {
	key, name string
	fields    []*ast.Field
}

func (c *Compiler) build(op *ast.OperationDefinition, vars map[string]any, claims map[string]any, complexity int) (*Plan, gqlerror.List) {
	s := c.schema.ast
	b := &builder{schema: s, vars: vars, budget: visitBudget(&c.opts)}
	groups, errs := b.collect([]ast.SelectionSet{op.SelectionSet}, s.Subscription)
	if errs != nil {
		return nil, errs
	}
	if len(groups) != 1 || strings.HasPrefix(groups[0].name, "__") {
		return nil, newErr(CodeValidationFailed, "A subscription must select exactly one top level field.")
	}
	g := groups[0]
	field := g.fields[0]
	sf := c.schema.fields[field.Name]
	if sf == nil || field.Definition == nil {
		return nil, newErr(CodeValidationFailed, "A subscription must select exactly one top level field.")
	}
	args, errs := argValues(field, vars)
	if errs != nil {
		return nil, errs
	}
	p := &Plan{Field: field.Name, ResponseKey: g.key, Complexity: complexity}
	if p.Topic, errs = topic(sf, args, claims); errs != nil {
		return nil, errs
	}
	p.prefix = append(appendQuoted([]byte{'{'}, g.key), ':')

	t := field.Definition.Type
	for ; t.Elem != nil; t = t.Elem {
		p.listDepth++
	}
	named := s.Types[t.NamedType]
	if named == nil {
		return nil, newErr(CodeValidationFailed, "unknown return type")
	}
	if named.IsCompositeType() {
		sets := make([]ast.SelectionSet, len(g.fields))
		for i, f := range g.fields {
			sets[i] = f.SelectionSet
		}
		if p.root, errs = b.objProj(named, sets); errs != nil {
			return nil, errs
		}
	} else {
		p.leaf = true
		p.root = &objProj{typeName: named.Name, static: &fieldSet{}}
	}
	fc := &filterCompiler{schema: s, opts: &c.opts}
	if p.filter, errs = fc.forField(sf, args); errs != nil {
		return nil, errs
	}
	if p.filter != nil {
		p.filter.leaves(func(n *fnode) {
			if len(n.path) > 0 {
				n.root = p.root.keyIndex(n.path[0])
			}
		})
	}
	p.Key = p.key()
	return p, nil
}

// argValues returns the field's argument values: given ones (variables
// resolved), else schema defaults. Omitted arguments are absent.
func argValues(f *ast.Field, vars map[string]any) (map[string]any, gqlerror.List) {
	out := map[string]any{}
	for _, ad := range f.Definition.Arguments {
		var a *ast.Argument
		for _, x := range f.Arguments {
			if x.Name == ad.Name {
				a = x
			}
		}
		var v any
		var err error
		switch {
		case a != nil && !unsetVariable(a.Value, vars):
			v, err = a.Value.Value(vars)
		case ad.DefaultValue != nil:
			v, err = ad.DefaultValue.Value(nil)
		default:
			continue
		}
		if err != nil {
			return nil, newErr(CodeValidationFailed, fmt.Sprintf("argument %q is not valid", ad.Name))
		}
		out[ad.Name] = v
	}
	return out, nil
}

func unsetVariable(v *ast.Value, vars map[string]any) bool {
	if v == nil || v.Kind != ast.Variable {
		return false
	}
	if _, ok := vars[v.Raw]; ok {
		return false
	}
	return v.VariableDefinition == nil || v.VariableDefinition.DefaultValue == nil
}

// topic derives the topic from the field's pattern.
func topic(sf *subField, args map[string]any, claims map[string]any) (string, gqlerror.List) {
	if sf.pattern == nil {
		return sf.def.Name, nil
	}
	var sb strings.Builder
	for _, seg := range sf.pattern {
		switch {
		case seg.arg != "":
			v, ok := scalarText(args[seg.arg])
			if !ok {
				return "", newErr(CodeValidationFailed, fmt.Sprintf("argument %q is required: the topic uses it", seg.arg))
			}
			sb.WriteString(EscapeToken(v))
		case seg.claim != "":
			v, ok := claimString(claims, seg.claim)
			if !ok {
				return "", newErr(CodeForbidden, fmt.Sprintf("this subscription needs the claim %q", seg.claim))
			}
			sb.WriteString(EscapeToken(v))
		default:
			sb.WriteString(seg.lit)
		}
		if sb.Len() > maxTopicBytes {
			return "", newErr(CodeValidationFailed, "argument too long for a topic", "limit", maxTopicBytes)
		}
	}
	return sb.String(), nil
}

// scalarText is the topic form of an argument value: strings as they are,
// numbers and booleans as JSON text.
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		return v.String(), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case int:
		return strconv.Itoa(v), true
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return "", false
		}
		j, _ := json.Marshal(v)
		return string(j), true
	}
	return "", false
}

// claimString returns the claim name as text; only non-empty strings and
// numbers count.
func claimString(claims map[string]any, name string) (string, bool) {
	switch v := claims[name].(type) {
	case string:
		return v, v != ""
	case bool, nil:
		return "", false
	default:
		return scalarText(v)
	}
}

// forField compiles the field's filters: equality on each argument that the
// topic does not use, and the where filter.
func (fc *filterCompiler) forField(sf *subField, args map[string]any) (*fnode, gqlerror.List) {
	and := &fnode{op: opAnd}
	for _, ad := range sf.def.Arguments { // schema order: deterministic
		v := args[ad.Name]
		if v == nil || sf.topicArg[ad.Name] {
			continue
		}
		def := fc.schema.Types[ad.Type.Name()]
		if ad.Name == "where" && def != nil && def.Kind == ast.InputObject {
			n, errs := fc.compile(v, def, nil, 0)
			if errs != nil {
				return nil, errs
			}
			and.kids = append(and.kids, n)
			continue
		}
		o, errs := fc.operand(v, ad.Type, ad.Name)
		if errs != nil {
			return nil, filterErr(fmt.Sprintf("argument %q cannot filter events: only scalar and enum arguments can", ad.Name))
		}
		and.kids = append(and.kids, &fnode{op: opEq, path: []string{ad.Name}, val: o})
	}
	switch len(and.kids) {
	case 0:
		return nil, nil
	case 1:
		return and.kids[0], nil
	}
	return and, nil
}

// included applies @skip and @include.
func (b *builder) included(dirs ast.DirectiveList) (bool, gqlerror.List) {
	for _, d := range dirs {
		if d.Name != "skip" && d.Name != "include" {
			continue
		}
		var cond any
		for _, a := range d.Arguments {
			if a.Name == "if" {
				cond, _ = a.Value.Value(b.vars)
			}
		}
		v, ok := cond.(bool)
		if !ok {
			return false, newErr(CodeValidationFailed, fmt.Sprintf("@%s needs a Boolean if argument", d.Name))
		}
		if v == (d.Name == "skip") {
			return false, nil
		}
	}
	return true, nil
}

// collect groups the fields of sets, for the runtime type rt, by response key.
func (b *builder) collect(sets []ast.SelectionSet, rt *ast.Definition) ([]*group, gqlerror.List) {
	var groups []*group
	index := map[string]*group{}
	seen := map[string]bool{}
	var walk func(set ast.SelectionSet) gqlerror.List
	walk = func(set ast.SelectionSet) gqlerror.List {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				if ok, errs := b.included(sel.Directives); !ok {
					if errs != nil {
						return errs
					}
					continue
				}
				key := sel.Alias
				if key == "" {
					key = sel.Name
				}
				g := index[key]
				if g == nil {
					g = &group{key: key, name: sel.Name}
					index[key] = g
					groups = append(groups, g)
				}
				g.fields = append(g.fields, sel)
			case *ast.InlineFragment:
				ok, errs := b.included(sel.Directives)
				if errs != nil {
					return errs
				}
				if ok && b.applies(sel.TypeCondition, rt) {
					if errs := walk(sel.SelectionSet); errs != nil {
						return errs
					}
				}
			case *ast.FragmentSpread:
				ok, errs := b.included(sel.Directives)
				if errs != nil {
					return errs
				}
				f := sel.Definition
				if !ok || f == nil || seen[f.Name] || !b.applies(f.TypeCondition, rt) {
					continue
				}
				seen[f.Name] = true
				if errs := walk(f.SelectionSet); errs != nil {
					return errs
				}
			}
		}
		return nil
	}
	for _, set := range sets {
		if errs := walk(set); errs != nil {
			return nil, errs
		}
	}
	return groups, nil
}

// applies reports whether a fragment on cond applies to objects of type rt
// (rt is abstract when the event does not say its concrete type).
func (b *builder) applies(cond string, rt *ast.Definition) bool {
	if cond == "" || cond == rt.Name {
		return true
	}
	cd := b.schema.Types[cond]
	if cd == nil || !cd.IsAbstractType() || rt.IsAbstractType() {
		return false
	}
	for _, pt := range b.schema.GetPossibleTypes(cd) {
		if pt.Name == rt.Name {
			return true
		}
	}
	return false
}

func (b *builder) objProj(t *ast.Definition, sets []ast.SelectionSet) (*objProj, gqlerror.List) {
	o := &objProj{typeName: t.Name}
	var errs gqlerror.List
	if !t.IsAbstractType() {
		o.static, errs = b.fieldSet(o, t, sets, 1)
		return o, errs
	}
	o.abstract = true
	o.typenameIdx = o.keyIndex("__typename")
	o.byType = map[string]*fieldSet{}
	for _, pt := range b.schema.GetPossibleTypes(t) {
		if o.byType[pt.Name], errs = b.fieldSet(o, pt, sets, 1); errs != nil {
			return nil, errs
		}
	}
	o.fallback, errs = b.fieldSet(o, t, sets, 2)
	return o, errs
}

// fieldSet builds the output fields for objects of runtime type rt;
// typename says how __typename is written (1: rt's name; 2: from the event).
func (b *builder) fieldSet(o *objProj, rt *ast.Definition, sets []ast.SelectionSet, typename int8) (*fieldSet, gqlerror.List) {
	groups, errs := b.collect(sets, rt)
	if errs != nil {
		return nil, errs
	}
	fs := &fieldSet{}
	for _, g := range groups {
		b.nodes++
		if b.nodes > b.budget {
			return nil, newErr(CodeQueryTooComplex, "query is too complex: the projection is too large", "limit", b.budget)
		}
		of := outField{keyJSON: append(appendQuoted(nil, g.key), ':')}
		if g.name == "__typename" {
			of.typename = typename
			of.typeJSON = appendQuoted(nil, rt.Name)
			fs.fields = append(fs.fields, of)
			continue
		}
		fd := g.fields[0].Definition
		if fd == nil {
			fd = rt.Fields.ForName(g.name)
		}
		if fd == nil {
			return nil, newErr(CodeValidationFailed, fmt.Sprintf("Cannot query field %q on type %q.", g.name, rt.Name))
		}
		of.keyIdx = o.keyIndex(g.name)
		t := fd.Type
		for ; t.Elem != nil; t = t.Elem {
			of.listDepth++
		}
		if named := b.schema.Types[t.NamedType]; named != nil && named.IsCompositeType() {
			subs := make([]ast.SelectionSet, len(g.fields))
			for i, f := range g.fields {
				subs[i] = f.SelectionSet
			}
			if of.sub, errs = b.objProj(named, subs); errs != nil {
				return nil, errs
			}
		}
		fs.fields = append(fs.fields, of)
	}
	return fs, nil
}

// key hashes a canonical form of everything that decides the output bytes.
func (p *Plan) key() string {
	e := keyEnc{}
	e.str("fraiseql-plan-v1")
	e.str(p.Topic)
	e.str(p.Field)
	e.bytes(p.prefix)
	e.int(p.listDepth)
	e.bool(p.leaf)
	e.proj(p.root)
	e.filter(p.filter)
	sum := sha256.Sum256(e.b)
	return hex.EncodeToString(sum[:])
}

type keyEnc struct{ b []byte }

func (e *keyEnc) int(n int) { e.b = binary.AppendVarint(e.b, int64(n)) }
func (e *keyEnc) bytes(s []byte) {
	e.int(len(s))
	e.b = append(e.b, s...)
}
func (e *keyEnc) str(s string) {
	e.int(len(s))
	e.b = append(e.b, s...)
}
func (e *keyEnc) bool(v bool) {
	if v {
		e.int(1)
	} else {
		e.int(0)
	}
}

func (e *keyEnc) proj(o *objProj) {
	if o == nil {
		e.int(-1)
		return
	}
	e.str(o.typeName)
	e.int(len(o.keys))
	for _, k := range o.keys {
		e.str(k)
	}
	e.bool(o.abstract)
	if !o.abstract {
		e.fieldSet(o.static)
		return
	}
	e.int(o.typenameIdx)
	names := make([]string, 0, len(o.byType))
	for n := range o.byType {
		names = append(names, n)
	}
	slices.Sort(names)
	e.int(len(names))
	for _, n := range names {
		e.str(n)
		e.fieldSet(o.byType[n])
	}
	e.fieldSet(o.fallback)
}

func (e *keyEnc) fieldSet(fs *fieldSet) {
	e.int(len(fs.fields))
	for _, f := range fs.fields {
		e.bytes(f.keyJSON)
		e.int(f.keyIdx)
		e.int(int(f.typename))
		e.bytes(f.typeJSON)
		e.int(f.listDepth)
		e.proj(f.sub)
	}
}

func (e *keyEnc) filter(n *fnode) {
	if n == nil {
		e.int(-1)
		return
	}
	e.int(int(n.op))
	e.int(len(n.kids))
	for _, k := range n.kids {
		e.filter(k)
	}
	e.int(len(n.path))
	for _, s := range n.path {
		e.str(s)
	}
	e.operand(&n.val)
	e.int(len(n.list))
	for i := range n.list {
		e.operand(&n.list[i])
	}
}

func (e *keyEnc) operand(o *operand) {
	e.int(int(o.kind))
	e.str(o.s)
	e.bool(o.isInt)
	e.bool(o.b)
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(o.f))
}
