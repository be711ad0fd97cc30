package search

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/blevesearch/bleve/v2/search/query"
)

// This file implements query_string: the Lucene query syntax Elasticsearch
// accepts in a search box, parsed into a small tree and translated field
// by field with the mapping.
//
//	query   = clause { [AND | OR | && | ||] clause }
//	clause  = [+ | - | ! | NOT] [field ":"] atom ["^" boost]
//	atom    = "(" query ")" | '"' phrase '"' | range | term ["~" [n]]
//	range   = ("[" | "{") low TO high ("]" | "}") | (">" | ">=" | "<" | "<=") term
//
// Terms with * or ? are wildcards; _exists_:field asks for a field.

type occur int

const (
	occurShould occur = iota
	occurMust
	occurMustNot
)

type qsNode struct {
	field    string
	term     string // a term (or wildcard pattern)
	phrase   bool
	group    []qsClause
	isGroup  bool
	fuzzy    int // -1: none; 0 auto; else the distance
	boost    float64
	isRange  bool
	lo, hi   string
	loI, hiI bool
}

type qsClause struct {
	occur occur
	node  *qsNode
}

type qsParser struct {
	in    []rune
	pos   int
	depth int
	and   bool // default operator AND
}

const maxQueryDepth = 32

func parseQueryString(s string, defaultAnd bool) ([]qsClause, error) {
	p := &qsParser{in: []rune(s), and: defaultAnd}
	clauses, err := p.query()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.in) {
		return nil, fmt.Errorf("unexpected %q at position %d", p.in[p.pos], p.pos)
	}
	return clauses, nil
}

func (p *qsParser) skipSpace() {
	for p.pos < len(p.in) && unicode.IsSpace(p.in[p.pos]) {
		p.pos++
	}
}

func (p *qsParser) peekWord(w string) bool {
	r := []rune(w)
	if p.pos+len(r) > len(p.in) || string(p.in[p.pos:p.pos+len(r)]) != w {
		return false
	}
	end := p.pos + len(r)
	return end == len(p.in) || unicode.IsSpace(p.in[end]) || p.in[end] == '(' || p.in[end] == ')'
}

// query reads clauses up to the end or a closing parenthesis, applying
// Lucene's rules for AND and OR between them.
func (p *qsParser) query() ([]qsClause, error) {
	var out []qsClause
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] == ')' {
			return out, nil
		}
		conj, width := "", 0
		switch {
		case p.peekWord("AND"):
			conj, width = "AND", 3
		case p.peekWord("&&"):
			conj, width = "AND", 2
		case p.peekWord("OR"), p.peekWord("||"):
			conj, width = "OR", 2
		}
		if conj != "" {
			if len(out) == 0 {
				return nil, fmt.Errorf("%s at the start", conj)
			}
			p.pos += width
			p.skipSpace()
		}
		c, err := p.clause()
		if err != nil {
			return nil, err
		}
		// Lucene's addClause: AND makes the previous clause required, OR
		// (under default AND) makes it optional.
		if len(out) > 0 {
			prev := &out[len(out)-1]
			if conj == "AND" && prev.occur == occurShould {
				prev.occur = occurMust
			} else if conj == "OR" && p.and && prev.occur == occurMust {
				prev.occur = occurShould
			}
		}
		if c.occur == -1 {
			switch {
			case conj == "AND" || conj == "" && p.and:
				c.occur = occurMust
			default:
				c.occur = occurShould
			}
		}
		out = append(out, c)
	}
}

func (p *qsParser) clause() (qsClause, error) {
	c := qsClause{occur: -1}
	p.skipSpace()
	if p.pos >= len(p.in) {
		return c, fmt.Errorf("missing a term at the end")
	}
	switch {
	case p.in[p.pos] == '+':
		c.occur = occurMust
		p.pos++
	case p.in[p.pos] == '-' || p.in[p.pos] == '!':
		c.occur = occurMustNot
		p.pos++
	case p.peekWord("NOT"):
		c.occur = occurMustNot
		p.pos += 3
		p.skipSpace()
	}
	n, err := p.atomWithField()
	if err != nil {
		return c, err
	}
	c.node = n
	return c, nil
}

func (p *qsParser) atomWithField() (*qsNode, error) {
	start := p.pos
	field := ""
	if w, ok := p.word(); ok && p.pos < len(p.in) && p.in[p.pos] == ':' && w != "" {
		field = w
		p.pos++
	} else {
		p.pos = start
	}
	n, err := p.atom()
	if err != nil {
		return nil, err
	}
	if field != "" && n.field == "" {
		n.field = field
		if n.isGroup {
			setField(n.group, field)
		}
	}
	if p.pos < len(p.in) && p.in[p.pos] == '^' {
		p.pos++
		w, _ := p.word()
		b, err := strconv.ParseFloat(w, 64)
		if err != nil || b < 0 {
			return nil, fmt.Errorf("bad boost %q", w)
		}
		n.boost = b
	}
	return n, nil
}

