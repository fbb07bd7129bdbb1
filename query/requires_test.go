package query

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

const guardedSDL = `
type Query { health: String }
type Secret { id: ID! note: String @requires(role: "admin") }
interface Node { id: ID! secret: String }
type Robot implements Node { id: ID! secret: String @requires(role: "ops") }
type Human implements Node { id: ID! secret: String }
interface Doc { body: String @requires(claim: "beta") }
type Page implements Doc { body: String title: String }
type Subscription {
  open: Secret
  audit: Secret @requires(role: "admin")
  invoices: Secret @requires(claim: "plan", value: "pro")
  beta: Secret @requires(claim: "beta")
  level: Secret @requires(claim: "level", value: "3")
  flag: Secret @requires(claim: "flag", value: "true")
  both: Secret @requires(role: "admin", claim: "plan", value: "pro")
  sameAsAudit: Secret @requires(role: "admin")
  nodes: Node
  pages: Page
  mine: Secret @topic(name: "u.{claims.sub}") @requires(role: "admin")
}
`

var (
	guardedOnce   sync.Once
	guardedSchema *Schema
)

func guarded(t testing.TB) *Schema {
	t.Helper()
	guardedOnce.Do(func() {
		s, err := LoadSchema("guarded.graphql", guardedSDL)
		if err != nil {
			panic(err)
		}
		guardedSchema = s
	})
	return guardedSchema
}

func TestRequires(t *testing.T) {
	c := NewCompiler(guarded(t), Options{}, 0)
	admin := map[string]any{RolesClaimKey: []any{"user", "admin"}}
	cases := []struct {
		name   string
		query  string
		claims map[string]any
		field  string // "" : allowed; else the field in the FORBIDDEN message
	}{
		{"unguarded", `subscription { open { id } }`, nil, ""},
		{"role as []any", `subscription { audit { id } }`, admin, ""},
		{"role as []string", `subscription { audit { id } }`, map[string]any{"roles": []string{"admin"}}, ""},
		{"role as string", `subscription { audit { id } }`, map[string]any{"roles": "admin"}, ""},
		{"role in space-separated string", `subscription { audit { id } }`, map[string]any{"roles": "user admin"}, ""},
		{"no claims", `subscription { audit { id } }`, nil, "audit"},
		{"missing role", `subscription { audit { id } }`, map[string]any{"roles": []any{"user"}}, "audit"},
		{"role substring is not the role", `subscription { audit { id } }`, map[string]any{"roles": "administrator"}, "audit"},
		{"role under another key", `subscription { audit { id } }`, map[string]any{"role": "admin"}, "audit"},
		{"non-string role elements", `subscription { audit { id } }`, map[string]any{"roles": []any{1, true, nil}}, "audit"},
		{"claim value", `subscription { invoices { id } }`, map[string]any{"plan": "pro"}, ""},
		{"wrong claim value", `subscription { invoices { id } }`, map[string]any{"plan": "free"}, "invoices"},
		{"missing claim", `subscription { invoices { id } }`, map[string]any{"roles": "admin"}, "invoices"},
		{"claim list holds value", `subscription { invoices { id } }`, map[string]any{"plan": []any{"free", "pro"}}, ""},
		{"numeric claim", `subscription { level { id } }`, map[string]any{"level": float64(3)}, ""},
		{"json.Number claim", `subscription { level { id } }`, map[string]any{"level": json.Number("3")}, ""},
		{"other number", `subscription { level { id } }`, map[string]any{"level": float64(4)}, "level"},
		{"bool claim", `subscription { flag { id } }`, map[string]any{"flag": true}, ""},
		{"bool claim false", `subscription { flag { id } }`, map[string]any{"flag": false}, "flag"},
		{"object claim never matches", `subscription { invoices { id } }`, map[string]any{"plan": map[string]any{"pro": true}}, "invoices"},
		{"claim present", `subscription { beta { id } }`, map[string]any{"beta": false}, ""},
		{"claim null", `subscription { beta { id } }`, map[string]any{"beta": nil}, "beta"},
		{"both hold", `subscription { both { id } }`, map[string]any{"roles": "admin", "plan": "pro"}, ""},
		{"both: role only", `subscription { both { id } }`, map[string]any{"roles": "admin"}, "both"},
		{"both: claim only", `subscription { both { id } }`, map[string]any{"plan": "pro"}, "both"},
		{"alias does not hide the field", `subscription { x: audit { id } }`, nil, "audit"},
		{"nested field", `subscription { open { id note } }`, nil, "Secret.note"},
		{"nested field allowed", `subscription { open { id note } }`, admin, ""},
		{"nested in fragment", `subscription { open { ...F } } fragment F on Secret { note }`, nil, "Secret.note"},
		{"nested in inline fragment", `subscription { open { ... on Secret { note } } }`, nil, "Secret.note"},
		{"root in fragment", `subscription { ...R } fragment R on Subscription { audit { id } }`, nil, "audit"},
		{"under skip still refused", `subscription { open { id note @skip(if: true) } }`, nil, "Secret.note"},
		{"interface field guarded by an implementation", `subscription { nodes { secret } }`, nil, "Node.secret"},
		{"interface field with the right", `subscription { nodes { secret } }`, map[string]any{"roles": "ops"}, ""},
		{"concrete field", `subscription { nodes { ... on Robot { secret } } }`, nil, "Robot.secret"},
		{"unguarded implementation", `subscription { nodes { ... on Human { secret } } }`, nil, ""},
		{"interface without the guarded field", `subscription { nodes { id } }`, nil, ""},
		{"object field guarded by its interface", `subscription { pages { body } }`, nil, "Page.body"},
		{"object field guarded by its interface, allowed", `subscription { pages { body } }`, map[string]any{"beta": "yes"}, ""},
		{"object's unguarded field", `subscription { pages { title } }`, nil, ""},
		{"guard with topic claim", `subscription { mine { id } }`, map[string]any{"sub": "u1", "roles": "admin"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := c.Compile(Request{Query: tc.query, Claims: tc.claims})
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				if p == nil {
					t.Fatal("no plan")
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile succeeded, want FORBIDDEN")
			}
			e := firstErr(t, err)
			if code := e.Extensions["code"]; code != CodeForbidden {
				t.Fatalf("code %v (%v), want %s", code, err, CodeForbidden)
			}
			if want := "not allowed to subscribe to " + tc.field; e.Message != want {
				t.Errorf("message %q, want %q", e.Message, want)
			}
		})
	}
}

