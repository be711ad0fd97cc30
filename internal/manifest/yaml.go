package manifest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Limits that keep a hostile or broken file from costing much.
const (
	// maxFileSize bounds a manifest file. Real ones are a few KiB; the YAML
	// parser's time grows with the square of a block mapping's size.
	maxFileSize  = 64 << 10
	maxErrors    = 50      // problems reported before giving up
	stepBudget   = 1 << 20 // nodes visited, counting alias expansions
	maxMerge     = 8       // nesting of "<<" merge keys
	maxFlowDepth = 32      // nesting of [ ] and { }
	maxPerLine   = 64      // "[", "{", "-", "?", "&", "*" and "!" on one line
)

// decoder walks a goccy/go-yaml AST and records every problem with the
// position of the node it concerns. Containers that are null read as empty;
// anchors, aliases, tags and "<<" merge keys are resolved on the way.
type decoder struct {
	file    string
	errs    List
	anchors map[string][]*ast.AnchorNode // by name, in document order
	steps   int                          // nodes visited so far, bounded by stepBudget
	full    bool                         // too many errors or steps: stop looking
}

// entry is one key/value pair of a mapping.
type entry struct {
	key   string   // the key as text
	keyN  ast.Node // the key node, for positions
	val   ast.Node // the resolved value; never nil (a missing value is a NullNode)
	field string   // dotted path of the value
}

// parseYAML turns data into the root node of its single document. A syntax
// error is recorded and nil returned.
func (d *decoder) parseYAML(data []byte) (root ast.Node) {
	defer func() {
		// The parser is a third-party state machine fed untrusted bytes; a
		// panic in it is a broken manifest, not a reason to stop the engine.
		if r := recover(); r != nil {
			d.errs = append(d.errs, &Error{File: d.file, Line: 1, Column: 1, Msg: fmt.Sprintf("invalid YAML: parser failed: %v", r)})
			root = nil
		}
	}()
	tokens := lexer.Tokenize(string(data))
	if tk, msg := tooComplex(tokens); tk != nil {
		line, col := tokenPos(tk)
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Msg: msg})
		return nil
	}
	f, err := parser.Parse(tokens, 0)
	if err != nil {
		e := &Error{File: d.file, Line: 1, Column: 1, Msg: "invalid YAML: " + err.Error()}
		var ye yaml.Error
		if errors.As(err, &ye) {
			e.Msg = "invalid YAML: " + ye.GetMessage()
			e.Line, e.Column = tokenPos(ye.GetToken())
		}
		d.errs = append(d.errs, e)
		return nil
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		return nil
	}
	if len(docs) > 1 {
		d.errorf(docs[1].Body, "", "a manifest holds one YAML document, found %d", len(docs))
		return nil
	}
	d.anchors = make(map[string][]*ast.AnchorNode)
	ast.Walk(anchorCollector(d.anchors), docs[0].Body)
	return docs[0].Body
}

// tooComplex finds the token where a file nests deeper than any manifest
// needs. The parser's time grows with the square of the nesting, so deep
// input is refused before it is parsed.
func tooComplex(tokens token.Tokens) (*token.Token, string) {
	flow, line, onLine := 0, 0, 0
	for _, tk := range tokens {
		if tk == nil || tk.Position == nil {
			continue
		}
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			if flow++; flow > maxFlowDepth {
				return tk, fmt.Sprintf("nested deeper than %d levels", maxFlowDepth)
			}
		case token.SequenceEndType, token.MappingEndType:
			flow = max(flow-1, 0)
		}
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType, token.SequenceEntryType,
			token.MappingKeyType, token.AnchorType, token.AliasType, token.TagType:
			if tk.Position.Line != line {
				line, onLine = tk.Position.Line, 0
			}
			if onLine++; onLine > maxPerLine {
				return tk, fmt.Sprintf("more than %d collections, anchors, aliases or tags on one line", maxPerLine)
			}
		}
	}
	return nil, ""
}

