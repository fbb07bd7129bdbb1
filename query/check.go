package query

import (
	"fmt"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// maxFragmentNesting bounds how many fragments (inline or spread) may
// enclose one another on a single path, whatever the field depth: a document
// of hundreds of nested inline fragments costs gqlparser's validator seconds
// while adding no field depth at all.
const maxFragmentNesting = 32

// checker measures an unvalidated document with bounded work, before full
// validation (DESIGN.md, "How data moves", step 1). Every selection it
// visits (field, alias, inline fragment, fragment spread, after fragment
// expansion) costs one visit; it stops at the first limit exceeded.
type checker struct {
	schema *ast.Schema
	frags  map[string]*ast.FragmentDefinition
	opts   *Options

	visits int // selections visited so far, across the whole document
	budget int // visits allowed

	complexity int // score of the operation or fragment being walked
	depth      int // deepest field nesting seen in it
	nest       int // fragments enclosing the current selection
	onPath     map[string]bool
	err        gqlerror.List

	operands operandCounter // where filters of subscription fields
}

// visitBudget is the number of selections the checker may visit in one
// document: enough for every operation and fragment of a document within
// MaxComplexity, with room for fragment nodes.
func visitBudget(o *Options) int { return 4*o.MaxComplexity + 100 }

// check walks every operation and fragment definition of doc. It returns the
// complexity of the operation op (nil: none) and the visits spent. vars
// are the request's variables, decoded only if a where filter uses them.
func check(schema *ast.Schema, doc *ast.QueryDocument, opts *Options, op *ast.OperationDefinition, vars *rawVars) (complexity, visits int, errs gqlerror.List) {
	c := &checker{
		schema:   schema,
		frags:    make(map[string]*ast.FragmentDefinition, len(doc.Fragments)),
		opts:     opts,
		budget:   visitBudget(opts),
		onPath:   map[string]bool{},
		operands: operandCounter{limit: opts.MaxFilterOperands, vars: vars},
	}
	if op != nil {
		c.operands.defs = op.VariableDefinitions
	}
	for _, f := range doc.Fragments {
		if _, dup := c.frags[f.Name]; !dup {
			c.frags[f.Name] = f
		}
	}
	for _, o := range doc.Operations {
		var root *ast.Definition
		switch o.Operation {
		case ast.Query:
			root = schema.Query
		case ast.Mutation:
			root = schema.Mutation
		case ast.Subscription:
			root = schema.Subscription
		}
		if !c.walkRoot(o.SelectionSet, root) {
			return 0, c.visits, c.err
		}
		if o == op {
			complexity = c.complexity
		}
	}
	for _, f := range doc.Fragments {
		if !c.walkRoot(f.SelectionSet, schema.Types[f.TypeCondition]) {
			return 0, c.visits, c.err
		}
	}
	return complexity, c.visits, nil
}

func (c *checker) walkRoot(set ast.SelectionSet, parent *ast.Definition) bool {
	c.complexity, c.depth, c.nest = 0, 0, 0
	clear(c.onPath)
	return c.walk(set, parent, 0, 1)
}

// walk visits set, whose fields belong to parent (nil when unknown: the
// validator reports that later), at field depth depth, with each field
// scoring mult.
func (c *checker) walk(set ast.SelectionSet, parent *ast.Definition, depth, mult int) bool {
	for _, sel := range set {
		c.visits++
		if c.visits > c.budget {
			c.err = newErr(CodeQueryTooComplex, "query is too complex: too many selections after fragment expansion",
				"complexity", c.complexity, "limit", c.opts.MaxComplexity)
			return false
		}
		switch sel := sel.(type) {
		case *ast.Field:
			c.complexity += mult
			if depth == 0 && parent != nil && parent == c.schema.Subscription {
				// Filter work counts in the score: 1 per operand.
				n := c.filterOperands(sel, parent)
				if n > c.opts.MaxFilterOperands {
					c.err = filterTooComplex(c.opts.MaxFilterOperands)
					return false
				}
				c.complexity += n
			}
			if c.complexity > c.opts.MaxComplexity {
				c.err = newErr(CodeQueryTooComplex,
					fmt.Sprintf("query is too complex: complexity exceeds the limit of %d", c.opts.MaxComplexity),
					"complexity", c.complexity, "limit", c.opts.MaxComplexity)
				return false
			}
			d := depth + 1
			if d > c.opts.MaxDepth {
				c.err = newErr(CodeQueryTooComplex,
					fmt.Sprintf("query is too deep: depth exceeds the limit of %d", c.opts.MaxDepth),
					"depth", d, "limit", c.opts.MaxDepth)
				return false
			}
			c.depth = max(c.depth, d)
			if len(sel.SelectionSet) == 0 {
				continue
			}
			var child *ast.Definition
			m := mult
			if parent != nil {
				if fd := parent.Fields.ForName(sel.Name); fd != nil {
					child = c.schema.Types[fd.Type.Name()]
					if fd.Type.Elem != nil {
						m = satMul10(mult, c.opts.MaxComplexity)
					}
				}
			}
			if !c.walk(sel.SelectionSet, child, d, m) {
				return false
			}
		case *ast.InlineFragment:
			t := parent
			if sel.TypeCondition != "" {
				t = c.schema.Types[sel.TypeCondition]
			}
			if !c.enterFragment() || !c.walk(sel.SelectionSet, t, depth, mult) {
				return false
			}
			c.nest--
		case *ast.FragmentSpread:
			f := c.frags[sel.Name]
			if f == nil {
				continue // unknown fragment: the validator reports it
			}
			if c.onPath[f.Name] {
				c.err = newErr(CodeValidationFailed, fmt.Sprintf("Cannot spread fragment %q within itself.", f.Name))
				return false
			}
			if !c.enterFragment() {
				return false
			}
			c.onPath[f.Name] = true
			if !c.walk(f.SelectionSet, c.schema.Types[f.TypeCondition], depth, mult) {
				return false
			}
			delete(c.onPath, f.Name)
			c.nest--
		}
	}
	return true
}

func (c *checker) enterFragment() bool {
	c.nest++
	if c.nest > maxFragmentNesting {
		c.err = newErr(CodeQueryTooComplex,
			fmt.Sprintf("query is too complex: fragments nest deeper than %d", maxFragmentNesting),
			"limit", maxFragmentNesting)
		return false
	}
	return true
}

// satMul10 returns 10*m, saturated just above limit: a score past the limit
// is refused anyway, and saturating keeps it from overflowing.
func satMul10(m, limit int) int {
	if m > limit/10 {
		return limit/10*10 + 10
	}
	return m * 10
}

// filterOperands counts the operands of the where argument of the
// subscription field f (see operands.go), saturated at the limit plus one.
func (c *checker) filterOperands(f *ast.Field, parent *ast.Definition) int {
	fd := parent.Fields.ForName(f.Name)
	if fd == nil {
		return 0
	}
	ad := fd.Arguments.ForName("where")
	if ad == nil {
		return 0
	}
	if def := c.schema.Types[ad.Type.Name()]; def == nil || def.Kind != ast.InputObject {
		return 0
	}
	a := f.Arguments.ForName("where")
	if a == nil {
		return 0 // the schema's default, if any, is counted when it compiles
	}
	return c.operands.filter(a.Value)
}
