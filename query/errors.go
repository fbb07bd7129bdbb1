package query

import (
	"errors"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Error codes set in Extensions["code"] of every error that Compile returns.
// They are part of the wire contract (DESIGN.md, "Errors").
const (
	// CodeParseFailed marks a document that is not valid GraphQL syntax.
	CodeParseFailed = "GRAPHQL_PARSE_FAILED"
	// CodeValidationFailed marks a document that does not validate against
	// the schema, is not a single-field subscription, names an unknown
	// operation, or carries variables or filter values of the wrong type.
	CodeValidationFailed = "GRAPHQL_VALIDATION_FAILED"
	// CodeQueryTooLarge marks a document over Options.MaxQueryBytes or
	// Options.MaxTokens.
	CodeQueryTooLarge = "QUERY_TOO_LARGE"
	// CodeQueryTooComplex marks a document over Options.MaxDepth or
	// Options.MaxComplexity, or one whose fragments nest or expand too far.
	CodeQueryTooComplex = "QUERY_TOO_COMPLEX"
	// CodeFilterTooDeep marks a where filter nested deeper than
	// Options.MaxFilterDepth.
	CodeFilterTooDeep = "FILTER_TOO_DEEP"
	// CodeFilterTooComplex marks a where filter with more operands than
	// Options.MaxFilterOperands (see the package doc, "Filters").
	CodeFilterTooComplex = "FILTER_TOO_COMPLEX"
	// CodeForbidden marks a topic that needs a claim the connection lacks,
	// or a field whose @requires guard the caller's claims do not meet.
	CodeForbidden = "FORBIDDEN"
)

// ErrBadEvent is wrapped by the error Plan.Execute returns when an event
// body is not valid JSON, or not the kind of value the field returns.
var ErrBadEvent = errors.New("query: bad event")

// newErr returns a one-error list with a client-safe message and a code.
func newErr(code, msg string, ext ...any) gqlerror.List {
	e := &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
	for i := 0; i+1 < len(ext); i += 2 {
		e.Extensions[ext[i].(string)] = ext[i+1]
	}
	return gqlerror.List{e}
}

// withCode sets code on every error of errs that has none yet and returns errs.
func withCode(errs gqlerror.List, code string) gqlerror.List {
	for _, e := range errs {
		if e.Extensions == nil {
			e.Extensions = map[string]any{}
		}
		if _, ok := e.Extensions["code"]; !ok {
			e.Extensions["code"] = code
		}
	}
	return errs
}
