package search

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/blevesearch/bleve/v2/search/query"
)

// simple_query_string is the query syntax meant for search boxes: words,
// "phrases", prefix*, fuzzy~N, + (and), | (or), - (not) and parentheses.
// Unlike query_string it never fails on its input: stray operators and
// unbalanced quotes or parentheses are read as well as can be. As in
// Elasticsearch (Lucene's SimpleQueryParser), operators apply left to
// right without precedence, words without an operator between them are
// joined by default_operator, and a negated term alone matches every
// document without it.
//
// The parsed query is rewritten into query DSL (multi_match, prefix, bool)
// and translated like any other, so each field is searched the way its
// mapping says.

func (t *translator) simpleQueryString(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, parsingError("[simple_query_string] query malformed, no start_object after query name")
	}
	text, ok := obj["query"].(string)
	if !ok {
		return nil, parsingError("[simple_query_string] requires a [query] string")
	}
	var patterns []string
	andOp := false
	fuzzyPrefix := any(nil)
	for k, v := range obj {
		var err error
		switch k {
		case "query", "boost", "_name", "lenient", "analyze_wildcard", "auto_generate_synonyms_phrase_query", "fuzzy_max_expansions", "fuzzy_transpositions":
		case "fields":
			patterns, err = stringList(v, k)
		case "fuzzy_prefix_length":
			fuzzyPrefix = v
		case "default_operator":
			andOp, err = defaultOperatorAND(v, "simple_query_string")
		case "flags":
			if s := strings.ToUpper(fmt.Sprint(v)); s != "ALL" && s != "" {
				err = unsupported("[flags] other than ALL in simple_query_string")
			}
		default:
			err = unsupported("[%s] in simple_query_string", k)
		}
		if err != nil {
			return nil, err
		}
	}
	fields, err := t.fields(patterns)
	if err != nil {
		return nil, err
	}
	var fieldList []any
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		if b := fields[f]; b != 1 {
			fieldList = append(fieldList, f+"^"+strconv.FormatFloat(b, 'f', -1, 64))
		} else {
			fieldList = append(fieldList, f)
		}
	}
	if len(fieldList) == 0 {
		return query.NewMatchNoneQuery(), nil
	}
	p := &sqsParser{in: []rune(text), andOp: andOp, fields: fieldList, fieldNames: slices.Sorted(maps.Keys(fields)), fuzzyPrefix: fuzzyPrefix,
		lower: func(field string) bool { f := t.m.Mapping.field(field); return f != nil && f.kind() == kindText }}
	dsl, err := p.parse(false)
	if err != nil {
		return nil, err
	}
	if dsl == nil {
		return query.NewMatchNoneQuery(), nil
	}
	q, err := t.translate(dsl)
	if err != nil {
		return nil, err
	}
	return boost(q, obj)
}

// sqsParser reads simple_query_string text into query DSL.
type sqsParser struct {
	in          []rune
	pos         int
	andOp       bool
	fields      []any    // with their boosts, for multi_match
	fieldNames  []string // for prefix queries
	fuzzyPrefix any
	// lower says whether a field's prefixes are lower-cased (text fields,
	// whose terms are; keywords are matched as they are)
	lower func(field string) bool
}

func (p *sqsParser) special(r rune) bool {
	return unicode.IsSpace(r) || strings.ContainsRune(`+|()"`, r)
}

// parse reads terms until the end, or a closing parenthesis when inGroup,
// folding them left to right. nil: no term at all.
func (p *sqsParser) parse(inGroup bool) (map[string]any, error) {
	var acc map[string]any
	op := byte(0) // the explicit operator before the next term: '+', '|' or none
	for p.pos < len(p.in) {
		r := p.in[p.pos]
		switch {
		case unicode.IsSpace(r):
			p.pos++
			continue
		case r == '+' || r == '|':
			op = byte(r)
			p.pos++
			continue
		case r == ')':
			p.pos++
			if inGroup {
				return acc, nil
			}
			continue // unbalanced: ignored
		}
		negate := false
		for p.pos < len(p.in) && p.in[p.pos] == '-' {
			negate = !negate
			p.pos++
		}
		term, err := p.term()
		if err != nil {
			return nil, err
		}
		if term == nil {
			continue
		}
		if negate {
			term = map[string]any{"bool": map[string]any{"must": []any{map[string]any{"match_all": map[string]any{}}}, "must_not": []any{term}}}
		}
		switch {
		case acc == nil:
			acc = term
		case op == '+' || (op == 0 && p.andOp):
			acc = map[string]any{"bool": map[string]any{"must": []any{acc, term}}}
		default:
			acc = map[string]any{"bool": map[string]any{"should": []any{acc, term}}}
		}
		op = 0
	}
	return acc, nil
}

// term reads one term: a group, a phrase or a word, with its suffix.
func (p *sqsParser) term() (map[string]any, error) {
	if p.pos >= len(p.in) {
		return nil, nil
	}
	switch p.in[p.pos] {
	case '(':
		p.pos++
		return p.parse(true)
	case '"':
		p.pos++
		start := p.pos
		for p.pos < len(p.in) && p.in[p.pos] != '"' {
			p.pos++
		}
		if p.pos == len(p.in) {
			// no closing quote: the quote is ignored and what follows read
			// as words, as Lucene does
			p.pos = start
			return nil, nil
		}
		phrase := string(p.in[start:p.pos])
		p.pos++ // closing quote
		if _, ok := p.suffix(); ok {
			return nil, unsupported("phrase slop (\"...\"~N) in simple_query_string")
		}
		if strings.TrimSpace(phrase) == "" {
			return nil, nil
		}
		return map[string]any{"multi_match": map[string]any{"query": phrase, "fields": p.fields, "type": "phrase", "lenient": true}}, nil
	}
	var b strings.Builder
	for p.pos < len(p.in) && !p.special(p.in[p.pos]) && p.in[p.pos] != '~' {
		if p.in[p.pos] == '\\' && p.pos+1 < len(p.in) {
			p.pos++
		}
		b.WriteRune(p.in[p.pos])
		p.pos++
	}
	word := b.String()
	fuzz, fuzzy := p.suffix()
	if word == "" {
		return nil, nil
	}
	if w, ok := strings.CutSuffix(word, "*"); ok && w != "" && !fuzzy {
		var should []any
		for _, f := range p.fieldNames {
			v := w
			if p.lower(f) {
				v = strings.ToLower(w)
			}
			should = append(should, map[string]any{"prefix": map[string]any{f: map[string]any{"value": v}}})
		}
		return map[string]any{"bool": map[string]any{"should": should}}, nil
	}
	mm := map[string]any{"query": word, "fields": p.fields, "lenient": true}
	if fuzzy {
		mm["fuzziness"] = fuzz
		if p.fuzzyPrefix != nil {
			mm["prefix_length"] = p.fuzzyPrefix
		}
	}
	return map[string]any{"multi_match": mm}, nil
}

// suffix reads "~N" (or "~", meaning the default edit distance, 2).
func (p *sqsParser) suffix() (string, bool) {
	if p.pos >= len(p.in) || p.in[p.pos] != '~' {
		return "", false
	}
	p.pos++
	start := p.pos
	for p.pos < len(p.in) && unicode.IsDigit(p.in[p.pos]) {
		p.pos++
	}
	n := string(p.in[start:p.pos])
	if n == "" {
		n = "2"
	}
	if v, _ := strconv.Atoi(n); v > 2 {
		n = "2" // Lucene caps edit distances at 2
	}
	return n, true
}
