package search

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2/search/query"
)

// translator turns Elasticsearch query DSL into bleve queries, using the
// index's mapping to pick, field by field, how to search it: analysed
// text, exact keywords, numbers, dates or booleans.
type translator struct {
	m   *meta
	now time.Time // "now" in date math
}

// queryFunc translates the body of one kind of query ({"match": BODY}).
type queryFunc func(t *translator, body any) (query.Query, error)

// queries is the verb table of the query DSL pier supports.
var queries map[string]queryFunc

func init() {
	queries = map[string]queryFunc{
		"match_all":           (*translator).matchAll,
		"match_none":          func(*translator, any) (query.Query, error) { return query.NewMatchNoneQuery(), nil },
		"match":               (*translator).match,
		"match_phrase":        (*translator).matchPhrase,
		"multi_match":         (*translator).multiMatch,
		"term":                (*translator).term,
		"terms":               (*translator).terms,
		"range":               (*translator).rangeQuery,
		"bool":                (*translator).boolQuery,
		"query_string":        (*translator).queryString,
		"simple_query_string": (*translator).simpleQueryString,
		"fuzzy":               (*translator).fuzzy,
		"prefix":              (*translator).prefix,
		"wildcard":            (*translator).wildcard,
		"regexp":              (*translator).regexp,
		"exists":              (*translator).exists,
		"ids":                 (*translator).ids,
		"constant_score":      (*translator).constantScore,
		"dis_max":             (*translator).disMax,
	}
}

// knownQueries are Elasticsearch queries pier does not implement; they get
// an "unsupported" error rather than "unknown query".
var knownQueries = []string{"nested", "has_child", "has_parent", "parent_id", "geo_bounding_box",
	"geo_distance", "geo_polygon", "geo_shape", "shape", "script", "script_score", "function_score",
	"more_like_this", "span_term", "span_near", "span_or", "span_not", "span_first", "span_multi",
	"span_containing", "span_within", "field_masking_span", "intervals", "percolate", "rank_feature",
	"distance_feature", "pinned", "wrapper", "combined_fields",
	"match_phrase_prefix", "match_bool_prefix", "boosting", "terms_set", "knn", "sparse_vector",
	"semantic", "type"}

// translate translates one query object: {"<kind>": body}.
func (t *translator) translate(v any) (query.Query, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, parsingError("a query must be an object, got %s", jsonKind(v))
	}
	if len(obj) != 1 {
		if len(obj) == 0 {
			return nil, parsingError("query malformed, empty clause found")
		}
		keys := slices.Sorted(maps.Keys(obj))
		return nil, parsingError("[%s] malformed query, expected [END_OBJECT] but found [FIELD_NAME] (one query per object; combine several with bool)", keys[0])
	}
	for kind, body := range obj {
		if f := queries[kind]; f != nil {
			return f(t, body)
		}
		if slices.Contains(knownQueries, kind) {
			return nil, unsupported("query [%s]", kind)
		}
		return nil, parsingError("unknown query [%s]", kind)
	}
	panic("unreachable")
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// params reads the usual shape of field-level queries, {"field": value} or
// {"field": {"<main>": value, opts...}}, returning the field, the main
// value and the options. Options not in allowed are errors.
func params(kind string, body any, main string, allowed ...string) (field string, value any, opts map[string]any, err error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return "", nil, nil, parsingError("[%s] query malformed, no start_object after query name", kind)
	}
	opts = map[string]any{}
	for k, v := range obj {
		if k == "boost" || k == "_name" {
			opts[k] = v
			continue
		}
		if field != "" {
			return "", nil, nil, parsingError("[%s] query doesn't support multiple fields, found [%s] and [%s]", kind, field, k)
		}
		field = k
		if inner, ok := v.(map[string]any); ok {
			for ik, iv := range inner {
				switch {
				case ik == main:
					value = iv
				case ik == "boost" || ik == "_name" || slices.Contains(allowed, ik):
					opts[ik] = iv
				default:
					return "", nil, nil, parsingError("[%s] query does not support [%s]", kind, ik)
				}
			}
			if value == nil {
				return "", nil, nil, parsingError("[%s] query on field [%s] has no [%s]", kind, field, main)
			}
		} else {
			value = v
		}
	}
	if field == "" {
		return "", nil, nil, parsingError("[%s] query requires a field", kind)
	}
	return field, value, opts, nil
}

