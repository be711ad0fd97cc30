package search

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// maxResultWindow is Elasticsearch's index.max_result_window default.
const maxResultWindow = 10000

// searchRequest is an Elasticsearch search, parsed.
type searchRequest struct {
	query       query.Query
	from, size  int
	sort        search.SortOrder
	sortKinds   []kind // per sort entry; kindObject for _score and _doc
	byScore     bool   // the sort includes _score (or there is none)
	trackScores bool
	highlight   *highlightRequest
	aggs        []*agg
	source      sourceFilter
	totalCap    int // track_total_hits: -1 exact, 0 none, else the cap
	totalAsInt  bool
	// hitsQuery is the query the hits must match when it differs from
	// query, which the aggregations see (post_filter)
	hitsQuery query.Query
	// searchAfter are the sort values to start after, as bleve reads them
	searchAfter []string
}

// parseSearch reads a search body and URL parameters (q, from, size, sort,
// _source, track_total_hits, rest_total_hits_as_int).
func (ix *Index) parseSearch(ctx context.Context, body []byte, params url.Values, m *meta) (*searchRequest, error) {
	t := &translator{m: m, now: time.Now()}
	r := &searchRequest{size: 10, totalCap: maxResultWindow, source: sourceFilter{all: true}}
	var in map[string]any
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &in); err != nil {
			return nil, err
		}
		if in == nil {
			return nil, parsingError("the search body must be a JSON object")
		}
	}
	var err error
	if qv, ok := in["query"]; ok {
		if r.query, err = t.translate(qv); err != nil {
			return nil, err
		}
	} else if q := params.Get("q"); q != "" {
		qs := map[string]any{"query": q}
		if df := params.Get("df"); df != "" {
			qs["default_field"] = df
		}
		if op := params.Get("default_operator"); op != "" {
			qs["default_operator"] = op
		}
		if r.query, err = t.queryString(qs); err != nil {
			return nil, err
		}
	} else {
		r.query = query.NewMatchAllQuery()
	}
	for k, v := range in {
		switch k {
		case "query":
		case "from", "size":
			n, err := number(v)
			if err != nil || n < 0 || n != float64(int(n)) {
				return nil, parsingError("[%s] must be a non-negative integer, got [%v]", k, v)
			}
			if k == "from" {
				r.from = int(n)
			} else {
				r.size = int(n)
			}
		case "sort":
			if err := r.parseSort(v, m); err != nil {
				return nil, err
			}
		case "highlight":
			if r.highlight, err = parseHighlight(v, m); err != nil {
				return nil, err
			}
		case "aggs", "aggregations":
			if r.aggs != nil {
				return nil, parsingError("found two aggregation definitions")
			}
			if r.aggs, err = t.parseAggs(v); err != nil {
				return nil, err
			}
			if r.aggs == nil {
				r.aggs = []*agg{}
			}
		case "_source":
			if r.source, err = parseSourceFilter(v); err != nil {
				return nil, err
			}
		case "track_total_hits":
			switch x := v.(type) {
			case bool:
				r.totalCap = map[bool]int{true: -1, false: 0}[x]
			default:
				n, err := number(v)
				if err != nil || n < 0 {
					return nil, parsingError("[track_total_hits] must be a boolean or a non-negative number")
				}
				r.totalCap = int(n)
			}
		case "track_scores":
			r.trackScores = v == true
		case "post_filter":
			main := in["query"]
			if main == nil {
				main = map[string]any{"match_all": map[string]any{}}
			}
			if _, err := t.translate(v); err != nil {
				return nil, err
			}
			if r.hitsQuery, err = t.translate(map[string]any{"bool": map[string]any{"must": []any{main}, "filter": []any{v}}}); err != nil {
				return nil, err
			}
		case "search_after":
			// read once the sort is known
		case "collapse", "suggest", "rescore", "pit", "knn", "runtime_mappings", "script_fields", "docvalue_fields", "fields", "indices_boost", "min_score", "stats", "terminate_after", "slice", "ext":
			return nil, unsupported("[%s] in search requests", k)
		case "timeout", "explain", "version", "seq_no_primary_term", "stored_fields", "profile", "min_score_unused":
			// accepted: pier answers within the request and keeps no other stored fields
		default:
			return nil, unsupported("[%s] in search requests", k)
		}
	}
	if err := r.urlParams(params, m); err != nil {
		return nil, err
	}
	if v, ok := in["search_after"]; ok {
		if err := r.parseSearchAfter(v); err != nil {
			return nil, err
		}
	}
	if r.from+r.size > maxResultWindow {
		return nil, illegalArgument("Result window is too large, from + size must be less than or equal to: [%d] but was [%d].", maxResultWindow, r.from+r.size)
	}
	if r.sort == nil {
		r.byScore = true
	}
	return r, nil
}