type anchorCollector map[string][]*ast.AnchorNode

func (c anchorCollector) Visit(n ast.Node) ast.Visitor {
	if a, ok := n.(*ast.AnchorNode); ok && a.Name != nil {
		name := a.Name.String()
		c[name] = append(c[name], a)
	}
	return c
}

// errorf records a problem at node n.
func (d *decoder) errorf(n ast.Node, field, format string, args ...any) {
	if d.full {
		return
	}
	line, col := nodePos(n)
	if len(d.errs) >= maxErrors {
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Field: field, Msg: "too many errors, stopping"})
		d.full = true
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// step counts one visited node and reports whether the walk may go on.
func (d *decoder) step(n ast.Node) bool {
	if d.full {
		return false
	}
	d.steps++
	if d.steps > stepBudget {
		d.errorf(n, "", "document too large or too deeply aliased")
		d.full = true
		return false
	}
	return true
}

// tokenPos returns the 1-based position of tk, or 1:1 when it has none.
func tokenPos(tk *token.Token) (int, int) {
	if tk == nil || tk.Position == nil {
		return 1, 1
	}
	return max(tk.Position.Line, 1), max(tk.Position.Column, 1)
}

// nodePos returns the 1-based position where a person should look for n:
// the first key of a block mapping, the start of anything else.
func nodePos(n ast.Node) (line, col int) {
	for range 16 {
		switch v := n.(type) {
		case nil:
			return 1, 1
		case *ast.DocumentNode:
			n = v.Body
			continue
		case *ast.MappingNode:
			if !v.IsFlowStyle && len(v.Values) > 0 && v.Values[0] != nil && v.Values[0].Key != nil {
				n = v.Values[0].Key
				continue
			}
		case *ast.MappingValueNode:
			if v.Key != nil {
				n = v.Key
				continue
			}
		}
		break
	}
	if n == nil {
		return 1, 1
	}
	return tokenPos(n.GetToken())
}

// resolve looks through anchors, aliases and tags to the node that holds the
// value. An alias to an unknown anchor is reported and read as null.
func (d *decoder) resolve(n ast.Node, field string) ast.Node {
	for range 64 {
		if !d.step(n) {
			return nil
		}
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			if v.Start != nil && v.Start.Value == "!!str" {
				// An explicit string: "!!str 1" is the text "1".
				if r := d.resolve(v.Value, field); r != nil {
					if s, ok := scalarText(r); ok {
						return &ast.StringNode{BaseNode: &ast.BaseNode{}, Token: r.GetToken(), Value: s}
					}
				}
			}
			n = v.Value
		case *ast.AliasNode:
			target := d.anchorFor(v)
			if target == nil {
				d.errorf(v, field, "unknown alias %s", v.String())
				return nil
			}
			n = target.Value
		default:
			return n
		}
	}
	d.errorf(n, field, "alias refers to itself")
	return nil
}

// anchorFor finds the anchor an alias names: the last one defined before it.
func (d *decoder) anchorFor(a *ast.AliasNode) *ast.AnchorNode {
	if a.Value == nil {
		return nil
	}
	var found *ast.AnchorNode
	at := offset(a)
	for _, c := range d.anchors[a.Value.String()] {
		if offset(c) < at {
			found = c
		}
	}
	return found
}

func offset(n ast.Node) int {
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Offset
	}
	return 0
}

// typeName names a node's kind for messages: "a mapping", "an int".
func typeName(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	}
	return "a " + n.Type().YAMLName()
}

// isNull reports whether n is absent or an explicit null.
func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return n == nil || ok
}

// mapping returns the entries of the mapping at n, in file order. A null
// reads as an empty mapping; anything else is reported and read as empty.
func (d *decoder) mapping(n ast.Node, field string) []entry {
	return d.mappingDepth(n, field, 0)
}