func boost(q query.Query, opts map[string]any) (query.Query, error) {
	b, ok := opts["boost"]
	if !ok {
		return q, nil
	}
	f, err := number(b)
	if err != nil || f < 0 {
		return nil, parsingError("[boost] must be a non-negative number")
	}
	if bq, ok := q.(query.BoostableQuery); ok {
		bq.SetBoost(f)
	}
	return q, nil
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Float64()
	case float64:
		return x, nil
	case string:
		return strconv.ParseFloat(x, 64)
	}
	return 0, fmt.Errorf("not a number")
}

func (t *translator) matchAll(body any) (query.Query, error) {
	opts, _ := body.(map[string]any)
	return boost(query.NewMatchAllQuery(), opts)
}

// fuzziness reads Elasticsearch fuzziness: "AUTO" (or "AUTO:3,6"), 0, 1, 2.
func fuzziness(v any) (n int, auto bool, err error) {
	s := strings.ToUpper(fmt.Sprint(v))
	if strings.HasPrefix(s, "AUTO") {
		return 0, true, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 2 || f != math.Trunc(f) {
		return 0, false, parsingError("[fuzziness] must be AUTO, 0, 1 or 2, got [%v]", v)
	}
	return int(f), false, nil
}

func (t *translator) match(body any) (query.Query, error) {
	field, value, opts, err := params("match", body, "query", "operator", "fuzziness", "prefix_length",
		"analyzer", "minimum_should_match", "lenient", "zero_terms_query", "max_expansions", "fuzzy_transpositions", "auto_generate_synonyms_phrase_query")
	if err != nil {
		return nil, err
	}
	q, err := t.matchField(field, value, opts)
	if err != nil {
		return nil, err
	}
	return boost(q, opts)
}

// matchField is a match query on one field, by the field's type.
func (t *translator) matchField(field string, value any, opts map[string]any) (query.Query, error) {
	p := t.m.Mapping.field(field)
	if p == nil {
		return query.NewMatchNoneQuery(), nil
	}
	if p.kind() != kindText {
		if f, ok := opts["fuzziness"]; ok && p.kind() == kindKeyword {
			return t.fuzzyQuery(field, scalarString(value), f, opts["prefix_length"])
		}
		return t.termQuery(field, p, value, opts["lenient"] == true)
	}
	text := scalarString(value)
	q := query.NewMatchQuery(text)
	q.SetField(field)
	q.Analyzer = t.m.searchAnalyzer(p)
	if a, ok := opts["analyzer"].(string); ok {
		ba, ok := t.m.bleveAnalyzer(a)
		if !ok {
			return nil, illegalArgument("analyzer [%s] not found", a)
		}
		q.Analyzer = ba
	}
	switch op := strings.ToLower(fmt.Sprint(opts["operator"])); op {
	case "and":
		q.SetOperator(query.MatchQueryOperatorAnd)
	case "or", "<nil>":
	default:
		return nil, parsingError("[match] operator must be AND or OR, got [%s]", op)
	}
	if msm, ok := opts["minimum_should_match"]; ok {
		s := fmt.Sprint(msm)
		switch s {
		case "100%", "-0":
			q.SetOperator(query.MatchQueryOperatorAnd)
		case "1", "0", "0%":
		default:
			return nil, unsupported("minimum_should_match [%s] in a match query (pier takes 1 or 100%%; use operator)", s)
		}
	}
	if f, ok := opts["fuzziness"]; ok {
		n, auto, err := fuzziness(f)
		if err != nil {
			return nil, err
		}
		q.SetFuzziness(n)
		q.SetAutoFuzziness(auto)
	}
	if pl, ok := opts["prefix_length"]; ok {
		n, err := number(pl)
		if err != nil {
			return nil, parsingError("[prefix_length] must be a number")
		}
		q.SetPrefix(int(n))
	}
	return q, nil
}

func (t *translator) matchPhrase(body any) (query.Query, error) {
	field, value, opts, err := params("match_phrase", body, "query", "analyzer", "slop", "zero_terms_query")
	if err != nil {
		return nil, err
	}
	if s, ok := opts["slop"]; ok && fmt.Sprint(s) != "0" {
		return nil, unsupported("[slop] in match_phrase")
	}
	p := t.m.Mapping.field(field)
	if p == nil {
		return query.NewMatchNoneQuery(), nil
	}
	if p.kind() != kindText {
		q, err := t.termQuery(field, p, value, false)
		if err != nil {
			return nil, err
		}
		return boost(q, opts)
	}
	q := query.NewMatchPhraseQuery(scalarString(value))
	q.SetField(field)
	q.Analyzer = t.m.searchAnalyzer(p)
	if a, ok := opts["analyzer"].(string); ok {
		if q.Analyzer, ok = t.m.bleveAnalyzer(a); !ok {
			return nil, illegalArgument("analyzer [%s] not found", a)
		}
	}
	return boost(q, opts)
}

// fields expands a list of field patterns ("title^2", "body", "name.*")
// into mapped fields with their boosts; none means every text and
// keyword field, as Elasticsearch's default_field "*".
func (t *translator) fields(patterns []string) (map[string]float64, error) {
	out := map[string]float64{}
	if len(patterns) == 0 {
		patterns = []string{"*"}
	}
	for _, pat := range patterns {
		b := 1.0
		if name, bs, ok := strings.Cut(pat, "^"); ok {
			f, err := strconv.ParseFloat(bs, 64)
			if err != nil || f < 0 {
				return nil, parsingError("bad boost in field [%s]", pat)
			}
			pat, b = name, f
		}
		t.m.Mapping.leaves(func(path string, p *Property) {
			if !wildcardMatch(pat, path) || !p.indexed() {
				return
			}
			if pat != path && p.kind() != kindText && p.kind() != kindKeyword {
				return // wildcards only reach fields that take text, as in Elasticsearch
			}
			out[path] = b
		})
	}
	return out, nil
}

func stringList(v any, what string) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, parsingError("[%s] must hold strings", what)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, parsingError("[%s] must be a string or an array of strings", what)
}

