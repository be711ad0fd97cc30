package search

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// Aggregations are answered with bleve facets: terms with a terms facet,
// range with numeric or date range facets, and date_histogram with one
// date range per bucket, between the first and last dates of the hits
// (found by two small sorted searches beforehand).

// agg is one parsed aggregation, ready to read its facet back.
type agg struct {
	name  string
	kind  string // terms, range, date_histogram
	field string
	p     *Property
	// ranges and histogram buckets, in the order of the answer
	ranges []aggRange
	// metric accumulates avg, sum, min, max and value_count; nil for the
	// other kinds
	metric *metric
}

type aggRange struct {
	key      string
	from, to *float64   // numbers
	start    time.Time  // dates; zero: open
	end      time.Time  // exclusive; zero: open
	bucket   *time.Time // date_histogram bucket start
	explicit bool       // the request gave the key
}

// metricAggs are Elasticsearch aggregations pier leaves out.
var metricAggs = []string{"stats", "extended_stats",
	"cardinality", "percentiles", "percentile_ranks", "top_hits", "histogram", "filter", "filters",
	"nested", "reverse_nested", "significant_terms", "composite", "date_range", "geo_distance",
	"missing", "global", "sampler", "auto_date_histogram", "multi_terms", "rare_terms", "ip_range",
	"variable_width_histogram", "scripted_metric", "weighted_avg", "median_absolute_deviation",
	"bucket_sort", "bucket_script", "bucket_selector", "avg_bucket", "sum_bucket", "max_bucket", "min_bucket", "cumulative_sum", "derivative"}

const maxBuckets = 10000

// minDate stands for an open start where bleve needs one.
var minDate = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)

// parseAggs reads "aggs" into facets on req.
func (t *translator) parseAggs(ctx context.Context, ix *Index, v any, q query.Query, req *bleve.SearchRequest) ([]*agg, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, parsingError("[aggs] must be an object")
	}
	var out []*agg
	for _, name := range sortedKeys(obj) {
		def, ok := obj[name].(map[string]any)
		if !ok {
			return nil, parsingError("aggregation [%s] must be an object", name)
		}
		a := &agg{name: name}
		var body map[string]any
		for k, v := range def {
			switch {
			case k == "aggs" || k == "aggregations":
				return nil, unsupported("sub-aggregations (in [%s])", name)
			case k == "meta":
			case k == "terms" || k == "range" || k == "date_histogram" || slices.Contains(metricKinds, k):
				if a.kind != "" {
					return nil, parsingError("found two aggregation type definitions in [%s]: [%s] and [%s]", name, a.kind, k)
				}
				a.kind = k
				if body, ok = v.(map[string]any); !ok {
					return nil, parsingError("[%s] aggregation [%s] must be an object", k, name)
				}
			case slices.Contains(metricAggs, k):
				return nil, unsupported("aggregation type [%s] (in [%s]; pier has terms, range, date_histogram, avg, sum, min, max and value_count)", k, name)
			default:
				return nil, parsingError("unknown aggregation type [%s] in [%s]", k, name)
			}
		}
		if a.kind == "" {
			return nil, parsingError("missing definition for aggregation [%s]", name)
		}
		field, _ := body["field"].(string)
		if field == "" {
			if body["script"] != nil {
				return nil, unsupported("scripts in aggregations")
			}
			return nil, parsingError("[%s] aggregation [%s] requires a [field]", a.kind, name)
		}
		a.field, a.p = field, t.m.Mapping.field(field)
		if a.p == nil {
			return nil, badRequest("query_shard_exception", "no mapping found for field [%s] (aggregation [%s])", field, name)
		}
		if a.p.kind() == kindText {
			return nil, illegalArgument("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. (field [%s])", field)
		}
		if slices.Contains(metricKinds, a.kind) {
			if err := a.checkMetric(body); err != nil {
				return nil, err
			}
			out = append(out, a)
			continue
		}
		var fr *bleve.FacetRequest
		var err error
		switch a.kind {
		case "terms":
			fr, err = a.terms(body)
		case "range":
			fr, err = a.rangeAgg(body, t.now)
		case "date_histogram":
			fr, err = a.histogram(ctx, ix, body, q)
		}
		if err != nil {
			return nil, err
		}
		req.AddFacet(name, fr)
		out = append(out, a)
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (a *agg) terms(body map[string]any) (*bleve.FacetRequest, error) {
	size := 10
	for k, v := range body {
		switch k {
		case "field", "shard_size", "show_term_doc_count_error", "execution_hint", "collect_mode":
		case "size":
			n, err := number(v)
			if err != nil || n < 0 {
				return nil, parsingError("[size] of [%s] must be a non-negative number", a.name)
			}
			size = int(n)
		case "min_doc_count":
			if n, _ := number(v); n > 1 {
				return nil, unsupported("[min_doc_count] above 1 in terms aggregations")
			}
		case "order":
			if !isCountDesc(v) {
				return nil, unsupported("terms aggregation [order] other than by descending _count")
			}
		default:
			return nil, unsupported("[%s] in terms aggregations", k)
		}
	}
	switch a.p.kind() {
	case kindKeyword, kindBool:
	default:
		return nil, unsupported("terms aggregations on %s fields (field [%s]; use a keyword field)", a.p.Type, a.field)
	}
	return bleve.NewFacetRequest(a.field, size), nil
}

func isCountDesc(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		if l, ok := v.([]any); ok && len(l) == 1 {
			return isCountDesc(l[0])
		}
		return false
	}
	return len(m) == 1 && m["_count"] == "desc"
}

