package search

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"
)

// metricKinds are the metric aggregations pier computes. Bleve has no
// field data to compute them from, so they are read from the _source of
// the matching documents, a page at a time.
var metricKinds = []string{"avg", "sum", "min", "max", "value_count"}

// metricPage is how many matching documents a metric aggregation reads at
// once.
const metricPage = 1000

// metric accumulates a metric aggregation over the documents read.
type metric struct {
	count    int
	sum      float64
	min, max float64
}

func (a *agg) isMetric() bool { return a.metric != nil }

// checkMetric validates a metric aggregation's field.
func (a *agg) checkMetric(body map[string]any) error {
	for k := range body {
		switch k {
		case "field":
		case "missing", "script", "format":
			return unsupported("[%s] in [%s] aggregations (in [%s])", k, a.kind, a.name)
		default:
			return parsingError("unknown key [%s] in [%s] aggregation [%s]", k, a.kind, a.name)
		}
	}
	if a.kind != "value_count" && a.p.kind() != kindNumber {
		return illegalArgument("Field [%s] of type [%s] is not supported for aggregation [%s]", a.field, a.p.Type, a.kind)
	}
	a.metric = &metric{min: math.Inf(1), max: math.Inf(-1)}
	return nil
}

// collectMetrics reads the documents of ix matching q and adds their values
// to the metric aggregations of into (found by name: with several indexes,
// into are the aggregations of the first index's request).
func collectMetrics(ctx context.Context, ix *Index, q query.Query, into []*agg) error {
	var ms []*agg
	for _, a := range into {
		if a.isMetric() {
			ms = append(ms, a)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	var after []string
	for {
		req := bleve.NewSearchRequestOptions(q, metricPage, 0, false)
		req.Fields = []string{fieldSource}
		req.SortBy([]string{"_id"})
		if after != nil {
			req.SearchAfter = after
		}
		res, err := ix.bi.SearchInContext(ctx, req)
		if err != nil {
			return fmt.Errorf("metric aggregations on %s: %w", ix.Name, searchError(err))
		}
		for _, h := range res.Hits {
			src, _ := h.Fields[fieldSource].(string)
			var doc map[string]any
			if json.Unmarshal([]byte(src), &doc) != nil {
				continue
			}
			for _, a := range ms {
				a.metric.add(a.kind, sourceValue(doc, a.field))
			}
		}
		if len(res.Hits) < metricPage {
			return nil
		}
		after = []string{res.Hits[len(res.Hits)-1].ID}
	}
}

// add counts v, a value of a document's field: a scalar or an array.
func (m *metric) add(kind string, v any) {
	switch x := v.(type) {
	case nil:
	case []any:
		for _, e := range x {
			m.add(kind, e)
		}
	case map[string]any:
	default:
		if kind == "value_count" {
			m.count++
			return
		}
		f, err := number(x)
		if err != nil {
			return // not indexed either: a number field holds numbers
		}
		m.count++
		m.sum += f
		m.min, m.max = math.Min(m.min, f), math.Max(m.max, f)
	}
}

// sourceValue finds a field's value in a document's source: "a.b" is b in
// object a, or the key "a.b"; the sub-field of a multi-field ("title.raw")
// has its parent's value.
func sourceValue(doc map[string]any, path string) any {
	if v, ok := doc[path]; ok {
		return v
	}
	for i := strings.IndexByte(path, '.'); i > 0; i = nextDot(path, i) {
		v, ok := doc[path[:i]]
		if !ok {
			continue
		}
		if sub, isObj := v.(map[string]any); isObj {
			return sourceValue(sub, path[i+1:])
		}
		return v // a multi-field of a scalar
	}
	return nil
}

func nextDot(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '.')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// result is the answer of a metric aggregation.
func (m *metric) result(kind string) map[string]any {
	var v any
	switch kind {
	case "value_count":
		v = m.count
	case "sum":
		v = m.sum
	case "avg":
		if m.count > 0 {
			v = m.sum / float64(m.count)
		}
	case "min":
		if m.count > 0 {
			v = m.min
		}
	case "max":
		if m.count > 0 {
			v = m.max
		}
	}
	return map[string]any{"value": v}
}