func (t *translator) multiMatch(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, parsingError("[multi_match] query malformed, no start_object after query name")
	}
	opts := map[string]any{}
	var text any
	var patterns []string
	kind := "best_fields"
	for k, v := range obj {
		var err error
		switch k {
		case "query":
			text = v
		case "fields":
			patterns, err = stringList(v, "fields")
		case "type":
			kind = fmt.Sprint(v)
		case "operator", "fuzziness", "prefix_length", "analyzer", "minimum_should_match", "lenient", "boost", "_name", "zero_terms_query", "tie_breaker", "max_expansions":
			opts[k] = v
		default:
			err = parsingError("[multi_match] query does not support [%s]", k)
		}
		if err != nil {
			return nil, err
		}
	}
	if text == nil {
		return nil, parsingError("[multi_match] requires [query]")
	}
	fields, err := t.fields(patterns)
	if err != nil {
		return nil, err
	}
	var parts []query.Query
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		var q query.Query
		switch kind {
		case "best_fields", "most_fields", "cross_fields":
			fo := maps.Clone(opts)
			delete(fo, "boost")
			q, err = t.matchField(f, text, fo)
		case "phrase":
			q, err = t.matchPhrase(map[string]any{f: map[string]any{"query": text}})
		default:
			return nil, unsupported("multi_match type [%s]", kind)
		}
		if err != nil {
			return nil, err
		}
		if bq, ok := q.(query.BoostableQuery); ok && fields[f] != 1 {
			bq.SetBoost(fields[f])
		}
		parts = append(parts, q)
	}
	if len(parts) == 0 {
		return query.NewMatchNoneQuery(), nil
	}
	return boost(query.NewDisjunctionQuery(parts), opts)
}