func setField(cs []qsClause, field string) {
	for _, c := range cs {
		if c.node.field == "" {
			c.node.field = field
			if c.node.isGroup {
				setField(c.node.group, field)
			}
		}
	}
}

func (p *qsParser) atom() (*qsNode, error) {
	if p.pos >= len(p.in) {
		return nil, fmt.Errorf("missing a term at the end")
	}
	n := &qsNode{fuzzy: -1}
	switch r := p.in[p.pos]; {
	case r == '(':
		p.depth++
		if p.depth > maxQueryDepth {
			return nil, fmt.Errorf("more than %d nested groups", maxQueryDepth)
		}
		p.pos++
		g, err := p.query()
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.in) || p.in[p.pos] != ')' {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		p.depth--
		n.isGroup, n.group = true, g
	case r == '"':
		p.pos++
		var b strings.Builder
		for p.pos < len(p.in) && p.in[p.pos] != '"' {
			if p.in[p.pos] == '\\' && p.pos+1 < len(p.in) {
				p.pos++
			}
			b.WriteRune(p.in[p.pos])
			p.pos++
		}
		if p.pos >= len(p.in) {
			return nil, fmt.Errorf("missing closing quote")
		}
		p.pos++
		n.phrase, n.term = true, b.String()
		if p.pos < len(p.in) && p.in[p.pos] == '~' {
			p.pos++
			p.word()
			return nil, fmt.Errorf("%w", unsupported("phrase slop (\"...\"~N) in query_string"))
		}
	case r == '[' || r == '{':
		p.pos++
		n.isRange, n.loI = true, r == '['
		p.skipSpace()
		n.lo, _ = p.word()
		p.skipSpace()
		if !p.peekWord("TO") {
			return nil, fmt.Errorf("range without TO")
		}
		p.pos += 2
		p.skipSpace()
		n.hi, _ = p.word()
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ']' && p.in[p.pos] != '}' {
			return nil, fmt.Errorf("range without ] or }")
		}
		n.hiI = p.in[p.pos] == ']'
		p.pos++
	case r == '>' || r == '<':
		p.pos++
		inc := p.pos < len(p.in) && p.in[p.pos] == '='
		if inc {
			p.pos++
		}
		w, ok := p.word()
		if !ok {
			return nil, fmt.Errorf("missing a value after %c", r)
		}
		n.isRange = true
		if r == '>' {
			n.lo, n.loI, n.hi = w, inc, "*"
		} else {
			n.hi, n.hiI, n.lo = w, inc, "*"
		}
	default:
		w, ok := p.word()
		if !ok {
			return nil, fmt.Errorf("unexpected %q at position %d", r, p.pos)
		}
		n.term = w
		if p.pos < len(p.in) && p.in[p.pos] == '~' {
			p.pos++
			n.fuzzy = 0
			if d, ok := p.word(); ok {
				f, err := strconv.ParseFloat(d, 64)
				if err != nil || f < 0 || f > 2 {
					return nil, fmt.Errorf("bad fuzziness %q", d)
				}
				n.fuzzy = int(f)
				if n.fuzzy == 0 {
					n.fuzzy = -1
				}
			}
		}
	}
	return n, nil
}

// word reads a bare term: anything up to a space or a special character,
// with backslash escapes.
func (p *qsParser) word() (string, bool) {
	var b strings.Builder
	for p.pos < len(p.in) {
		r := p.in[p.pos]
		if r == '\\' && p.pos+1 < len(p.in) {
			b.WriteRune(p.in[p.pos+1])
			p.pos += 2
			continue
		}
		if unicode.IsSpace(r) || strings.ContainsRune(`()[]{}"^~:<>`, r) || (r == '!' || r == '+') && b.Len() == 0 {
			break
		}
		b.WriteRune(r)
		p.pos++
	}
	return b.String(), b.Len() > 0
}

// queryString translates {"query_string": {...}}.
func (t *translator) queryString(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, parsingError("[query_string] query malformed, no start_object after query name")
	}
	text, ok := obj["query"].(string)
	if !ok {
		return nil, parsingError("[query_string] requires a [query] string")
	}
	var patterns []string
	andOp := false
	for k, v := range obj {
		var err error
		switch k {
		case "query", "boost", "_name", "analyze_wildcard", "lenient", "allow_leading_wildcard", "auto_generate_synonyms_phrase_query", "max_determinized_states", "escape", "fuzzy_max_expansions", "fuzzy_prefix_length":
		case "default_field":
			patterns, err = stringList(v, k)
		case "fields":
			patterns, err = stringList(v, k)
		case "default_operator":
			andOp, err = defaultOperatorAND(v, "query_string")
		default:
			err = unsupported("[%s] in query_string", k)
		}
		if err != nil {
			return nil, err
		}
	}
	clauses, err := parseQueryString(text, andOp)
	if err != nil {
		if e := (*Error)(nil); errors.As(err, &e) {
			return nil, e
		}
		return nil, badRequest("query_shard_exception", "Failed to parse query [%s]: %v", text, err)
	}
	defaults, err := t.fields(patterns)
	if err != nil {
		return nil, err
	}
	q, err := t.qsClauses(clauses, defaults, andOp)
	if err != nil {
		return nil, err
	}
	return boost(q, obj)
}

