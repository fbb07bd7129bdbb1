package query

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// topicDirectiveSDL is added to a schema that does not declare @topic.
const topicDirectiveSDL = "directive @topic(name: String!) on FIELD_DEFINITION\n"

// Schema is a loaded, checked SDL schema. It is immutable and safe for
// concurrent use.
type Schema struct {
	ast    *ast.Schema
	fields map[string]*subField
	names  []string // subscription field names, sorted
	claims []string // claim names any topic pattern uses, sorted

	// @requires guards (requires.go): per field definition, and each
	// distinct guard once, in cache-key order.
	guards    map[*ast.FieldDefinition][]*guard
	guardList []*guard
}

// subField is one field of the Subscription type and its topic pattern.
type subField struct {
	def      *ast.FieldDefinition
	pattern  []segment       // nil: the topic is the field name
	topicArg map[string]bool // arguments the pattern references
}

// segment is one piece of a topic pattern: literal text, an argument or a claim.
type segment struct {
	lit, arg, claim string
}

// LoadSchema parses and checks the SDL sdl (name labels error positions).
// It adds the @topic and @requires directive declarations when sdl lacks
// them (see requires.go for @requires), requires a
// Subscription type, and checks every @topic(name:) pattern: each {x}
// placeholder must name a scalar or enum argument of its field or be
// {claims.<name>}, and the literal parts must form valid NATS tokens.
func LoadSchema(name, sdl string) (*Schema, error) {
	doc, err := parser.ParseSchema(&ast.Source{Name: name, Input: sdl})
	if err != nil {
		return nil, fmt.Errorf("query: schema %s: %w", name, err)
	}
	srcs := []*ast.Source{{Name: name, Input: sdl}}
	if doc.Directives.ForName("topic") == nil {
		srcs = append(srcs, &ast.Source{Name: "topic-directive", Input: topicDirectiveSDL})
	}
	if doc.Directives.ForName("requires") == nil { // @requires: see requires.go
		srcs = append(srcs, &ast.Source{Name: "requires-directive", Input: requiresDirectiveSDL})
	}
	as, err := gqlparser.LoadSchema(srcs...)
	if err != nil {
		return nil, fmt.Errorf("query: schema %s: %w", name, err)
	}
	if as.Subscription == nil {
		return nil, fmt.Errorf("query: schema %s: no Subscription type", name)
	}
	s := &Schema{ast: as, fields: map[string]*subField{}}
	claims := map[string]bool{}
	for _, fd := range as.Subscription.Fields {
		if strings.HasPrefix(fd.Name, "__") {
			continue
		}
		sf, err := newSubField(as, fd)
		if err != nil {
			return nil, fmt.Errorf("query: schema %s: field Subscription.%s: %w", name, fd.Name, err)
		}
		for _, seg := range sf.pattern {
			if seg.claim != "" {
				claims[seg.claim] = true
			}
		}
		s.fields[fd.Name] = sf
		s.names = append(s.names, fd.Name)
	}
	slices.Sort(s.names)
	for c := range claims {
		s.claims = append(s.claims, c)
	}
	slices.Sort(s.claims)
	if err := s.loadRequires(); err != nil { // @requires: see requires.go
		return nil, fmt.Errorf("query: schema %s: %w", name, err)
	}
	return s, nil
}

// Fields returns the subscription field names, sorted.
func (s *Schema) Fields() []string { return slices.Clone(s.names) }

func newSubField(as *ast.Schema, fd *ast.FieldDefinition) (*subField, error) {
	sf := &subField{def: fd, topicArg: map[string]bool{}}
	dir := fd.Directives.ForName("topic")
	if dir == nil {
		return sf, nil
	}
	arg := dir.Arguments.ForName("name")
	if arg == nil || arg.Value == nil || arg.Value.Kind != ast.StringValue && arg.Value.Kind != ast.BlockValue {
		return nil, fmt.Errorf("@topic needs a string name")
	}
	pattern := arg.Value.Raw
	rest := pattern
	shape := "" // the pattern with each placeholder replaced by "x"
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			sf.pattern = append(sf.pattern, segment{lit: rest})
			shape += rest
			break
		}
		if open > 0 {
			sf.pattern = append(sf.pattern, segment{lit: rest[:open]})
			shape += rest[:open]
		}
		closing := strings.IndexByte(rest[open:], '}')
		if closing < 0 {
			return nil, fmt.Errorf("@topic %q: unclosed placeholder", pattern)
		}
		ph := rest[open+1 : open+closing]
		rest = rest[open+closing+1:]
		shape += "x"
		if c, ok := strings.CutPrefix(ph, "claims."); ok {
			if !isName(c) {
				return nil, fmt.Errorf("@topic %q: bad placeholder {%s}", pattern, ph)
			}
			sf.pattern = append(sf.pattern, segment{claim: c})
			continue
		}
		ad := fd.Arguments.ForName(ph)
		if ad == nil {
			return nil, fmt.Errorf("@topic %q: placeholder {%s} is not an argument of the field", pattern, ph)
		}
		if td := as.Types[ad.Type.Name()]; ad.Type.Elem != nil || td == nil || !td.IsLeafType() {
			return nil, fmt.Errorf("@topic %q: placeholder {%s} must be a scalar or enum argument", pattern, ph)
		}
		sf.pattern = append(sf.pattern, segment{arg: ph})
		sf.topicArg[ph] = true
	}
	if !validSubject(shape) || strings.ContainsAny(shape, "{}%") {
		return nil, fmt.Errorf("@topic %q: not a valid subject pattern", pattern)
	}
	return sf, nil
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenSafe(s[i]) || s[i] == '-' {
			return false
		}
	}
	return true
}