// parseSearchAfter reads search_after: the sort values of the last hit
// of the previous page, as the answer gave them.
func (r *searchRequest) parseSearchAfter(v any) error {
	list, ok := v.([]any)
	if !ok {
		return parsingError("[search_after] must be an array of sort values")
	}
	if r.sort == nil {
		return illegalArgument("[search_after] needs a [sort]: give one, with a unique field last as a tie-breaker")
	}
	if r.from > 0 {
		return illegalArgument("[from] parameter must be set to 0 when [search_after] is used")
	}
	if len(list) != len(r.sort) {
		return illegalArgument("search_after has %d value(s) but sort has %d.", len(list), len(r.sort))
	}
	r.searchAfter = make([]string, len(list))
	for i, x := range list {
		bad := func() error {
			return parsingError("[search_after] value [%v] does not fit the sort on [%v]", x, r.sort[i])
		}
		switch r.sortKinds[i] {
		case kindObject, kindNumber: // _score, numbers
			n, err := number(x)
			if err != nil {
				return bad()
			}
			r.searchAfter[i] = strconv.FormatFloat(n, 'g', -1, 64)
		case kindDate:
			n, err := number(x)
			if err != nil {
				t, err := parseDate(x, "")
				if err != nil {
					return bad()
				}
				n = float64(t.UnixMilli())
			}
			r.searchAfter[i] = time.UnixMilli(int64(n)).UTC().Format(time.RFC3339Nano)
		case kindBool:
			switch x {
			case true, 1.0, json.Number("1"), "true":
				r.searchAfter[i] = "T"
			case false, 0.0, json.Number("0"), "false":
				r.searchAfter[i] = "F"
			default:
				return bad()
			}
		default:
			if x == nil {
				return bad()
			}
			r.searchAfter[i] = scalarString(x)
		}
	}
	return nil
}

func (r *searchRequest) urlParams(params url.Values, m *meta) error {
	for k, vs := range params {
		v := vs[0]
		switch k {
		case "from", "size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return illegalArgument("[%s] must be a non-negative integer, got [%s]", k, v)
			}
			if k == "from" {
				r.from = n
			} else {
				r.size = n
			}
		case "sort":
			var list []any
			for _, s := range strings.Split(v, ",") {
				f, order, _ := strings.Cut(s, ":")
				if order == "" {
					list = append(list, f)
				} else {
					list = append(list, map[string]any{f: order})
				}
			}
			if err := r.parseSort(list, m); err != nil {
				return err
			}
		case "_source":
			r.source = sourceFilter{all: v != "false"}
			if v != "true" && v != "false" {
				r.source = sourceFilter{includes: strings.Split(v, ",")}
			}
		case "track_total_hits":
			if n, err := strconv.Atoi(v); err == nil {
				r.totalCap = n
			} else {
				r.totalCap = map[bool]int{true: -1, false: 0}[v != "false"]
			}
		case "rest_total_hits_as_int":
			r.totalAsInt = v == "true" || v == ""
			if r.totalAsInt {
				r.totalCap = -1
			}
		}
	}
	return nil
}

func (r *searchRequest) parseSort(v any, m *meta) error {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	r.sort, r.sortKinds, r.byScore = nil, nil, false
	for _, item := range list {
		var field string
		desc := false
		var opts map[string]any
		switch x := item.(type) {
		case string:
			field = x
		case map[string]any:
			if len(x) != 1 {
				return parsingError("[sort] each sort object must name one field")
			}
			for f, o := range x {
				field = f
				switch ov := o.(type) {
				case string:
					opts = map[string]any{"order": ov}
				case map[string]any:
					opts = ov
				default:
					return parsingError("[sort] options of [%s] must be a string or an object", f)
				}
			}
		default:
			return parsingError("[sort] entries must be strings or objects")
		}
		order := ""
		missingFirst := false
		for k, ov := range opts {
			switch k {
			case "order":
				order = strings.ToLower(fmt.Sprint(ov))
				if order != "asc" && order != "desc" {
					return parsingError("[sort] order must be asc or desc, got [%v]", ov)
				}
			case "missing":
				switch ov {
				case "_first":
					missingFirst = true
				case "_last":
				default:
					return unsupported("[sort] missing values other than _first and _last")
				}
			case "unmapped_type", "mode", "format", "numeric_type":
			default:
				return unsupported("[%s] in sort", k)
			}
		}
		switch field {
		case "_score":
			desc = order != "asc"
			r.sort = append(r.sort, &search.SortScore{Desc: desc})
			r.sortKinds = append(r.sortKinds, kindObject)
			r.byScore = true
			continue
		case "_doc", "_id":
			r.sort = append(r.sort, &search.SortDocID{Desc: order == "desc"})
			r.sortKinds = append(r.sortKinds, kindKeyword)
			continue
		}
		desc = order == "desc"
		p := m.Mapping.field(field)
		if p == nil {
			if _, ok := opts["unmapped_type"]; ok {
				continue
			}
			return badRequest("query_shard_exception", "No mapping found for [%s] in order to sort on", field)
		}
		sf := &search.SortField{Field: field, Desc: desc, Missing: search.SortFieldMissingLast}
		if missingFirst {
			sf.Missing = search.SortFieldMissingFirst
		}
		switch p.kind() {
		case kindText:
			return illegalArgument("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. (sort on [%s])", field)
		case kindObject:
			return illegalArgument("cannot sort on object field [%s]", field)
		case kindNumber:
			sf.Type = search.SortFieldAsNumber
		case kindDate:
			sf.Type = search.SortFieldAsDate
		default:
			sf.Type = search.SortFieldAsString
		}
		r.sort = append(r.sort, sf)
		r.sortKinds = append(r.sortKinds, p.kind())
	}
	return nil
}

