package main

import (
	"encoding"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fraiseql/subscriptions/limits"
)

// The configuration is decoded key by key, walking the YAML tree beside the
// Config type, rather than by one yaml.Decode: so that every error names the
// full key (limits.subscribe_rate) and the form it expects ("a duration
// such as 30s"), never a Go type, and an unknown key is answered with the
// nearest valid one.

// configError is one invalid key of the file or the environment.
type configError struct {
	line int    // in the file; 0 for the environment
	key  string // full dotted path: "ws.keep_alive", "limits.tenants.acme.event_rate"
	msg  string
}

func (e *configError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.line, e.key, e.msg)
	}
	return e.key + ": " + e.msg
}

var (
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
	limitsDuration  = reflect.TypeFor[limits.Duration]()
)

// decodeNode decodes n into v (addressable), path being v's key. It stops at
// the first invalid key.
func decodeNode(n *yaml.Node, v reflect.Value, path string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == 0 { // an empty file or variable
		return nil
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return decodeNode(n.Content[0], v, path)
	}
	t := v.Type()
	if n.Tag == "!!null" && n.Kind == yaml.ScalarNode {
		return nil // "key:" with no value keeps the default
	}
	pt := reflect.PointerTo(t)
	custom := pt.Implements(yamlUnmarshaler) || pt.Implements(textUnmarshaler)
	switch {
	case !custom && t.Kind() == reflect.Struct:
		return decodeStruct(n, v, path)
	case !custom && t.Kind() == reflect.Map:
		return decodeMap(n, v, path)
	case !custom && t.Kind() == reflect.Slice && isCompound(t.Elem()):
		return decodeList(n, v, path)
	case !custom && t.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return decodeNode(n, v.Elem(), path)
	}
	if n.Kind == yaml.ScalarNode {
		tag := n.ShortTag()
		switch {
		case (t == durationType || t == limitsDuration) && n.Value == "0":
			v.SetInt(0) // unambiguous without a unit
			return nil
		case (t == durationType || t == limitsDuration) && (tag == "!!int" || tag == "!!float"):
			// yaml would take 30 as 30ns
			return &configError{line: n.Line, key: path, msg: fmt.Sprintf("%q has no unit: want %s", n.Value, describeType(t))}
		case isInteger(t) && tag == "!!float":
			// yaml would truncate 1.5 to 1
			return &configError{line: n.Line, key: path, msg: fmt.Sprintf("%q is not %s", n.Value, describeType(t))}
		}
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		return &configError{line: n.Line, key: path, msg: valueMessage(n, t, err)}
	}
	return nil
}

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// isCompound reports whether t is decoded key by key.
func isCompound(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	if pt.Implements(yamlUnmarshaler) || pt.Implements(textUnmarshaler) {
		return false
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return true
	case reflect.Pointer:
		return isCompound(t.Elem())
	}
	return false
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return &configError{line: n.Line, key: keyOrTop(path), msg: fmt.Sprintf("%s is not a mapping of keys (%s)", describeNode(n), strings.Join(firstKeys(structKeys(v.Type())), ", "))}
	}
	fields := structFields(v)
	seen := make(map[string]bool)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Value == "<<" { // a YAML merge key: the merged mapping's keys are this one's
			if err := decodeStruct(resolve(val), v, path); err != nil {
				return err
			}
			continue
		}
		key := join(path, k.Value)
		if seen[k.Value] {
			return &configError{line: k.Line, key: key, msg: "given twice"}
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			return &configError{line: k.Line, key: key, msg: unknownKeyMessage(path, k.Value)}
		}
		if err := decodeNode(val, f, key); err != nil {
			return err
		}
	}
	return nil
}

func decodeMap(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return &configError{line: n.Line, key: path, msg: describeNode(n) + " is not a mapping of names to " + describeType(v.Type().Elem())}
	}
	t := v.Type()
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := reflect.New(t.Key()).Elem()
		if err := k.Decode(key.Addr().Interface()); err != nil {
			return &configError{line: k.Line, key: join(path, k.Value), msg: "the name " + valueMessage(k, t.Key(), err)}
		}
		elem := reflect.New(t.Elem()).Elem()
		if old := v.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		if err := decodeNode(val, elem, join(path, k.Value)); err != nil {
			return err
		}
		v.SetMapIndex(key, elem)
	}
	return nil
}

