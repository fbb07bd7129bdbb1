package query

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Filter operands measure the work a where filter costs on every event of
// its topic: the node evaluates each plan's filter on each event, so a
// filter's operands are paid for by every tenant whose events share the
// routing path. A filter's operand count is the sum, over its operators
// with a non-null value, of 1 for eq, neq, gt, gte, lt, lte, contains,
// startsWith and isNull, and of the number of list items for in and nin
// (an empty list counts 1). and, or, not and field paths count nothing
// themselves; the operators under them count wherever they nest.
//
// The count runs twice: on the parsed document and the raw variables,
// before validation (check.go), where it is bounded by the size of the
// request and stops as soon as it passes the limit; and exactly, while the
// filter compiles (filter.go), which also covers schema defaults.

// operandWeight is what one operator with a non-null value counts, given
// the number of items of its value when that is a list (-1: not a list).
func operandWeight(op opKind, items int) int {
	if (op == opIn || op == opNin) && items >= 0 {
		return max(items, 1)
	}
	return 1
}

func filterTooComplex(limit int) gqlerror.List {
	return newErr(CodeFilterTooComplex,
		fmt.Sprintf("filter is too complex: more than %d operands (max_filter_operands)", limit),
		"limit", limit)
}

// rawVars is a request's variables JSON, decoded at most once, on first use.
type rawVars struct {
	raw  json.RawMessage
	done bool
	m    map[string]any
	errs gqlerror.List
}

// get returns the decoded variables: an empty map for nil or null, or an
// error if they are not a JSON object.
func (r *rawVars) get() (map[string]any, gqlerror.List) {
	if !r.done {
		r.done = true
		r.m, r.errs = decodeVariables(r.raw)
	}
	return r.m, r.errs
}

func decodeVariables(raw json.RawMessage) (map[string]any, gqlerror.List) {
	vars := map[string]any{}
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return vars, nil
	}
	if t[0] != '{' || !json.Valid(t) {
		return nil, newErr(CodeValidationFailed, "variables must be a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(t))
	d.UseNumber()
	if err := d.Decode(&vars); err != nil {
		return nil, newErr(CodeValidationFailed, "variables must be a JSON object")
	}
	return vars, nil
}

// operandCounter counts the operands of where values in an unvalidated
// document. Counts saturate at limit+1, and every walk stops once it
// reaches that, so a hostile filter costs no more than the limit's worth
// of walking beyond reading the request.
type operandCounter struct {
	limit int
	vars  *rawVars
	defs  ast.VariableDefinitionList // of the operation being compiled
	memo  map[string]int             // variable name: count as a filter
}

func (oc *operandCounter) add(a, b int) int { return min(a+b, oc.limit+1) }

// filter counts the operands of v, a value in filter-object position (the
// where argument, an item of and/or, the value of not or of a field path).
func (oc *operandCounter) filter(v *ast.Value) int {
	if v == nil {
		return 0
	}
	switch v.Kind {
	case ast.Variable:
		if n, ok := oc.memo[v.Raw]; ok {
			return n
		}
		n := 0
		if x, ok := oc.variable(v.Raw); ok {
			n = oc.jsonFilter(x)
		} else if d := oc.defs.ForName(v.Raw); d != nil {
			n = oc.filter(d.DefaultValue)
		}
		if oc.memo == nil {
			oc.memo = map[string]int{}
		}
		oc.memo[v.Raw] = n
		return n
	case ast.ListValue:
		n := 0
		for _, c := range v.Children {
			if n = oc.add(n, oc.filter(c.Value)); n > oc.limit {
				return n
			}
		}
		return n
	case ast.ObjectValue:
		n := 0
		for _, c := range v.Children {
			if op, isOp := operators[c.Name]; isOp {
				n = oc.add(n, oc.operator(op, c.Value))
			} else {
				n = oc.add(n, oc.filter(c.Value))
			}
			if n > oc.limit {
				return n
			}
		}
		return n
	}
	return 0 // a scalar where a filter belongs: validation refuses it
}

// operator counts one operator whose value is v.
func (oc *operandCounter) operator(op opKind, v *ast.Value) int {
	if v == nil {
		return 0
	}
	switch v.Kind {
	case ast.NullValue:
		return 0
	case ast.ListValue:
		return min(operandWeight(op, len(v.Children)), oc.limit+1)
	case ast.Variable:
		if x, ok := oc.variable(v.Raw); ok {
			return oc.jsonOperator(op, x)
		}
		if d := oc.defs.ForName(v.Raw); d != nil && d.DefaultValue != nil {
			return oc.operator(op, d.DefaultValue)
		}
		return 0 // unset: no condition
	}
	return operandWeight(op, -1)
}

// variable returns the JSON value of the variable name, if the request's
// variables decode and hold it.
func (oc *operandCounter) variable(name string) (any, bool) {
	m, errs := oc.vars.get()
	if errs != nil {
		return nil, false // reported by variable coercion
	}
	x, ok := m[name]
	return x, ok
}

// jsonFilter is filter for a decoded JSON value.
func (oc *operandCounter) jsonFilter(v any) int {
	n := 0
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			if n = oc.add(n, oc.jsonFilter(x)); n > oc.limit {
				return n
			}
		}
	case map[string]any:
		for k, x := range v {
			if op, isOp := operators[k]; isOp {
				n = oc.add(n, oc.jsonOperator(op, x))
			} else {
				n = oc.add(n, oc.jsonFilter(x))
			}
			if n > oc.limit {
				return n
			}
		}
	}
	return n
}

// jsonOperator is operator for a decoded JSON value.
func (oc *operandCounter) jsonOperator(op opKind, v any) int {
	switch v := v.(type) {
	case nil:
		return 0
	case []any:
		return min(operandWeight(op, len(v)), oc.limit+1)
	}
	return operandWeight(op, -1)
}