// termQuery is an exact-value query on a field of any type.
func (t *translator) termQuery(field string, p *Property, value any, lenient bool) (query.Query, error) {
	if field == "_id" {
		return query.NewDocIDQuery([]string{scalarString(value)}), nil
	}
	if p == nil {
		return query.NewMatchNoneQuery(), nil
	}
	switch p.kind() {
	case kindText, kindKeyword:
		if _, ok := value.(map[string]any); ok {
			return nil, parsingError("[term] value of [%s] must be a string, number or boolean", field)
		}
		q := query.NewTermQuery(scalarString(value))
		q.SetField(field)
		return q, nil
	case kindNumber:
		n, err := toNumber(value)
		if err != nil {
			if lenient {
				return query.NewMatchNoneQuery(), nil
			}
			return nil, badRequest("query_shard_exception", "failed to create query: [%v] is not a number (field [%s])", value, field)
		}
		inc := true
		q := query.NewNumericRangeInclusiveQuery(&n, &n, &inc, &inc)
		q.SetField(field)
		return q, nil
	case kindDate:
		d, err := parseDate(value, p.Format)
		if err != nil {
			return nil, badRequest("query_shard_exception", "failed to create query: [%v] is not a date (field [%s])", value, field)
		}
		inc := true
		q := query.NewDateRangeInclusiveQuery(d, d, &inc, &inc)
		q.SetField(field)
		return q, nil
	case kindBool:
		b, err := toBool(value)
		if err != nil {
			return nil, badRequest("query_shard_exception", "failed to create query: [%v] is not a boolean (field [%s])", value, field)
		}
		q := query.NewBoolFieldQuery(b)
		q.SetField(field)
		return q, nil
	}
	return nil, badRequest("query_shard_exception", "field [%s] is an object; query one of its fields", field)
}

func (t *translator) term(body any) (query.Query, error) {
	field, value, opts, err := params("term", body, "value", "case_insensitive")
	if err != nil {
		return nil, err
	}
	if opts["case_insensitive"] == true {
		return nil, unsupported("[case_insensitive] in term queries")
	}
	q, err := t.termQuery(field, t.m.Mapping.field(field), value, false)
	if err != nil {
		return nil, err
	}
	return boost(q, opts)
}

func (t *translator) terms(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, parsingError("[terms] query malformed, no start_object after query name")
	}
	opts := map[string]any{}
	var field string
	var values []any
	for k, v := range obj {
		if k == "boost" || k == "_name" {
			opts[k] = v
			continue
		}
		arr, ok := v.([]any)
		if !ok {
			if _, lookup := v.(map[string]any); lookup {
				return nil, unsupported("terms lookup")
			}
			return nil, parsingError("[terms] query requires an array of values for field [%s]", k)
		}
		if field != "" {
			return nil, parsingError("[terms] query does not support multiple fields")
		}
		field, values = k, arr
	}
	if field == "" {
		return nil, parsingError("[terms] query requires a field")
	}
	p := t.m.Mapping.field(field)
	if field == "_id" {
		ids := make([]string, len(values))
		for i, v := range values {
			ids[i] = scalarString(v)
		}
		return boost(query.NewDocIDQuery(ids), opts)
	}
	var parts []query.Query
	for _, v := range values {
		q, err := t.termQuery(field, p, v, false)
		if err != nil {
			return nil, err
		}
		parts = append(parts, q)
	}
	if len(parts) == 0 {
		return query.NewMatchNoneQuery(), nil
	}
	return boost(query.NewDisjunctionQuery(parts), opts)
}

func (t *translator) fuzzyQuery(field, value string, f, prefix any) (query.Query, error) {
	q := query.NewFuzzyQuery(value)
	q.SetField(field)
	if f != nil {
		n, auto, err := fuzziness(f)
		if err != nil {
			return nil, err
		}
		q.SetFuzziness(n)
		q.SetAutoFuzziness(auto)
	} else {
		q.SetAutoFuzziness(true)
	}
	if prefix != nil {
		n, err := number(prefix)
		if err != nil {
			return nil, parsingError("[prefix_length] must be a number")
		}
		q.SetPrefix(int(n))
	}
	return q, nil
}

func (t *translator) fuzzy(body any) (query.Query, error) {
	field, value, opts, err := params("fuzzy", body, "value", "fuzziness", "prefix_length", "max_expansions", "transpositions", "rewrite")
	if err != nil {
		return nil, err
	}
	q, err := t.fuzzyQuery(field, scalarString(value), opts["fuzziness"], opts["prefix_length"])
	if err != nil {
		return nil, err
	}
	return boost(q, opts)
}

func (t *translator) prefix(body any) (query.Query, error) {
	field, value, opts, err := params("prefix", body, "value", "rewrite", "case_insensitive")
	if err != nil {
		return nil, err
	}
	q := query.NewPrefixQuery(scalarString(value))
	q.SetField(field)
	return boost(q, opts)
}

func (t *translator) wildcard(body any) (query.Query, error) {
	field, value, opts, err := params("wildcard", body, "value", "rewrite", "case_insensitive")
	if err != nil {
		return nil, err
	}
	q := query.NewWildcardQuery(scalarString(value))
	q.SetField(field)
	return boost(q, opts)
}

