package search

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/blevesearch/bleve/v2/numeric"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/collector"
	index "github.com/blevesearch/bleve_index_api"
)

// aggState is what an aggregation has collected so far.
type aggState struct {
	// metrics
	count         int
	sum, min, max float64
	distinct      map[string]struct{} // cardinality
	// bucket aggregations: terms by key, range by position, histogram by
	// bucket start (epoch milliseconds)
	terms  map[string]*bucket
	ranges []*bucket
	hist   map[int64]*bucket
}

type bucket struct {
	docs int
	key  any // terms: the key as answered
	subs []*aggState
}

func newStates(aggs []*agg) []*aggState {
	out := make([]*aggState, len(aggs))
	for i, a := range aggs {
		st := &aggState{min: math.Inf(1), max: math.Inf(-1)}
		switch a.kind {
		case "terms":
			st.terms = map[string]*bucket{}
		case "range":
			st.ranges = make([]*bucket, len(a.ranges))
			for j := range st.ranges {
				st.ranges[j] = &bucket{subs: newStates(a.subs)}
			}
		case "date_histogram":
			st.hist = map[int64]*bucket{}
		case "cardinality":
			st.distinct = map[string]struct{}{}
		}
		out[i] = st
	}
	return out
}

// docValues are the values one document has for the fields the
// aggregations read, by slot.
type docValues []fieldValues

type fieldValues struct {
	kind  kind
	strs  []string  // keyword; boolean as "T" or "F"
	nums  []float64 // number
	nanos []int64   // date, Unix nanoseconds
}

// aggCollector feeds the documents matching a search of one index to the
// aggregations.
type aggCollector struct {
	aggs   []*agg // translated with this index's mapping
	states []*aggState
	slots  map[string]int
	fields []string
	vals   docValues
}

// newAggCollector collects into states (shared by the indexes of a
// search) with aggs as this index reads them.
func newAggCollector(aggs []*agg, states []*aggState) *aggCollector {
	c := &aggCollector{aggs: aggs, states: states, slots: map[string]int{}}
	var walk func([]*agg)
	walk = func(aggs []*agg) {
		for _, a := range aggs {
			if _, ok := c.slots[a.field]; !ok && a.p != nil {
				c.slots[a.field] = len(c.fields)
				c.fields = append(c.fields, a.field)
				c.vals = append(c.vals, fieldValues{kind: a.p.kind()})
			}
			walk(a.subs)
		}
	}
	walk(aggs)
	return c
}

// withCollector returns a context under which a bleve search also feeds
// every matching document to c (bleve's hook for custom document match
// handlers), before the usual top-N handling of hits.
func withCollector(ctx context.Context, c *aggCollector) context.Context {
	maker := search.MakeDocumentMatchHandler(func(sctx *search.SearchContext) (search.DocumentMatchHandler, bool, error) {
		next, loadID, err := collector.MakeTopNDocumentMatchHandler(sctx)
		if err != nil {
			return nil, false, err
		}
		dvr, err := sctx.IndexReader.DocValueReader(c.fields)
		if err != nil {
			return nil, false, fmt.Errorf("aggregations: %w", err)
		}
		return func(d *search.DocumentMatch) error {
			if d != nil {
				if err := c.add(dvr, d.IndexInternalID); err != nil {
					return err
				}
			}
			return next(d)
		}, loadID, nil
	})
	return context.WithValue(ctx, search.MakeDocumentMatchHandlerKey, maker)
}

