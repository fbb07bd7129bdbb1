package query

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Field guards: the @requires directive.
//
//	directive @requires(role: String, claim: String, value: String) on FIELD_DEFINITION
//
//	type Subscription {
//	  auditLog: AuditEntry @requires(role: "admin")
//	  invoices: Invoice    @requires(claim: "plan", value: "pro")
//	  beta: Metric         @requires(claim: "beta")
//	}
//
// LoadSchema declares the directive when the SDL does not. A guard names a
// role, a claim, or both; every condition it names must hold for
// Request.Claims:
//
//   - role: Claims[RolesClaimKey] is that role, or a list holding it (a
//     string is read as a space-separated list, as OAuth's scope claim is;
//     a list is []string or []any of strings);
//   - claim with value: Claims[claim] equals value as text (strings as they
//     are, numbers and booleans as JSON text), or is a list with such an
//     element;
//   - claim without value: Claims[claim] is present and not null.
//
// A guard holds wherever its field can be selected: on an object field, on
// the same-named field of every interface the object implements, and on an
// interface field, on the same-named field of every type that implements
// it, so that no fragment or interface selection reaches a guarded field
// unguarded. A guarded field is refused wherever it appears in the
// operation, @skip and @include notwithstanding.
//
// Compile checks guards after validation and before the plan. A guard that
// fails refuses the whole subscription with FORBIDDEN and the fixed message
// "not allowed to subscribe to <field>" (the root field's name, or
// Type.field for a nested field); the message never says which role or
// claim was missing. The plan cache key carries the outcome of every guard
// of the schema, so a plan compiled for a caller who passed a guard is
// never served to one who does not.

// RolesClaimKey is the key of Request.Claims that @requires(role:) reads.
const RolesClaimKey = "roles"

// requiresDirectiveSDL is added to a schema that does not declare @requires.
const requiresDirectiveSDL = "directive @requires(role: String, claim: String, value: String) on FIELD_DEFINITION\n"

// guard is one @requires directive.
type guard struct {
	role     string // "": no role condition
	claim    string // "": no claim condition
	value    string
	hasValue bool
}

// loadRequires reads the @requires directives of every object and interface
// field into s.guards (spreading them across interfaces, see above) and
// s.guardList (each distinct guard once, in a fixed order: the cache key
// records one outcome per entry).
func (s *Schema) loadRequires() error {
	names := make([]string, 0, len(s.ast.Types))
	for name, def := range s.ast.Types {
		if def.Kind == ast.Object || def.Kind == ast.Interface {
			names = append(names, name)
		}
	}
	slices.Sort(names)

	own := map[*ast.FieldDefinition][]*guard{}
	distinct := map[guard]*guard{}
	for _, name := range names {
		def := s.ast.Types[name]
		for _, fd := range def.Fields {
			for _, dir := range fd.Directives.ForNames("requires") {
				g, err := parseGuard(dir)
				if err != nil {
					return fmt.Errorf("field %s.%s: %w", def.Name, fd.Name, err)
				}
				if d, ok := distinct[g]; ok {
					own[fd] = append(own[fd], d)
					continue
				}
				d := &g
				distinct[g] = d
				s.guardList = append(s.guardList, d)
				own[fd] = append(own[fd], d)
			}
		}
	}
	if len(own) == 0 {
		return nil
	}

	s.guards = map[*ast.FieldDefinition][]*guard{}
	for _, name := range names {
		def := s.ast.Types[name]
		related := s.ast.GetImplements(def)
		if def.Kind == ast.Interface {
			related = append(slices.Clone(related), s.ast.GetPossibleTypes(def)...)
		}
		for _, fd := range def.Fields {
			gs := slices.Clone(own[fd])
			for _, r := range related {
				if rf := r.Fields.ForName(fd.Name); rf != nil {
					for _, g := range own[rf] {
						if !slices.Contains(gs, g) {
							gs = append(gs, g)
						}
					}
				}
			}
			if len(gs) > 0 {
				s.guards[fd] = gs
			}
		}
	}
	return nil
}