func (a *agg) rangeAgg(body map[string]any, now time.Time) (*bleve.FacetRequest, error) {
	list, ok := body["ranges"].([]any)
	if !ok || len(list) == 0 {
		return nil, parsingError("[range] aggregation [%s] requires [ranges]", a.name)
	}
	for k := range body {
		switch k {
		case "field", "ranges", "format":
		case "keyed":
			return nil, unsupported("[keyed] range aggregations")
		default:
			return nil, unsupported("[%s] in range aggregations", k)
		}
	}
	if a.p.kind() != kindNumber && a.p.kind() != kindDate {
		return nil, illegalArgument("field [%s] of type [%s] is not supported for aggregation [range]", a.field, a.p.Type)
	}
	fr := bleve.NewFacetRequest(a.field, len(list))
	for i, item := range list {
		r, ok := item.(map[string]any)
		if !ok {
			return nil, parsingError("[ranges] of [%s] must hold objects", a.name)
		}
		var ar aggRange
		if k, ok := r["key"].(string); ok {
			ar.key, ar.explicit = k, true
		}
		for k, v := range r {
			if v == nil {
				continue
			}
			switch k {
			case "key":
			case "from", "to":
				if a.p.kind() == kindNumber {
					n, err := number(v)
					if err != nil {
						return nil, parsingError("[%s] of a range in [%s] must be a number", k, a.name)
					}
					if k == "from" {
						ar.from = &n
					} else {
						ar.to = &n
					}
					continue
				}
				d, err := dateMath(v, a.p.Format, now, false)
				if err != nil {
					return nil, err
				}
				if k == "from" {
					ar.start = d
				} else {
					ar.end = d
				}
			default:
				return nil, parsingError("[range] aggregation does not support [%s] in a range", k)
			}
		}
		name := strconv.Itoa(i)
		if a.p.kind() == kindNumber {
			if !ar.explicit {
				ar.key = numKey(ar.from) + "-" + numKey(ar.to)
			}
			fr.AddNumericRange(name, ar.from, ar.to)
		} else {
			if !ar.explicit {
				ar.key = dateKey(ar.start) + "-" + dateKey(ar.end)
			}
			if ar.start.IsZero() && ar.end.IsZero() {
				ar.start = minDate
			}
			fr.AddDateTimeRange(name, ar.start, ar.end)
		}
		a.ranges = append(a.ranges, ar)
	}
	return fr, nil
}