func (d *decoder) mappingDepth(n ast.Node, field string, depth int) []entry {
	at := n
	n = d.resolve(n, field)
	if isNull(n) {
		return nil
	}
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errorf(at, field, "must be a mapping, not %s", typeName(n))
		return nil
	}
	var entries, merged []entry
	seen := make(map[string]ast.Node)
	for _, mv := range m.Values {
		if mv == nil || !d.step(mv) {
			continue
		}
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			merged = append(merged, d.merge(mv.Value, field, depth)...)
			continue
		}
		key, ok := d.keyText(mv.Key, field)
		if !ok {
			continue
		}
		if prev, dup := seen[key]; dup {
			line, _ := nodePos(prev)
			d.errorf(mv.Key, join(field, key), "duplicate key (first at line %d)", line)
			continue
		}
		seen[key] = mv.Key
		var val ast.Node = ast.Null(mv.GetToken())
		if mv.Value != nil {
			if val = d.resolve(mv.Value, join(field, key)); val == nil {
				continue // reported by resolve
			}
		}
		if null, ok := val.(*ast.NullNode); ok && (null.Token == nil || null.Token.Type == token.ImplicitNullType) {
			// "key:" with nothing after it: point at the key, not past the line.
			val = ast.Null(keyToken(mv.Key))
		}
		entries = append(entries, entry{key: key, keyN: mv.Key, val: val, field: join(field, key)})
	}
	// Keys written out win over merged ones; among merged maps the first wins.
	for _, e := range merged {
		if _, dup := seen[e.key]; !dup {
			seen[e.key] = e.keyN
			entries = append(entries, e)
		}
	}
	return entries
}

// merge returns the entries a "<<" key brings in: one mapping or a list of them.
func (d *decoder) merge(n ast.Node, field string, depth int) []entry {
	if depth >= maxMerge {
		d.errorf(n, field, "merge keys nested too deeply")
		return nil
	}
	at := n
	n = d.resolve(n, field)
	if seq, ok := n.(*ast.SequenceNode); ok {
		var out []entry
		for _, v := range seq.Values {
			out = append(out, d.mappingDepth(v, field, depth+1)...)
		}
		return out
	}
	if _, ok := n.(*ast.MappingNode); !ok {
		d.errorf(at, field, "<< must merge a mapping or a list of mappings, not %s", typeName(n))
		return nil
	}
	return d.mappingDepth(n, field, depth+1)
}

// keyToken returns the token of a mapping key, looking through "? key".
func keyToken(k ast.Node) *token.Token {
	if mk, ok := k.(*ast.MappingKeyNode); ok && mk.Value != nil {
		k = mk.Value
	}
	if k == nil {
		return nil
	}
	return k.GetToken()
}

// keyText returns a mapping key as text. Keys must be scalars.
func (d *decoder) keyText(k ast.Node, field string) (string, bool) {
	if mk, ok := k.(*ast.MappingKeyNode); ok {
		k = mk.Value
	}
	r := d.resolve(k, field)
	s, ok := scalarText(r)
	if !ok {
		d.errorf(k, field, "keys must be strings, not %s", typeName(r))
	}
	return s, ok
}

// join appends key to a dotted field path; keys that are not plain words are
// quoted: static["/assets"].
func join(field, key string) string {
	plain := key != ""
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return fmt.Sprintf("%s[%q]", field, key)
	case field == "":
		return key
	}
	return field + "." + key
}

