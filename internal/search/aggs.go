package search

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Aggregations are computed from the doc values of the matching documents
// while the search collects its hits (see collect.go): each document's
// values are read once, whatever the number of aggregations, and go down
// the tree of aggregations (bucket aggregations with sub-aggregations,
// metrics at the leaves). With several indexes, every index adds to the
// same buckets, so the answer is that of one index holding them all.

// agg is one parsed aggregation.
type agg struct {
	name  string
	kind  string // terms, range, date_histogram, or a metric (metricKinds)
	field string
	p     *Property
	subs  []*agg

	// terms
	size        int
	minDocCount int
	orderBy     string // "_count", "_key" or the name of a metric sub-aggregation
	orderAsc    bool
	// range: the ranges, in the order of the answer
	ranges []aggRange
	// date_histogram: calendar unit ('M', 'q', ...) or fixed interval
	unit  byte
	fixed time.Duration
	// metric stats: which value of a stats sub-aggregation orders terms
	orderStat string
}

type aggRange struct {
	key      string
	from, to *float64 // numbers, and dates as epoch milliseconds
	explicit bool     // the request gave the key
}

// bucketKinds and metricKinds are the aggregations pier computes.
var (
	bucketKinds = []string{"terms", "range", "date_histogram"}
	metricKinds = []string{"avg", "sum", "min", "max", "value_count", "stats", "cardinality"}
)

// otherAggs are Elasticsearch aggregations pier leaves out.
var otherAggs = []string{"extended_stats", "percentiles", "percentile_ranks", "top_hits", "histogram",
	"filter", "filters", "nested", "reverse_nested", "significant_terms", "composite", "date_range",
	"geo_distance", "missing", "global", "sampler", "auto_date_histogram", "multi_terms", "rare_terms",
	"ip_range", "variable_width_histogram", "scripted_metric", "weighted_avg", "median_absolute_deviation",
	"bucket_sort", "bucket_script", "bucket_selector", "avg_bucket", "sum_bucket", "max_bucket",
	"min_bucket", "cumulative_sum", "derivative", "top_metrics", "boxplot", "string_stats", "t_test",
	"geo_bounds", "geo_centroid", "matrix_stats", "adjacency_matrix", "diversified_sampler", "significant_text"}

const maxBuckets = 10000

func (a *agg) isMetric() bool { return slices.Contains(metricKinds, a.kind) }