// numKey prints a range bound the way Elasticsearch (Java) does: 50.0.
func numKey(f *float64) string {
	if f == nil {
		return "*"
	}
	s := strconv.FormatFloat(*f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

func dateKey(t time.Time) string {
	if t.IsZero() {
		return "*"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// intervals Elasticsearch names for calendar_interval.
var calendarUnits = map[string]string{
	"minute": "m", "1m": "m", "hour": "h", "1h": "h", "day": "d", "1d": "d", "week": "w", "1w": "w",
	"month": "M", "1M": "M", "quarter": "q", "1q": "q", "year": "y", "1y": "y",
}

func (a *agg) histogram(ctx context.Context, ix *Index, body map[string]any, q query.Query) (*bleve.FacetRequest, error) {
	if a.p.kind() != kindDate {
		return nil, illegalArgument("field [%s] of type [%s] is not supported for aggregation [date_histogram]", a.field, a.p.Type)
	}
	var unit string
	var fixed time.Duration
	for k, v := range body {
		s := fmt.Sprint(v)
		switch k {
		case "field", "format", "keyed":
			if k == "keyed" && v == true {
				return nil, unsupported("[keyed] date histograms")
			}
		case "calendar_interval", "interval":
			u, ok := calendarUnits[s]
			if !ok {
				if k == "interval" {
					d, err := parseFixed(s)
					if err != nil {
						return nil, err
					}
					fixed = d
					continue
				}
				return nil, illegalArgument("The supplied interval [%s] could not be parsed as a calendar interval.", s)
			}
			unit = u
		case "fixed_interval":
			d, err := parseFixed(s)
			if err != nil {
				return nil, err
			}
			fixed = d
		case "min_doc_count":
			if n, _ := number(v); n != 0 {
				return nil, unsupported("[min_doc_count] other than 0 in date histograms")
			}
		default:
			return nil, unsupported("[%s] in date_histogram aggregations", k)
		}
	}
	if unit == "" && fixed == 0 {
		return nil, illegalArgument("Invalid interval specified, must be non-null and non-empty (give calendar_interval or fixed_interval in [%s])", a.name)
	}
	lo, hi, ok, err := ix.dateBounds(ctx, q, a.field)
	if err != nil {
		return nil, err
	}
	fr := bleve.NewFacetRequest(a.field, 1)
	if !ok {
		fr.AddDateTimeRange("empty", time.Unix(0, 0), time.Unix(1, 0))
		return fr, nil
	}
	start := lo
	if unit != "" {
		if unit == "q" {
			start = time.Date(lo.Year(), (lo.Month()-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC)
		} else {
			start, _ = roundDown(lo, unit[0])
		}
	} else {
		start = time.UnixMilli(floorDiv(lo.UnixMilli(), fixed.Milliseconds())).UTC()
	}
	for b := start; !b.After(hi); {
		var next time.Time
		switch unit {
		case "":
			next = b.Add(fixed)
		case "q":
			next = b.AddDate(0, 3, 0)
		default:
			next, _ = addUnit(b, unit[0], 1)
		}
		bucket := b
		a.ranges = append(a.ranges, aggRange{start: b, end: next, bucket: &bucket})
		if len(a.ranges) > maxBuckets {
			return nil, &Error{Status: 400, Type: "too_many_buckets_exception", Reason: fmt.Sprintf("Trying to create too many buckets. Must be less than or equal to: [%d] (aggregation [%s])", maxBuckets, a.name)}
		}
		b = next
	}
	fr = bleve.NewFacetRequest(a.field, len(a.ranges))
	for i, r := range a.ranges {
		fr.AddDateTimeRange(strconv.Itoa(i), r.start, r.end)
	}
	return fr, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q * b
}

// parseFixed reads fixed intervals: 30s, 10m, 12h, 7d, 500ms.
func parseFixed(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			if v, err := strconv.Atoi(n); err == nil && v > 0 {
				return time.Duration(v) * u.d, nil
			}
		}
	}
	return 0, illegalArgument("failed to parse setting [date_histogram.fixedInterval] with value [%s] as a time value", s)
}

// result turns the facet back into Elasticsearch's aggregation answer.
func (a *agg) result(fr *search.FacetResult) map[string]any {
	if a.isMetric() {
		return a.metric.result(a.kind)
	}
	switch a.kind {
	case "terms":
		buckets := []any{}
		if fr != nil && fr.Terms != nil {
			for _, tf := range fr.Terms.Terms() {
				b := map[string]any{"key": tf.Term, "doc_count": tf.Count}
				if a.p.kind() == kindBool {
					b["key"], b["key_as_string"] = map[bool]int{true: 1, false: 0}[tf.Term == "T"], strconv.FormatBool(tf.Term == "T")
				}
				buckets = append(buckets, b)
			}
		}
		other := 0
		if fr != nil {
			other = fr.Other
		}
		return map[string]any{"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets}
	}
	counts := map[string]int{}
	if fr != nil {
		for _, nr := range fr.NumericRanges {
			counts[nr.Name] = nr.Count
		}
		for _, dr := range fr.DateRanges {
			counts[dr.Name] = dr.Count
		}
	}
	buckets := []any{}
	for i, r := range a.ranges {
		n := counts[strconv.Itoa(i)]
		if r.bucket != nil {
			buckets = append(buckets, map[string]any{"key_as_string": dateKey(*r.bucket), "key": r.bucket.UnixMilli(), "doc_count": n})
			continue
		}
		b := map[string]any{"key": r.key, "doc_count": n}
		if r.from != nil {
			b["from"] = *r.from
		}
		if r.to != nil {
			b["to"] = *r.to
		}
		if !r.start.IsZero() && !r.start.Equal(minDate) {
			b["from"], b["from_as_string"] = r.start.UnixMilli(), dateKey(r.start)
		}
		if !r.end.IsZero() {
			b["to"], b["to_as_string"] = r.end.UnixMilli(), dateKey(r.end)
		}
		buckets = append(buckets, b)
	}
	return map[string]any{"buckets": buckets}
}