func parseGuard(dir *ast.Directive) (guard, error) {
	var g guard
	str := func(arg string) (string, bool, error) {
		a := dir.Arguments.ForName(arg)
		if a == nil || a.Value == nil || a.Value.Kind == ast.NullValue {
			return "", false, nil
		}
		if a.Value.Kind != ast.StringValue && a.Value.Kind != ast.BlockValue {
			return "", false, fmt.Errorf("@requires(%s:) must be a string", arg)
		}
		return a.Value.Raw, true, nil
	}
	var err error
	var ok bool
	if g.role, ok, err = str("role"); err != nil {
		return g, err
	} else if ok && g.role == "" {
		return g, fmt.Errorf("@requires(role:) must not be empty")
	}
	if g.claim, ok, err = str("claim"); err != nil {
		return g, err
	} else if ok && g.claim == "" {
		return g, fmt.Errorf("@requires(claim:) must not be empty")
	}
	if g.value, g.hasValue, err = str("value"); err != nil {
		return g, err
	}
	switch {
	case g.role == "" && g.claim == "":
		return g, fmt.Errorf("@requires needs role or claim")
	case g.hasValue && g.claim == "":
		return g, fmt.Errorf("@requires(value:) needs claim")
	}
	return g, nil
}

// allows reports whether claims satisfy g.
func (g *guard) allows(claims map[string]any) bool {
	if g.role != "" && !hasRole(claims[RolesClaimKey], g.role) {
		return false
	}
	if g.claim != "" {
		v, ok := claims[g.claim]
		if !ok || v == nil {
			return false
		}
		if g.hasValue && !claimMatches(v, g.value) {
			return false
		}
	}
	return true
}

func hasRole(v any, role string) bool {
	switch v := v.(type) {
	case string:
		return slices.Contains(strings.Fields(v), role)
	case []string:
		return slices.Contains(v, role)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s == role {
				return true
			}
		}
	}
	return false
}

func claimMatches(v any, want string) bool {
	switch v := v.(type) {
	case []string:
		return slices.Contains(v, want)
	case []any:
		for _, e := range v {
			if t, ok := guardText(e); ok && t == want {
				return true
			}
		}
		return false
	}
	t, ok := guardText(v)
	return ok && t == want
}

// guardText is the text a claim value compares as: strings as they are,
// numbers and booleans as JSON text; other kinds never match.
func guardText(v any) (string, bool) {
	switch v := v.(type) {
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	case nil:
		return "", false
	}
	return scalarText(v)
}

// guardOutcomes returns one byte per entry of s.guardList, '1' where claims
// satisfy the guard: the part of the plan cache key that keeps plans apart
// between callers with different rights.
func (s *Schema) guardOutcomes(claims map[string]any) string {
	if len(s.guardList) == 0 {
		return ""
	}
	b := make([]byte, len(s.guardList))
	for i, g := range s.guardList {
		b[i] = '0'
		if g.allows(claims) {
			b[i] = '1'
		}
	}
	return string(b)
}

// checkRequires refuses op when it selects, anywhere, a field whose guard
// claims do not satisfy. It runs on a validated document, so every field has
// its Definition; each fragment is walked once, so the work is linear in the
// document.
func (s *Schema) checkRequires(doc *ast.QueryDocument, op *ast.OperationDefinition, claims map[string]any) gqlerror.List {
	if len(s.guards) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var walk func(set ast.SelectionSet) gqlerror.List
	walk = func(set ast.SelectionSet) gqlerror.List {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				if sel.Definition != nil {
					for _, g := range s.guards[sel.Definition] {
						if !g.allows(claims) {
							return forbidden(s.ast, sel)
						}
					}
				}
				if errs := walk(sel.SelectionSet); errs != nil {
					return errs
				}
			case *ast.InlineFragment:
				if errs := walk(sel.SelectionSet); errs != nil {
					return errs
				}
			case *ast.FragmentSpread:
				if seen[sel.Name] {
					continue
				}
				seen[sel.Name] = true
				if f := doc.Fragments.ForName(sel.Name); f != nil {
					if errs := walk(f.SelectionSet); errs != nil {
						return errs
					}
				}
			}
		}
		return nil
	}
	return walk(op.SelectionSet)
}

func forbidden(s *ast.Schema, f *ast.Field) gqlerror.List {
	name := f.Name
	if f.ObjectDefinition != nil && f.ObjectDefinition != s.Subscription {
		name = f.ObjectDefinition.Name + "." + f.Name
	}
	return newErr(CodeForbidden, "not allowed to subscribe to "+name)
}