// defaultOperatorAND reads a query's default_operator: true for AND,
// false for OR.
func defaultOperatorAND(v any, in string) (bool, error) {
	switch strings.ToUpper(fmt.Sprint(v)) {
	case "AND":
		return true, nil
	case "OR":
		return false, nil
	}
	return false, parsingError("[%s] default_operator must be AND or OR, got [%v]", in, v)
}

func (t *translator) qsClauses(cs []qsClause, defaults map[string]float64, andOp bool) (query.Query, error) {
	var must, should, not []query.Query
	for _, c := range cs {
		q, err := t.qsNode(c.node, defaults, andOp)
		if err != nil {
			return nil, err
		}
		switch c.occur {
		case occurMust:
			must = append(must, q)
		case occurMustNot:
			not = append(not, q)
		default:
			should = append(should, q)
		}
	}
	if len(must)+len(should)+len(not) == 0 {
		return query.NewMatchNoneQuery(), nil
	}
	b := query.NewBooleanQuery(must, should, not)
	if len(should) > 0 && len(must) == 0 {
		b.SetMinShould(1)
	}
	return b, nil
}

func (t *translator) qsNode(n *qsNode, defaults map[string]float64, andOp bool) (query.Query, error) {
	var q query.Query
	var err error
	if n.isGroup {
		d := defaults
		if n.field != "" {
			if d, err = t.fields([]string{n.field}); err != nil {
				return nil, err
			}
		}
		q, err = t.qsClauses(n.group, d, andOp)
	} else if n.field == "_exists_" {
		q, err = t.exists(map[string]any{"field": n.term})
	} else {
		fields := defaults
		lenient := true
		if n.field != "" {
			if fields, err = t.fields([]string{n.field}); err != nil {
				return nil, err
			}
			lenient = strings.Contains(n.field, "*")
		}
		var parts []query.Query
		for _, f := range slices.Sorted(maps.Keys(fields)) {
			fq, err := t.qsLeaf(n, f, andOp, lenient)
			if err != nil {
				return nil, err
			}
			if bq, ok := fq.(query.BoostableQuery); ok && fields[f] != 1 {
				bq.SetBoost(fields[f])
			}
			parts = append(parts, fq)
		}
		switch len(parts) {
		case 0:
			q = query.NewMatchNoneQuery()
		case 1:
			q = parts[0]
		default:
			q = query.NewDisjunctionQuery(parts)
		}
	}
	if err != nil {
		return nil, err
	}
	if n.boost != 0 {
		if bq, ok := q.(query.BoostableQuery); ok {
			bq.SetBoost(n.boost)
		}
	}
	return q, nil
}

// qsLeaf is one term, phrase or range of a query string on one field.
func (t *translator) qsLeaf(n *qsNode, field string, andOp, lenient bool) (query.Query, error) {
	p := t.m.Mapping.field(field)
	if p == nil {
		return query.NewMatchNoneQuery(), nil
	}
	text := p.kind() == kindText
	switch {
	case n.isRange:
		r := map[string]any{}
		if n.lo != "*" && n.lo != "" {
			r[map[bool]string{true: "gte", false: "gt"}[n.loI]] = n.lo
		}
		if n.hi != "*" && n.hi != "" {
			r[map[bool]string{true: "lte", false: "lt"}[n.hiI]] = n.hi
		}
		q, err := t.rangeQuery(map[string]any{field: r})
		if err != nil && lenient {
			return query.NewMatchNoneQuery(), nil
		}
		return q, err
	case n.phrase:
		return t.matchPhrase(map[string]any{field: n.term})
	case strings.ContainsAny(n.term, "*?"):
		term := n.term
		if text {
			term = strings.ToLower(term)
		}
		if term == "*" {
			return t.exists(map[string]any{"field": field})
		}
		q := query.NewWildcardQuery(term)
		q.SetField(field)
		return q, nil
	case n.fuzzy >= 0:
		term := n.term
		if text {
			term = strings.ToLower(term)
		}
		var f any = "AUTO"
		if n.fuzzy > 0 {
			f = n.fuzzy
		}
		return t.fuzzyQuery(field, term, f, nil)
	}
	opts := map[string]any{"lenient": lenient}
	if andOp {
		opts["operator"] = "and"
	}
	return t.matchField(field, n.term, opts)
}