func (t *translator) regexp(body any) (query.Query, error) {
	field, value, opts, err := params("regexp", body, "value", "flags", "max_determinized_states", "rewrite", "case_insensitive")
	if err != nil {
		return nil, err
	}
	q := query.NewRegexpQuery(scalarString(value))
	q.SetField(field)
	return boost(q, opts)
}

func (t *translator) exists(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	field, fok := obj["field"].(string)
	if !ok || !fok {
		return nil, parsingError("[exists] requires a [field] string")
	}
	q := query.NewTermQuery(field)
	q.SetField(fieldFieldNames)
	return boost(q, obj)
}

func (t *translator) ids(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, parsingError("[ids] query malformed")
	}
	ids, err := stringList(obj["values"], "values")
	if err != nil {
		return nil, err
	}
	return boost(query.NewDocIDQuery(ids), obj)
}

func (t *translator) constantScore(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	if !ok || obj["filter"] == nil {
		return nil, parsingError("[constant_score] requires a [filter]")
	}
	f, err := t.translate(obj["filter"])
	if err != nil {
		return nil, err
	}
	all, err := boost(query.NewMatchAllQuery(), obj)
	if err != nil {
		return nil, err
	}
	q := query.NewBooleanQuery([]query.Query{all}, nil, nil)
	q.AddFilter(f)
	return q, nil
}

// disMax is approximated by a disjunction: documents matching several
// clauses score higher than under Elasticsearch's max.
func (t *translator) disMax(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	list, lok := obj["queries"].([]any)
	if !ok || !lok {
		return nil, parsingError("[dis_max] requires a [queries] array")
	}
	var parts []query.Query
	for _, v := range list {
		q, err := t.translate(v)
		if err != nil {
			return nil, err
		}
		parts = append(parts, q)
	}
	return boost(query.NewDisjunctionQuery(parts), obj)
}

// clauses reads a bool clause: one query or an array of them.
func (t *translator) clauses(v any) ([]query.Query, error) {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	out := make([]query.Query, 0, len(list))
	for _, c := range list {
		q, err := t.translate(c)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

func (t *translator) boolQuery(body any) (query.Query, error) {
	obj, ok := body.(map[string]any)
	if !ok {
		return nil, parsingError("[bool] query malformed, no start_object after query name")
	}
	var must, should, mustNot, filter []query.Query
	var msm any
	for k, v := range obj {
		var err error
		switch k {
		case "must":
			must, err = t.clauses(v)
		case "should":
			should, err = t.clauses(v)
		case "must_not":
			mustNot, err = t.clauses(v)
		case "filter":
			filter, err = t.clauses(v)
		case "minimum_should_match":
			msm = v
		case "boost", "_name", "adjust_pure_negative":
		default:
			err = parsingError("[bool] query does not support [%s]", k)
		}
		if err != nil {
			return nil, err
		}
	}
	q := query.NewBooleanQuery(must, should, mustNot)
	if len(filter) == 1 {
		q.AddFilter(filter[0])
	} else if len(filter) > 1 {
		q.AddFilter(query.NewConjunctionQuery(filter))
	}
	if len(should) > 0 {
		min := 0
		if len(must) == 0 && len(filter) == 0 {
			min = 1 // Elasticsearch: with no must or filter, a should must match
		}
		if msm != nil {
			n, err := minimumShouldMatch(msm, len(should))
			if err != nil {
				return nil, err
			}
			min = n
		}
		q.SetMinShould(float64(min))
	}
	return boost(q, obj)
}

// minimumShouldMatch reads "2", "-1", "75%" or "-25%" against n clauses.
func minimumShouldMatch(v any, n int) (int, error) {
	s := strings.TrimSpace(fmt.Sprint(v))
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, parsingError("[minimum_should_match] must be a number or a percentage, got [%s]", s)
	}
	if strings.Contains(s, "<") {
		return 0, unsupported("conditional minimum_should_match [%s]", s)
	}
	var k int
	if pct {
		k = int(float64(n) * math.Abs(f) / 100)
	} else {
		k = int(math.Abs(f))
	}
	if f < 0 {
		k = n - k
	}
	return max(0, min(k, n)), nil
}