// Count counts the documents matching a query ({"query": ...} or ?q=).
func (ix *Index) Count(ctx context.Context, body []byte, params url.Values) (uint64, error) {
	release, err := ix.use()
	if err != nil {
		return 0, err
	}
	defer release()
	var in map[string]any
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &in); err != nil {
			return 0, err
		}
	}
	for k := range in {
		if k != "query" {
			return 0, parsingError("request does not support [%s]", k)
		}
	}
	q := url.Values{}
	if v := params.Get("q"); v != "" {
		q.Set("q", v)
	}
	var qbody []byte
	if in != nil {
		qbody = mustJSON(in)
	}
	r, err := ix.parseSearch(ctx, qbody, q, ix.meta())
	if err != nil {
		return 0, err
	}
	res, err := ix.bi.SearchInContext(ctx, bleve.NewSearchRequestOptions(r.query, 0, 0, false))
	if err != nil {
		return 0, searchError(err)
	}
	return res.Total, nil
}

// sortValues are a hit's sort values the way Elasticsearch shows them:
// numbers as numbers, dates as epoch milliseconds.
func sortValues(h *search.DocumentMatch, kinds []kind) []any {
	out := make([]any, len(h.DecodedSort))
	for i, v := range h.DecodedSort {
		if i >= len(kinds) {
			out[i] = v
			continue
		}
		switch kinds[i] {
		case kindObject:
			out[i] = h.Score
		case kindNumber:
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				out[i] = f
			} else {
				out[i] = nil
			}
		case kindDate:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				out[i] = t.UnixMilli()
			} else {
				out[i] = nil
			}
		case kindBool:
			out[i] = map[string]int{"T": 1, "F": 0}[v]
		default:
			out[i] = v
		}
	}
	return out
}

// searchError reports a failure of bleve to run a translated query (a bad
// regular expression, a date out of range) as a client error.
func searchError(err error) error {
	if err == context.Canceled || err == context.DeadlineExceeded {
		return err
	}
	return &Error{Status: 400, Type: typeSearchPhase, Reason: "all shards failed: " + err.Error()}
}

// sourceFilter is the _source part of a search: all, none, or chosen paths.
type sourceFilter struct {
	all                bool
	includes, excludes []string
}

func parseSourceFilter(v any) (sourceFilter, error) {
	switch x := v.(type) {
	case bool:
		return sourceFilter{all: x}, nil
	case string, []any:
		inc, err := stringList(x, "_source")
		return sourceFilter{includes: inc}, err
	case map[string]any:
		var f sourceFilter
		var err error
		for k, v := range x {
			switch k {
			case "includes", "include":
				f.includes, err = stringList(v, "_source.includes")
			case "excludes", "exclude":
				f.excludes, err = stringList(v, "_source.excludes")
			default:
				err = parsingError("[_source] does not support [%s]", k)
			}
			if err != nil {
				return f, err
			}
		}
		f.all = f.includes == nil
		return f, nil
	}
	return sourceFilter{}, parsingError("[_source] must be a boolean, a string, an array or an object")
}

// apply filters a stored source; ok is false when no source is wanted.
func (f sourceFilter) apply(src []byte) (any, bool) {
	if f.all && f.excludes == nil {
		return json.RawMessage(src), true
	}
	if !f.all && f.includes == nil {
		return nil, false
	}
	obj, err := parseSource(src)
	if err != nil {
		return json.RawMessage(src), true
	}
	return filterObject("", obj, f), true
}

func filterObject(prefix string, obj map[string]any, f sourceFilter) map[string]any {
	out := map[string]any{}
	for k, v := range obj {
		path := prefix + k
		if matchesAny(f.excludes, path) {
			continue
		}
		included := f.includes == nil || matchesAny(f.includes, path)
		if sub, ok := v.(map[string]any); ok && !included {
			if inner := filterObject(path+".", sub, f); len(inner) > 0 {
				out[k] = inner
			}
			continue
		}
		if sub, ok := v.(map[string]any); ok && f.excludes != nil {
			v = filterObject(path+".", sub, sourceFilter{excludes: f.excludes})
		}
		if included {
			out[k] = v
		}
	}
	return out
}

func matchesAny(patterns []string, path string) bool {
	for _, p := range patterns {
		if wildcardMatch(p, path) || strings.HasPrefix(path, p+".") {
			return true
		}
	}
	return false
}