// The FORBIDDEN message is fixed: it must not tell the caller which role or
// claim would open the field.
func TestRequiresMessageLeaksNothing(t *testing.T) {
	c := NewCompiler(guarded(t), Options{}, 0)
	for _, q := range []string{`subscription { audit { id } }`, `subscription { invoices { id } }`, `subscription { both { id } }`} {
		_, err := c.Compile(Request{Query: q, Claims: map[string]any{"plan": "free"}})
		msg := firstErr(t, err).Error()
		for _, leak := range []string{"admin", "plan", "pro", "role", "claim"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%s: message %q mentions %q", q, msg, leak)
			}
		}
	}
}

// Validation runs first: an invalid document that names a guarded field is
// a validation failure, as for everyone.
func TestRequiresAfterValidation(t *testing.T) {
	c := NewCompiler(guarded(t), Options{}, 0)
	_, err := c.Compile(Request{Query: `subscription { audit { nope } }`})
	if code := errCode(err); code != CodeValidationFailed {
		t.Fatalf("code %q, want %s", code, CodeValidationFailed)
	}
}

// TestRequiresCacheIsolation compiles the same document for callers with
// and without the right, in both orders, on one compiler: a cached plan must
// never reach a caller who would be refused.
func TestRequiresCacheIsolation(t *testing.T) {
	admin := map[string]any{"roles": []any{"admin"}, "sub": "a"}
	user := map[string]any{"roles": []any{"user"}, "sub": "a"}
	pro := map[string]any{"plan": "pro", "sub": "a"}
	free := map[string]any{"plan": "free", "sub": "a"}
	cases := []struct {
		name          string
		query         string
		allowed, deny map[string]any
	}{
		{"role", `subscription { audit { id } }`, admin, user},
		{"claim value", `subscription { invoices { id } }`, pro, free},
		{"nested role", `subscription { open { note } }`, admin, user},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/allowed first", func(t *testing.T) {
			c := NewCompiler(guarded(t), Options{}, 0)
			p1 := mustCompile(t, c, Request{Query: tc.query, Claims: tc.allowed})
			if code := errCode(compileErr(c, tc.query, tc.deny)); code != CodeForbidden {
				t.Fatalf("second caller: code %q, want %s", code, CodeForbidden)
			}
			if p2 := mustCompile(t, c, Request{Query: tc.query, Claims: tc.allowed}); p2 != p1 {
				t.Errorf("allowed caller did not get the cached plan")
			}
		})
		t.Run(tc.name+"/refused first", func(t *testing.T) {
			c := NewCompiler(guarded(t), Options{}, 0)
			if code := errCode(compileErr(c, tc.query, tc.deny)); code != CodeForbidden {
				t.Fatalf("code %q, want %s", code, CodeForbidden)
			}
			mustCompile(t, c, Request{Query: tc.query, Claims: tc.allowed})
			if code := errCode(compileErr(c, tc.query, tc.deny)); code != CodeForbidden {
				t.Fatalf("after a plan was cached: code %q, want %s", code, CodeForbidden)
			}
			if n := c.cacheLen(); n != 1 {
				t.Errorf("cache holds %d plans, want 1 (refusals are not cached)", n)
			}
		})
	}
}