// parseAggs reads "aggs" (or a bucket's "aggs"): aggregations by name.
func (t *translator) parseAggs(v any) ([]*agg, error) {
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
		a, err := t.parseAgg(name, def)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (t *translator) parseAgg(name string, def map[string]any) (*agg, error) {
	a := &agg{name: name}
	var body map[string]any
	var subs any
	for _, k := range sortedKeys(def) {
		v := def[k]
		switch {
		case k == "aggs" || k == "aggregations":
			if subs != nil {
				return nil, parsingError("found two sub aggregation definitions under [%s]", name)
			}
			subs = v
		case k == "meta":
		case slices.Contains(bucketKinds, k) || slices.Contains(metricKinds, k):
			if a.kind != "" {
				return nil, parsingError("found two aggregation type definitions in [%s]: [%s] and [%s]", name, a.kind, k)
			}
			a.kind = k
			var ok bool
			if body, ok = v.(map[string]any); !ok {
				return nil, parsingError("[%s] aggregation [%s] must be an object", k, name)
			}
		case slices.Contains(otherAggs, k):
			return nil, unsupported("aggregation type [%s] (in [%s]; pier has terms, range, date_histogram, avg, sum, min, max, value_count, stats and cardinality)", k, name)
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
	// a field this index does not map is left unmapped (p nil): it has no
	// values here, and another index of the search may map it
	a.field, a.p = field, t.m.Mapping.field(field)
	switch {
	case a.p == nil:
	case a.p.kind() == kindText:
		return nil, illegalArgument("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. (field [%s])", field)
	case a.p.kind() == kindObject:
		return nil, illegalArgument("field [%s] is an object and cannot be aggregated (aggregation [%s])", field, name)
	case !a.p.indexed():
		return nil, illegalArgument("field [%s] is not indexed and cannot be aggregated (aggregation [%s])", field, name)
	}
	var err error
	switch a.kind {
	case "terms":
		err = a.parseTerms(body)
	case "range":
		err = a.parseRange(body, t.now)
	case "date_histogram":
		err = a.parseHistogram(body)
	default:
		err = a.parseMetric(body)
	}
	if err != nil {
		return nil, err
	}
	if subs != nil {
		if a.isMetric() {
			return nil, &Error{Status: 400, Type: "aggregation_initialization_exception",
				Reason: fmt.Sprintf("Aggregator [%s] of type [%s] cannot accept sub-aggregations", name, a.kind)}
		}
		if a.subs, err = t.parseAggs(subs); err != nil {
			return nil, err
		}
	}
	if a.kind == "terms" && a.orderBy != "_count" && a.orderBy != "_key" {
		if err := a.checkOrder(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// adoptMappings completes the aggregations of the first index of a
// search with the fields that only later indexes map (same request, so
// same trees), and fails if a field is mapped by none.
func adoptMappings(dst []*agg, others [][]*agg) error {
	for i, a := range dst {
		var subs [][]*agg
		for _, o := range others {
			if a.p == nil {
				a.p = o[i].p
			}
			subs = append(subs, o[i].subs)
		}
		if a.p == nil {
			return badRequest("query_shard_exception", "no mapping found for field [%s] (aggregation [%s])", a.field, a.name)
		}
		if err := adoptMappings(a.subs, subs); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (a *agg) parseTerms(body map[string]any) error {
	a.size, a.minDocCount, a.orderBy = 10, 1, "_count"
	for k, v := range body {
		switch k {
		case "field", "shard_size", "show_term_doc_count_error", "execution_hint", "collect_mode":
		case "size", "min_doc_count":
			n, err := number(v)
			if err != nil || n < 0 || n != math.Trunc(n) {
				return parsingError("[%s] of [%s] must be a non-negative integer", k, a.name)
			}
			if k == "size" {
				a.size = int(n)
			} else {
				a.minDocCount = int(n)
			}
		case "order":
			if err := a.parseOrder(v); err != nil {
				return err
			}
		default:
			return unsupported("[%s] in terms aggregations", k)
		}
	}
	return nil
}

// parseOrder reads a terms order: {"_count": "desc"}, {"_key": "asc"},
// {"<metric sub-aggregation>": "desc"} or {"<stats>.<value>": ...}; a
// list of one such object is also accepted.
func (a *agg) parseOrder(v any) error {
	if l, ok := v.([]any); ok {
		if len(l) != 1 {
			return unsupported("terms aggregation [order] on more than one criterion")
		}
		v = l[0]
	}
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return parsingError("[order] of [%s] must be an object with one key", a.name)
	}
	for k, dir := range m {
		switch dir {
		case "asc", "desc":
		default:
			return parsingError("[order] of [%s]: unknown direction [%v]", a.name, dir)
		}
		a.orderBy, a.orderAsc = k, dir == "asc"
		if k == "_term" {
			a.orderBy = "_key"
		}
	}
	return nil
}

// checkOrder checks that a terms order names a metric sub-aggregation.
func (a *agg) checkOrder() error {
	name, stat, _ := strings.Cut(a.orderBy, ".")
	for _, s := range a.subs {
		if s.name != name {
			continue
		}
		switch {
		case !s.isMetric():
			return illegalArgument("Buckets can only be sorted on a sub-aggregator path that is built out of zero or more single-bucket aggregations within the path and a final single-bucket or a metrics aggregation at the path end. [%s] is not one (in [%s])", name, a.name)
		case s.kind == "stats" && !slices.Contains([]string{"count", "min", "max", "avg", "sum"}, stat):
			return illegalArgument("Invalid aggregation order path [%s]: name a value of the stats aggregation (count, min, max, avg or sum)", a.orderBy)
		case s.kind != "stats" && stat != "" && stat != "value":
			return illegalArgument("Invalid aggregation order path [%s]", a.orderBy)
		}
		a.orderBy, a.orderStat = name, stat
		return nil
	}
	return illegalArgument("Invalid aggregation order path [%s]. The provided aggregation [%s] either does not exist, or is a pipeline aggregation and cannot be used to sort the buckets.", a.orderBy, name)
}

func (a *agg) parseRange(body map[string]any, now time.Time) error {
	list, ok := body["ranges"].([]any)
	if !ok || len(list) == 0 {
		return parsingError("[range] aggregation [%s] requires [ranges]", a.name)
	}
	for k := range body {
		switch k {
		case "field", "ranges", "format":
		case "keyed":
			return unsupported("[keyed] range aggregations")
		default:
			return unsupported("[%s] in range aggregations", k)
		}
	}
	if a.p != nil && a.p.kind() != kindNumber && a.p.kind() != kindDate {
		return illegalArgument("field [%s] of type [%s] is not supported for aggregation [range]", a.field, a.p.Type)
	}
	isDate := a.p != nil && a.p.kind() == kindDate
	for _, item := range list {
		r, ok := item.(map[string]any)
		if !ok {
			return parsingError("[ranges] of [%s] must hold objects", a.name)
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
				n, err := number(v)
				if !isDate && err != nil && a.p != nil {
					return parsingError("[%s] of a range in [%s] must be a number", k, a.name)
				}
				if isDate || err != nil {
					d, err := dateMath(v, a.p.Format, now, false)
					if err != nil {
						return err
					}
					n = float64(d.UnixMilli())
				}
				if k == "from" {
					ar.from = &n
				} else {
					ar.to = &n
				}
			default:
				return parsingError("[range] aggregation does not support [%s] in a range", k)
			}
		}
		if !ar.explicit {
			if isDate {
				ar.key = millisKey(ar.from) + "-" + millisKey(ar.to)
			} else {
				ar.key = numKey(ar.from) + "-" + numKey(ar.to)
			}
		}
		a.ranges = append(a.ranges, ar)
	}
	return nil
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

func millisKey(f *float64) string {
	if f == nil {
		return "*"
	}
	return dateKey(time.UnixMilli(int64(*f)))
}

func dateKey(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// intervals Elasticsearch names for calendar_interval.
var calendarUnits = map[string]byte{
	"minute": 'm', "1m": 'm', "hour": 'h', "1h": 'h', "day": 'd', "1d": 'd', "week": 'w', "1w": 'w',
	"month": 'M', "1M": 'M', "quarter": 'q', "1q": 'q', "year": 'y', "1y": 'y',
}

func (a *agg) parseHistogram(body map[string]any) error {
	if a.p != nil && a.p.kind() != kindDate {
		return illegalArgument("field [%s] of type [%s] is not supported for aggregation [date_histogram]", a.field, a.p.Type)
	}
	for k, v := range body {
		s := fmt.Sprint(v)
		switch k {
		case "field", "format":
		case "keyed":
			if v == true {
				return unsupported("[keyed] date histograms")
			}
		case "time_zone":
			if s != "UTC" && s != "Z" && s != "+00:00" && s != "Etc/UTC" {
				return unsupported("[time_zone] other than UTC in date histograms")
			}
		case "calendar_interval", "interval":
			u, ok := calendarUnits[s]
			if !ok {
				if k == "interval" {
					d, err := parseFixed(s)
					if err != nil {
						return err
					}
					a.fixed = d
					continue
				}
				return illegalArgument("The supplied interval [%s] could not be parsed as a calendar interval.", s)
			}
			a.unit = u
		case "fixed_interval":
			d, err := parseFixed(s)
			if err != nil {
				return err
			}
			a.fixed = d
		case "min_doc_count":
			n, err := number(v)
			if err != nil || n < 0 {
				return parsingError("[min_doc_count] of [%s] must be a non-negative integer", a.name)
			}
			a.minDocCount = int(n)
		default:
			return unsupported("[%s] in date_histogram aggregations", k)
		}
	}
	if a.unit == 0 && a.fixed == 0 {
		return illegalArgument("Invalid interval specified, must be non-null and non-empty (give calendar_interval or fixed_interval in [%s])", a.name)
	}
	return nil
}

// bucketOf is the start, in epoch milliseconds, of the histogram bucket
// holding t (Unix nanoseconds).
func (a *agg) bucketOf(nanos int64) int64 {
	if a.fixed > 0 {
		return floorDiv(nanos/int64(time.Millisecond), a.fixed.Milliseconds())
	}
	t := time.Unix(0, nanos).UTC()
	if a.unit == 'q' {
		return time.Date(t.Year(), (t.Month()-1)/3*3+1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	}
	s, _ := roundDown(t, a.unit)
	return s.UnixMilli()
}

// nextBucket is the start of the histogram bucket after the one starting
// at ms.
func (a *agg) nextBucket(ms int64) int64 {
	if a.fixed > 0 {
		return ms + a.fixed.Milliseconds()
	}
	t := time.UnixMilli(ms).UTC()
	if a.unit == 'q' {
		return t.AddDate(0, 3, 0).UnixMilli()
	}
	n, _ := addUnit(t, a.unit, 1)
	return n.UnixMilli()
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

func (a *agg) parseMetric(body map[string]any) error {
	for k := range body {
		switch k {
		case "field":
		case "precision_threshold":
			if a.kind != "cardinality" {
				return parsingError("unknown key [%s] in [%s] aggregation [%s]", k, a.kind, a.name)
			}
			// counts are exact: no threshold needed
		case "missing", "script", "format":
			return unsupported("[%s] in [%s] aggregations (in [%s])", k, a.kind, a.name)
		default:
			return parsingError("unknown key [%s] in [%s] aggregation [%s]", k, a.kind, a.name)
		}
	}
	switch a.kind {
	case "value_count", "cardinality":
	default:
		if a.p != nil && a.p.kind() != kindNumber && a.p.kind() != kindDate {
			return illegalArgument("Field [%s] of type [%s] is not supported for aggregation [%s]", a.field, a.p.Type, a.kind)
		}
	}
	return nil
}
