package query

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// Options are the limits Compile enforces. Zero or negative values mean the
// default, given for each field.
type Options struct {
	// MaxQueryBytes bounds len(Query)+len(Variables), checked before
	// anything else. Zero value means 64 KiB. Error: QUERY_TOO_LARGE with
	// extensions size and limit.
	MaxQueryBytes int
	// MaxTokens bounds the lexical tokens the parser reads. Zero value
	// means 10000. Error: QUERY_TOO_LARGE.
	MaxTokens int
	// MaxDepth bounds field nesting after fragment expansion; the
	// subscription field itself is depth 1. Zero value means 12.
	// Error: QUERY_TOO_COMPLEX with extensions depth and limit.
	MaxDepth int
	// MaxComplexity bounds the complexity score (see the package doc).
	// Zero value means 1000. Error: QUERY_TOO_COMPLEX with extensions
	// complexity and limit.
	MaxComplexity int
	// MaxFilterDepth bounds the nesting of the where filter (see the
	// package doc). Zero value means 50. Error: FILTER_TOO_DEEP.
	MaxFilterDepth int
	// MaxInList bounds the items of one in or nin list. Zero value means
	// 100. Error: GRAPHQL_VALIDATION_FAILED.
	MaxInList int
	// MaxFilterOperands bounds the operands of the where filter (see the
	// package doc, "Filters"): each operator counts 1, in and nin one per
	// list item. Checked on the parsed document and variables before
	// validation. Zero value means 100. Error: FILTER_TOO_COMPLEX with
	// extension limit.
	MaxFilterOperands int
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxQueryBytes, 64<<10)
	def(&o.MaxTokens, 10000)
	def(&o.MaxDepth, 12)
	def(&o.MaxComplexity, 1000)
	def(&o.MaxFilterDepth, 50)
	def(&o.MaxInList, 100)
	def(&o.MaxFilterOperands, 100)
	return o
}

// Request is one subscribe request.
type Request struct {
	Query         string
	OperationName string
	Variables     json.RawMessage // nil, null, or a JSON object
	Claims        map[string]any  // authenticated claims for {claims.x} and @requires; may be nil
}

// Compiler compiles requests into plans against one schema and caches the
// plans. It is safe for concurrent use.
type Compiler struct {
	schema *Schema
	opts   Options
	rules  *rules.Rules
	cache  *lru
}

// NewCompiler returns a compiler for s with the limits opts. It caches up
// to cacheSize plans (zero or negative: 4096), least recently used first out,
// keyed by query, operation name, variables, the claims that topic
// patterns use, and the outcome of each @requires guard.
func NewCompiler(s *Schema, opts Options, cacheSize int) *Compiler {
	if cacheSize <= 0 {
		cacheSize = 4096
	}
	return &Compiler{schema: s, opts: opts.withDefaults(), rules: rules.NewDefaultRules(), cache: newLRU(cacheSize)}
}

// Schema returns the compiler's schema.
func (c *Compiler) Schema() *Schema { return c.schema }

// Compile checks req and returns its plan, or a gqlerror.List whose errors
// each carry Extensions["code"] (one of the Code constants). Plans are
// immutable and may be shared between callers.
//
// The steps run cheapest first, so that hostile documents are refused
// before the expensive ones: size, parse with a token limit, a bounded walk
// for depth, complexity and fragment cycles, full validation, variable
// coercion, then the plan.
func (c *Compiler) Compile(req Request) (*Plan, error) {
	if n := len(req.Query) + len(req.Variables); n > c.opts.MaxQueryBytes {
		return nil, newErr(CodeQueryTooLarge,
			fmt.Sprintf("query is too large: %d bytes exceeds the limit of %d", n, c.opts.MaxQueryBytes),
			"size", n, "limit", c.opts.MaxQueryBytes)
	}
	key := c.cacheKey(&req)
	if p := c.cache.get(key); p != nil {
		return p, nil
	}
	p, errs := c.compile(&req)
	if errs != nil {
		return nil, errs
	}
	c.cache.add(key, p)
	return p, nil
}