func decodeList(n *yaml.Node, v reflect.Value, path string) error {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		return &configError{line: n.Line, key: path, msg: describeNode(n) + " is not a list of " + describeType(v.Type().Elem()) + "s"}
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		if err := decodeNode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	v.Set(s)
	return nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func keyOrTop(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// structFields maps the yaml keys of struct v to its fields, inlined
// structs' keys included.
func structFields(v reflect.Value) map[string]reflect.Value {
	out := make(map[string]reflect.Value)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			maps.Copy(out, structFields(v.Field(i)))
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = v.Field(i)
	}
	return out
}

// structKeys lists the yaml keys of struct type t, sorted.
func structKeys(t reflect.Type) []string {
	keys := slices.Collect(maps.Keys(structFields(reflect.New(t).Elem())))
	slices.Sort(keys)
	return keys
}

func firstKeys(keys []string) []string {
	if len(keys) > 6 {
		return append(keys[:6:6], "…")
	}
	return keys
}

// configKeys lists every key path of the configuration ("limits.subscribe_rate");
// map and list entries are not expanded.
func configKeys() []string {
	var out []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for _, k := range structKeys(t) {
			p := join(path, k)
			out = append(out, p)
			ft := structFields(reflect.New(t).Elem())[k].Type()
			if ft.Kind() == reflect.Struct && isCompound(ft) {
				walk(ft, p)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

// unknownKeyMessage says that key is not valid under section and names the
// nearest valid key: a sibling one letter or two away, else a key of that
// name in another section, else the section's keys.
func unknownKeyMessage(section, key string) string {
	all := configKeys()
	var siblings []string
	for _, k := range all {
		if parent, name := splitKey(k); parent == section {
			siblings = append(siblings, name)
		}
	}
	if best, d := nearest(key, siblings); best != "" && d <= maxTypo(key) {
		return fmt.Sprintf("unknown key; did you mean %s?", join(section, best))
	}
	var elsewhere []string
	for _, k := range all {
		if _, name := splitKey(k); name == key {
			elsewhere = append(elsewhere, k)
		}
	}
	if len(elsewhere) > 0 {
		return fmt.Sprintf("unknown key here; did you mean %s?", strings.Join(elsewhere, " or "))
	}
	if len(siblings) == 0 {
		return "unknown key"
	}
	where := "the top level"
	if section != "" {
		where = section
	}
	return fmt.Sprintf("unknown key; the keys of %s are %s (docs/configuration.md)", where, strings.Join(siblings, ", "))
}

func splitKey(k string) (parent, name string) {
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		return k[:i], k[i+1:]
	}
	return "", k
}

// maxTypo is the edit distance still taken for a misspelling of s.
func maxTypo(s string) int { return max(1, min(3, len(s)/4)) }

// nearest returns the candidate closest to s by edit distance.
func nearest(s string, candidates []string) (best string, dist int) {
	dist = -1
	for _, c := range candidates {
		if d := editDistance(s, c); dist < 0 || d < dist {
			best, dist = c, d
		}
	}
	return best, dist
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// valueMessage explains why n does not decode into t, in the words of the
// configuration: the value and the form wanted.
func valueMessage(n *yaml.Node, t reflect.Type, err error) string {
	pt := reflect.PointerTo(t)
	if (pt.Implements(yamlUnmarshaler) || pt.Implements(textUnmarshaler)) && !isYAMLTypeError(err) {
		return err.Error() // the type's own message says the form (limits.Rate: "want N/unit such as 50/m")
	}
	return fmt.Sprintf("%s is not %s", describeNode(n), describeType(t))
}

func isYAMLTypeError(err error) bool {
	_, ok := err.(*yaml.TypeError)
	return ok
}

// describeNode quotes a scalar, or names a node's kind.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "this value"
}

// describeType is the form a value of t takes in the configuration.
func describeType(t reflect.Type) string {
	switch t {
	case durationType, limitsDuration:
		return "a duration (e.g. 500ms, 30s, 5m, 1h30m)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(describeType(t.Elem()), "a ") + "s (e.g. [a, b])"
	case reflect.Map:
		return "a mapping of names to " + describeType(t.Elem())
	case reflect.Struct:
		return "a mapping of keys (" + strings.Join(firstKeys(structKeys(t)), ", ") + ")"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return "a valid value"
}