// index appends a list index to a field path: cache[1].
func index(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// extensionPrefix, as a handler key of object, catches every key that starts
// with it: pier.yaml's top level ignores "x-" keys, as Compose files do, so
// that they can hold YAML anchors.
const extensionPrefix = "x-"

// object reads a mapping with a fixed set of keys, calling the handler for
// each key present. Unknown keys are reported with the closest known one.
func (d *decoder) object(n ast.Node, field string, handlers map[string]func(entry)) {
	for _, e := range d.mapping(n, field) {
		h, ok := handlers[e.key]
		if !ok && strings.HasPrefix(e.key, extensionPrefix) {
			h, ok = handlers[extensionPrefix]
		}
		if !ok {
			known := make([]string, 0, len(handlers))
			for k := range handlers {
				if k != extensionPrefix {
					known = append(known, k)
				}
			}
			slices.Sort(known)
			d.errorf(e.keyN, e.field, "unknown field %q%s", e.key, suggest(e.key, known))
			continue
		}
		h(e)
	}
}

// list returns the items of the sequence at n with their field paths. A null
// reads as an empty list.
func (d *decoder) list(n ast.Node, field string) (items []ast.Node, fields []string) {
	at := n
	n = d.resolve(n, field)
	if isNull(n) {
		return nil, nil
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errorf(at, field, "must be a list, not %s", typeName(n))
		return nil, nil
	}
	for i, v := range seq.Values {
		f := index(field, i)
		r := d.resolve(v, f)
		if r == nil {
			continue
		}
		items = append(items, r)
		fields = append(fields, f)
	}
	return items, fields
}

// scalarText returns the text of a scalar as written: numbers and booleans
// keep their spelling ("1.10" stays "1.10").
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	return "", false
}

// str reads a string value.
func (d *decoder) str(e entry) (string, bool) {
	switch e.val.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := scalarText(e.val)
		return s, true
	}
	d.errorf(e.val, e.field, "must be a string, not %s", typeName(e.val))
	return "", false
}

// integer reads a whole number in [lo, hi].
func (d *decoder) integer(e entry, lo, hi int) (int, bool) {
	v, ok := e.val.(*ast.IntegerNode)
	if !ok {
		d.errorf(e.val, e.field, "must be an integer, not %s", typeName(e.val))
		return 0, false
	}
	var n int64
	switch x := v.Value.(type) {
	case int64:
		n = x
	case uint64:
		n = math.MaxInt64
		if x < math.MaxInt64 {
			n = int64(x)
		}
	}
	if n < int64(lo) {
		d.errorf(e.val, e.field, "must be at least %d", lo)
		return 0, false
	}
	if n > int64(hi) {
		d.errorf(e.val, e.field, "must be at most %d", hi)
		return 0, false
	}
	return int(n), true
}

// number reads a finite number, integer or not.
func (d *decoder) number(e entry) (float64, bool) {
	switch v := e.val.(type) {
	case *ast.IntegerNode:
		f, err := strconv.ParseFloat(strings.ReplaceAll(v.GetToken().Value, "_", ""), 64)
		if err == nil {
			return f, true
		}
		switch x := v.Value.(type) {
		case int64:
			return float64(x), true
		case uint64:
			return float64(x), true
		}
	case *ast.FloatNode:
		return v.Value, true
	}
	d.errorf(e.val, e.field, "must be a number, not %s", typeName(e.val))
	return 0, false
}

// boolean reads true or false.
func (d *decoder) boolean(e entry) (bool, bool) {
	if v, ok := e.val.(*ast.BoolNode); ok {
		return v.Value, true
	}
	d.errorf(e.val, e.field, "must be true or false, not %s", typeName(e.val))
	return false, false
}

// duration reads a positive Go duration ("5s", "1m30s") or a whole number of
// seconds.
func (d *decoder) duration(e entry) (time.Duration, bool) {
	var dur time.Duration
	switch v := e.val.(type) {
	case *ast.IntegerNode:
		secs, ok := d.integer(e, 1, math.MaxInt64/int(time.Second))
		if !ok {
			return 0, false
		}
		dur = time.Duration(secs) * time.Second
	case *ast.StringNode:
		var err error
		if dur, err = time.ParseDuration(v.Value); err != nil {
			d.errorf(e.val, e.field, "invalid duration %q (want e.g. 5s, 1m30s, or whole seconds)", v.Value)
			return 0, false
		}
	default:
		d.errorf(e.val, e.field, "must be a duration like 5s, not %s", typeName(e.val))
		return 0, false
	}
	if dur <= 0 {
		d.errorf(e.val, e.field, "must be positive")
		return 0, false
	}
	return dur, true
}