// cacheKey hashes everything a plan depends on: the document, the operation
// name, the variables, the values of the claims topic patterns use and the
// outcome of each @requires guard.
func (c *Compiler) cacheKey(req *Request) [32]byte {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		io.WriteString(h, s)
	}
	put(req.Query)
	put(req.OperationName)
	binary.LittleEndian.PutUint64(n[:], uint64(len(req.Variables)))
	h.Write(n[:])
	h.Write(req.Variables)
	for _, name := range c.schema.claims {
		v, ok := claimString(req.Claims, name)
		put(name)
		if ok {
			put("+" + v)
		} else {
			put("-")
		}
	}
	// @requires: the outcome of every guard, so that a plan compiled for a
	// caller with a right is never served to one without (requires.go).
	put(c.schema.guardOutcomes(req.Claims))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *Compiler) compile(req *Request) (*Plan, gqlerror.List) {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Name: "query", Input: req.Query}, c.opts.MaxTokens)
	if err != nil {
		return nil, parseErr(err, c.opts.MaxTokens)
	}
	op, errs := pickOperation(doc, req.OperationName)
	if errs != nil {
		return nil, errs
	}
	raw := &rawVars{raw: req.Variables}
	complexity, _, errs := check(c.schema.ast, doc, &c.opts, op, raw)
	if errs != nil {
		return nil, errs
	}
	vars, errs := c.validate(doc, op, raw)
	if errs != nil {
		return nil, errs
	}
	// @requires: refuse guarded fields the caller has no right to (requires.go).
	if errs := c.schema.checkRequires(doc, op, req.Claims); errs != nil {
		return nil, errs
	}
	return c.build(op, vars, req.Claims, complexity)
}

// validate runs gqlparser's validation and variable coercion. gqlparser is
// not hardened against every malformed input, and a panic in it must fail
// one request, not the node.
func (c *Compiler) validate(doc *ast.QueryDocument, op *ast.OperationDefinition, raw *rawVars) (vars map[string]any, errs gqlerror.List) {
	defer func() {
		if r := recover(); r != nil {
			vars, errs = nil, newErr(CodeValidationFailed, "query could not be validated")
		}
	}()
	if errs := validator.ValidateWithRules(c.schema.ast, doc, c.rules); len(errs) > 0 {
		return nil, withCode(errs, CodeValidationFailed)
	}
	return coerceVariables(c.schema.ast, op, raw)
}

func parseErr(err error, maxTokens int) gqlerror.List {
	var ge *gqlerror.Error
	if !errors.As(err, &ge) {
		return newErr(CodeParseFailed, "query could not be parsed")
	}
	switch {
	case strings.HasPrefix(ge.Message, "exceeded token limit"):
		ge.Message = fmt.Sprintf("query is too large: more than %d tokens", maxTokens)
		return withCode(gqlerror.List{ge}, CodeQueryTooLarge)
	case strings.HasPrefix(ge.Message, "exceeded maximum nesting depth"):
		return withCode(gqlerror.List{ge}, CodeQueryTooComplex)
	}
	return withCode(gqlerror.List{ge}, CodeParseFailed)
}

func pickOperation(doc *ast.QueryDocument, name string) (*ast.OperationDefinition, gqlerror.List) {
	var op *ast.OperationDefinition
	switch {
	case name != "":
		op = doc.Operations.ForName(name)
		if op == nil {
			return nil, newErr(CodeValidationFailed, fmt.Sprintf("Unknown operation named %q.", name))
		}
	case len(doc.Operations) == 1:
		op = doc.Operations[0]
	case len(doc.Operations) == 0:
		return nil, newErr(CodeValidationFailed, "The document contains no operation.")
	default:
		return nil, newErr(CodeValidationFailed, "operationName is required when the document has several operations.")
	}
	if op.Operation != ast.Subscription {
		return nil, newErr(CodeValidationFailed, fmt.Sprintf("Only subscription operations are supported, not %s.", op.Operation))
	}
	return op, nil
}

func coerceVariables(s *ast.Schema, op *ast.OperationDefinition, raw *rawVars) (map[string]any, gqlerror.List) {
	vars, errs := raw.get()
	if errs != nil {
		return nil, errs
	}
	coerced, err := validator.VariableValues(s, op, vars)
	if err != nil {
		var ge *gqlerror.Error
		if errors.As(err, &ge) {
			return nil, withCode(gqlerror.List{ge}, CodeValidationFailed)
		}
		return nil, newErr(CodeValidationFailed, "variables are not valid")
	}
	return coerced, nil
}