func (c *aggCollector) add(dvr index.DocValueReader, id index.IndexInternalID) error {
	for i := range c.vals {
		v := &c.vals[i]
		v.strs, v.nums, v.nanos = v.strs[:0], v.nums[:0], v.nanos[:0]
	}
	err := dvr.VisitDocValues(id, func(field string, term []byte) {
		i, ok := c.slots[field]
		if !ok {
			return
		}
		v := &c.vals[i]
		switch v.kind {
		case kindKeyword, kindBool:
			v.strs = append(v.strs, string(term))
		case kindNumber, kindDate:
			// numbers are indexed at several precisions: the full one is
			// shift 0
			pc := numeric.PrefixCoded(term)
			if shift, err := pc.Shift(); err != nil || shift != 0 {
				return
			}
			i64, err := pc.Int64()
			if err != nil {
				return
			}
			if v.kind == kindNumber {
				v.nums = append(v.nums, numeric.Int64ToFloat64(i64))
			} else {
				v.nanos = append(v.nanos, i64)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("aggregations: read doc values: %w", err)
	}
	for i, a := range c.aggs {
		c.collect(a, c.states[i])
	}
	return nil
}

// numbers are a field's values as numbers (dates as epoch milliseconds).
func (v *fieldValues) numbers() []float64 {
	if v.kind != kindDate {
		return v.nums
	}
	if len(v.nums) == 0 {
		for _, n := range v.nanos {
			v.nums = append(v.nums, float64(n/int64(time.Millisecond)))
		}
	}
	return v.nums
}

// collect adds the current document to a and its sub-aggregations.
func (c *aggCollector) collect(a *agg, st *aggState) {
	if a.p == nil {
		return // not mapped in this index: no values
	}
	v := &c.vals[c.slots[a.field]]
	switch a.kind {
	case "terms":
		var keys []string
		switch v.kind {
		case kindKeyword, kindBool:
			keys = v.strs
		case kindNumber:
			for _, n := range v.nums {
				keys = append(keys, strconv.FormatFloat(n, 'g', -1, 64))
			}
		case kindDate:
			for _, n := range v.nanos {
				keys = append(keys, strconv.FormatInt(n/int64(time.Millisecond), 10))
			}
		}
		for i, k := range keys {
			if slices.Contains(keys[:i], k) {
				continue // a document counts once per bucket
			}
			b := st.terms[k]
			if b == nil {
				b = &bucket{key: termKey(v.kind, k), subs: newStates(a.subs)}
				st.terms[k] = b
			}
			c.into(a, b)
		}
	case "range":
		nums := v.numbers()
		for i, r := range a.ranges {
			if slices.ContainsFunc(nums, func(n float64) bool {
				return (r.from == nil || n >= *r.from) && (r.to == nil || n < *r.to)
			}) {
				c.into(a, st.ranges[i])
			}
		}
	case "date_histogram":
		var seen []int64
		for _, n := range v.nanos {
			k := a.bucketOf(n)
			if slices.Contains(seen, k) {
				continue
			}
			seen = append(seen, k)
			b := st.hist[k]
			if b == nil {
				b = &bucket{subs: newStates(a.subs)}
				st.hist[k] = b
			}
			c.into(a, b)
		}
	case "value_count":
		switch v.kind {
		case kindNumber:
			st.count += len(v.nums)
		case kindDate:
			st.count += len(v.nanos)
		default:
			st.count += len(v.strs)
		}
	case "cardinality":
		switch v.kind {
		case kindNumber:
			for _, n := range v.nums {
				st.distinct[strconv.FormatFloat(n, 'g', -1, 64)] = struct{}{}
			}
		case kindDate:
			for _, n := range v.nanos {
				st.distinct[strconv.FormatInt(n, 10)] = struct{}{}
			}
		default:
			for _, s := range v.strs {
				st.distinct[s] = struct{}{}
			}
		}
	default: // avg, sum, min, max, stats
		for _, n := range v.numbers() {
			st.count++
			st.sum += n
			st.min, st.max = math.Min(st.min, n), math.Max(st.max, n)
		}
	}
}

func (c *aggCollector) into(a *agg, b *bucket) {
	b.docs++
	for i, sub := range a.subs {
		c.collect(sub, b.subs[i])
	}
}

// termKey is a terms bucket's key as Elasticsearch answers it.
func termKey(k kind, s string) any {
	switch k {
	case kindNumber:
		f, _ := strconv.ParseFloat(s, 64)
		return f
	case kindDate:
		n, _ := strconv.ParseInt(s, 10, 64)
		return n
	}
	return s
}

// aggResults renders the aggregations' answers.
func aggResults(aggs []*agg, states []*aggState) (map[string]any, error) {
	out := make(map[string]any, len(aggs))
	for i, a := range aggs {
		r, err := a.result(states[i])
		if err != nil {
			return nil, err
		}
		out[a.name] = r
	}
	return out, nil
}

func (a *agg) result(st *aggState) (map[string]any, error) {
	switch a.kind {
	case "terms":
		return a.termsResult(st)
	case "range":
		var buckets []any
		for i, r := range a.ranges {
			b, err := a.bucketResult(map[string]any{"key": r.key}, st.ranges[i])
			if err != nil {
				return nil, err
			}
			for name, bound := range map[string]*float64{"from": r.from, "to": r.to} {
				if bound == nil {
					continue
				}
				if a.p.kind() == kindDate {
					b[name], b[name+"_as_string"] = int64(*bound), millisKey(bound)
				} else {
					b[name] = *bound
				}
			}
			buckets = append(buckets, b)
		}
		return map[string]any{"buckets": orEmpty(buckets)}, nil
	case "date_histogram":
		return a.histogramResult(st)
	}
	return a.metricResult(st), nil
}

func orEmpty(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// bucketResult is one bucket: its own fields, doc_count and the answers
// of its sub-aggregations.
func (a *agg) bucketResult(fields map[string]any, b *bucket) (map[string]any, error) {
	fields["doc_count"] = b.docs
	for i, sub := range a.subs {
		r, err := sub.result(b.subs[i])
		if err != nil {
			return nil, err
		}
		fields[sub.name] = r
	}
	return fields, nil
}

func (a *agg) termsResult(st *aggState) (map[string]any, error) {
	type kb struct {
		k string
		b *bucket
	}
	var all []kb
	for k, b := range st.terms {
		if b.docs >= a.minDocCount {
			all = append(all, kb{k, b})
		}
	}
	byKey := func(x, y kb) int {
		switch xk := x.b.key.(type) {
		case float64:
			return cmpNumber(xk, y.b.key.(float64))
		case int64:
			return cmpNumber(float64(xk), float64(y.b.key.(int64)))
		}
		return cmpString(x.k, y.k)
	}
	slices.SortFunc(all, func(x, y kb) int {
		var c int
		switch a.orderBy {
		case "_count":
			c = x.b.docs - y.b.docs
		case "_key":
			c = byKey(x, y)
		default:
			c = cmpNumber(a.orderValue(x.b), a.orderValue(y.b))
		}
		if !a.orderAsc {
			c = -c
		}
		if c == 0 && a.orderBy != "_key" {
			c = byKey(x, y)
		}
		return c
	})
	other := 0
	if len(all) > a.size {
		for _, x := range all[a.size:] {
			other += x.b.docs
		}
		all = all[:a.size]
	}
	buckets := make([]any, 0, len(all))
	for _, x := range all {
		fields := map[string]any{"key": x.b.key}
		switch a.p.kind() {
		case kindBool:
			fields["key"], fields["key_as_string"] = map[bool]int{true: 1, false: 0}[x.k == "T"], strconv.FormatBool(x.k == "T")
		case kindDate:
			fields["key_as_string"] = dateKey(time.UnixMilli(x.b.key.(int64)))
		case kindNumber:
			if isIntegerType(a.p.Type) {
				fields["key"] = int64(x.b.key.(float64))
			}
		}
		b, err := a.bucketResult(fields, x.b)
		if err != nil {
			return nil, err
		}
		buckets = append(buckets, b)
	}
	return map[string]any{"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets}, nil
}

// orderValue is the value of the metric sub-aggregation a terms
// aggregation is ordered by, in bucket b; NaN when it has none.
func (a *agg) orderValue(b *bucket) float64 {
	for i, s := range a.subs {
		if s.name != a.orderBy {
			continue
		}
		r := s.metricResult(b.subs[i])
		key := "value"
		if s.kind == "stats" {
			key = a.orderStat
		}
		switch v := r[key].(type) {
		case float64:
			return v
		case int:
			return float64(v)
		}
	}
	return math.NaN()
}

func cmpNumber(x, y float64) int {
	switch {
	case x < y || (math.IsNaN(x) && !math.IsNaN(y)):
		return -1
	case x > y || (!math.IsNaN(x) && math.IsNaN(y)):
		return 1
	}
	return 0
}

func cmpString(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func isIntegerType(t string) bool {
	switch t {
	case "long", "integer", "short", "byte", "unsigned_long":
		return true
	}
	return false
}

func (a *agg) histogramResult(st *aggState) (map[string]any, error) {
	keys := make([]int64, 0, len(st.hist))
	for k := range st.hist {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if a.minDocCount == 0 && len(keys) > 1 {
		// empty buckets between the first and the last, as Elasticsearch
		// answers by default
		var all []int64
		for k := keys[0]; k <= keys[len(keys)-1]; k = a.nextBucket(k) {
			all = append(all, k)
			if len(all) > maxBuckets {
				break
			}
		}
		keys = all
	}
	if len(keys) > maxBuckets {
		return nil, &Error{Status: 400, Type: "too_many_buckets_exception", Reason: fmt.Sprintf("Trying to create too many buckets. Must be less than or equal to: [%d] (aggregation [%s])", maxBuckets, a.name)}
	}
	buckets := make([]any, 0, len(keys))
	for _, k := range keys {
		b := st.hist[k]
		if b == nil {
			b = &bucket{subs: newStates(a.subs)}
		}
		if b.docs < a.minDocCount {
			continue
		}
		r, err := a.bucketResult(map[string]any{"key_as_string": dateKey(time.UnixMilli(k)), "key": k}, b)
		if err != nil {
			return nil, err
		}
		buckets = append(buckets, r)
	}
	return map[string]any{"buckets": buckets}, nil
}

// metricResult is the answer of a metric aggregation: null values when
// no document had one, as in Elasticsearch (but a sum of 0).
func (a *agg) metricResult(st *aggState) map[string]any {
	var avg, lo, hi any
	if st.count > 0 {
		avg, lo, hi = st.sum/float64(st.count), st.min, st.max
	}
	isDate := a.p.kind() == kindDate
	asString := func(v any) any {
		if f, ok := v.(float64); ok {
			return dateKey(time.UnixMilli(int64(f)))
		}
		return nil
	}
	switch a.kind {
	case "value_count":
		return map[string]any{"value": st.count}
	case "cardinality":
		return map[string]any{"value": len(st.distinct)}
	case "sum":
		return map[string]any{"value": st.sum}
	case "avg":
		return withString(isDate, map[string]any{"value": avg}, "value", asString)
	case "min":
		return withString(isDate, map[string]any{"value": lo}, "value", asString)
	case "max":
		return withString(isDate, map[string]any{"value": hi}, "value", asString)
	}
	out := map[string]any{"count": st.count, "min": lo, "max": hi, "avg": avg, "sum": st.sum}
	if isDate && st.count > 0 {
		for _, k := range []string{"min", "max", "avg"} {
			out[k+"_as_string"] = asString(out[k])
		}
	}
	return out
}

func withString(isDate bool, m map[string]any, key string, asString func(any) any) map[string]any {
	if isDate && m[key] != nil {
		m[key+"_as_string"] = asString(m[key])
	}
	return m
}