// Callers whose claims differ only in ways no guard reads share one plan.
func TestRequiresCacheSharing(t *testing.T) {
	c := NewCompiler(guarded(t), Options{}, 0)
	q := `subscription { audit { id } }`
	p1 := mustCompile(t, c, Request{Query: q, Claims: map[string]any{"roles": "admin", "x": 1}})
	p2 := mustCompile(t, c, Request{Query: q, Claims: map[string]any{"roles": []string{"user", "admin"}, "x": 2}})
	if p1 != p2 || c.cacheLen() != 1 {
		t.Errorf("plans not shared: same=%v cache=%d", p1 == p2, c.cacheLen())
	}
}

func compileErr(c *Compiler, query string, claims map[string]any) error {
	_, err := c.Compile(Request{Query: query, Claims: claims})
	return err
}

func TestRequiresSchema(t *testing.T) {
	const base = "type Query { q: String }\ntype T { id: ID }\n"
	cases := []struct {
		name, sdl string
		errPart   string // "": loads
	}{
		{"declared by the SDL", `directive @requires(role: String, claim: String, value: String) on FIELD_DEFINITION
type Subscription { a: T @requires(role: "x") }`, ""},
		{"no condition", `type Subscription { a: T @requires }`, "needs role or claim"},
		{"value without claim", `type Subscription { a: T @requires(role: "x", value: "y") }`, "needs claim"},
		{"empty role", `type Subscription { a: T @requires(role: "") }`, "must not be empty"},
		{"empty claim", `type Subscription { a: T @requires(claim: "") }`, "must not be empty"},
		{"null role and claim", `type Subscription { a: T @requires(role: null, claim: null) }`, "needs role or claim"},
		{"wrong location", `type Subscription { a(x: Int @requires(role: "r")): T }`, "requires"},
		{"nested field", `type Subscription { a: T }
type U { secret: String @requires(claim: "c") }`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSchema("s.graphql", base+tc.sdl)
			switch {
			case tc.errPart == "" && err != nil:
				t.Fatalf("LoadSchema: %v", err)
			case tc.errPart != "" && err == nil:
				t.Fatalf("LoadSchema succeeded, want error with %q", tc.errPart)
			case tc.errPart != "" && !strings.Contains(err.Error(), tc.errPart):
				t.Fatalf("error %q, want it to contain %q", err, tc.errPart)
			}
		})
	}
}

// The demo schema has no guards: its cache keys and plans are unaffected.
func TestRequiresNoGuards(t *testing.T) {
	s := demoSchema(t)
	if len(s.guards) != 0 || len(s.guardList) != 0 || s.guardOutcomes(map[string]any{"roles": "admin"}) != "" {
		t.Fatalf("demo schema has guards: %d %d", len(s.guards), len(s.guardList))
	}
	if got := len(guarded(t).guardList); got != 7 {
		t.Errorf("guarded schema has %d distinct guards, want 7 (duplicates shared)", got)
	}
}
