package query

import (
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// precheck runs only the steps before full validation (parse, operation,
// bounded walk) and reports how many selections the walk visited.
func (c *Compiler) precheck(query string) (visits int, code string) {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, c.opts.MaxTokens)
	if err != nil {
		return 0, errCode(parseErr(err, c.opts.MaxTokens))
	}
	op, errs := pickOperation(doc, "")
	if errs != nil {
		return 0, errCode(errs)
	}
	_, visits, errs = check(c.schema.ast, doc, &c.opts, op, &rawVars{})
	return visits, errCode(errs)
}

// cacheLen reports how many plans the compiler caches.
func (c *Compiler) cacheLen() int { return c.cache.len() }
