package search

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// flatBuckets renders buckets as "key=count" with, for each named sub
// aggregation, "[sub:...]": the metric value, or its own buckets.
func flatBuckets(agg any, subs ...string) []string {
	var out []string
	for _, b := range agg.(map[string]any)["buckets"].([]any) {
		bm := b.(map[string]any)
		key := fmt.Sprint(bm["key"])
		if ks, ok := bm["key_as_string"]; ok {
			key = fmt.Sprint(ks)
		}
		s := fmt.Sprintf("%s=%v", key, bm["doc_count"])
		for _, sub := range subs {
			sv := bm[sub].(map[string]any)
			if _, ok := sv["buckets"]; ok {
				s += fmt.Sprintf(" [%s:%s]", sub, strings.Join(flatBuckets(sv), ","))
			} else if v, ok := sv["value"]; ok {
				s += fmt.Sprintf(" [%s:%s]", sub, roundValue(v))
			} else {
				s += fmt.Sprintf(" [%s:count=%v min=%v max=%v sum=%s]", sub, sv["count"], sv["min"], sv["max"], roundValue(sv["sum"]))
			}
		}
		out = append(out, s)
	}
	return out
}

func roundValue(v any) string {
	if f, ok := v.(float64); ok {
		return fmt.Sprint(math.Round(f*100) / 100)
	}
	return fmt.Sprint(v)
}

func TestSubAggregationsAndMetrics(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	tests := []struct {
		name string
		aggs map[string]any
		subs []string
		want []string
	}{
		{"terms > avg, terms", obj("terms", obj("field", "author.country"), "aggs", obj(
			"avg_price", obj("avg", obj("field", "price")),
			"top_tag", obj("terms", obj("field", "tags", "size", 1)))),
			[]string{"avg_price", "top_tag"},
			[]string{"GB=3 [avg_price:4.33] [top_tag:databases=1]", "US=2 [avg_price:17.5] [top_tag:performance=2]", "NL=1 [avg_price:12.5] [top_tag:caching=1]"}},
		{"terms ordered by a metric", obj("terms", obj("field", "author.country", "order", obj("avg_price", "desc")), "aggs", obj(
			"avg_price", obj("avg", obj("field", "price")))),
			[]string{"avg_price"},
			[]string{"US=2 [avg_price:17.5]", "NL=1 [avg_price:12.5]", "GB=3 [avg_price:4.33]"}},
		{"terms ordered by a stats value", obj("terms", obj("field", "author.country", "order", obj("p.max", "asc")), "aggs", obj(
			"p", obj("stats", obj("field", "price")))),
			nil,
			[]string{"GB=3", "NL=1", "US=2"}},
		{"terms by key", obj("terms", obj("field", "author.country", "order", obj("_key", "desc"))), nil, []string{"US=2", "NL=1", "GB=3"}},
		{"terms min_doc_count", obj("terms", obj("field", "tags", "min_doc_count", 2)), nil, []string{"performance=3"}},
		{"terms on a number field", obj("terms", obj("field", "price", "size", 2, "order", obj("_key", "desc"))), nil, []string{"20=1", "15=1"}},
		{"date_histogram > terms", obj("date_histogram", obj("field", "published", "calendar_interval", "month"), "aggs", obj(
			"c", obj("terms", obj("field", "author.country")))),
			[]string{"c"},
			[]string{"2024-01-01T00:00:00.000Z=1 [c:GB=1]", "2024-02-01T00:00:00.000Z=2 [c:NL=1,US=1]", "2024-03-01T00:00:00.000Z=2 [c:GB=2]", "2024-04-01T00:00:00.000Z=1 [c:US=1]"}},
		{"date_histogram quarters", obj("date_histogram", obj("field", "published", "calendar_interval", "quarter")), nil,
			[]string{"2024-01-01T00:00:00.000Z=5", "2024-04-01T00:00:00.000Z=1"}},
		{"date_histogram without empty buckets", obj("date_histogram", obj("field", "published", "fixed_interval", "7d", "min_doc_count", 1)), nil,
			[]string{"2024-01-11T00:00:00.000Z=1", "2024-02-01T00:00:00.000Z=1", "2024-02-15T00:00:00.000Z=1", "2024-02-29T00:00:00.000Z=1", "2024-03-14T00:00:00.000Z=1", "2024-03-28T00:00:00.000Z=1"}},
		{"range > stats", obj("range", obj("field", "price", "ranges", list(obj("to", 10), obj("from", 10))), "aggs", obj(
			"p", obj("stats", obj("field", "price")))),
			[]string{"p"},
			[]string{"*-10.0=3 [p:count=3 min=0 max=8 sum=13]", "10.0-*=3 [p:count=3 min=12.5 max=20 sum=47.5]"}},
		{"terms > terms > sum", obj("terms", obj("field", "featured"), "aggs", obj(
			"c", obj("terms", obj("field", "author.country"), "aggs", obj("s", obj("sum", obj("field", "price")))))),
			[]string{"c"},
			[]string{"false=4 [c:US=2,GB=1,NL=1]", "true=2 [c:GB=2]"}},
	}
	for _, tt := range tests {
		out := s.must(200, "POST", "/articles/_search", obj("size", 0, "aggs", obj("a", tt.aggs)))
		got := flatBuckets(out["aggregations"].(map[string]any)["a"], tt.subs...)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got  %q\n want %q", tt.name, got, tt.want)
		}
	}

	// metrics at the top level
	out := s.must(200, "POST", "/articles/_search", obj("size", 0, "aggs", obj(
		"price", obj("stats", obj("field", "price")),
		"tags", obj("cardinality", obj("field", "tags")),
		"countries", obj("cardinality", obj("field", "author.country", "precision_threshold", 100)),
		"first", obj("min", obj("field", "published")),
		"last", obj("max", obj("field", "published")))))
	aggs := out["aggregations"].(map[string]any)
	stats := aggs["price"].(map[string]any)
	if stats["count"] != 6.0 || stats["min"] != 0.0 || stats["max"] != 20.0 || stats["sum"] != 60.5 || math.Abs(stats["avg"].(float64)-60.5/6) > 1e-9 {
		t.Errorf("stats of price: %v", stats)
	}
	for name, want := range map[string]float64{"tags": 9, "countries": 3} {
		if got := aggs[name].(map[string]any)["value"]; got != want {
			t.Errorf("cardinality of %s: %v, want %v", name, got, want)
		}
	}
	first := aggs["first"].(map[string]any)
	if first["value"] != 1705276800000.0 || first["value_as_string"] != "2024-01-15T00:00:00.000Z" {
		t.Errorf("min of published: %v", first)
	}
	if last := aggs["last"].(map[string]any); last["value_as_string"] != "2024-04-02T00:00:00.000Z" {
		t.Errorf("max of published: %v", last)
	}
	// nothing matches: empty buckets, null metrics, sum and counts 0
	out = s.must(200, "POST", "/articles/_search", obj("size", 0, "query", obj("term", obj("tags", "none")), "aggs", obj(
		"c", obj("terms", obj("field", "author.country"), "aggs", obj("p", obj("avg", obj("field", "price")))),
		"h", obj("date_histogram", obj("field", "published", "calendar_interval", "month")),
		"s", obj("stats", obj("field", "price")))))
	aggs = out["aggregations"].(map[string]any)
	if len(aggs["c"].(map[string]any)["buckets"].([]any)) != 0 || len(aggs["h"].(map[string]any)["buckets"].([]any)) != 0 {
		t.Errorf("no match: %v", aggs)
	}
	if st := aggs["s"].(map[string]any); st["count"] != 0.0 || st["min"] != nil || st["avg"] != nil || st["sum"] != 0.0 {
		t.Errorf("stats with no match: %v", st)
	}

	for _, tt := range []struct {
		aggs    map[string]any
		errType string
	}{
		{obj("a", obj("terms", obj("field", "tags", "order", obj("nope", "desc")))), typeIllegalArgument},
		{obj("a", obj("terms", obj("field", "tags", "order", obj("c", "desc")), "aggs", obj("c", obj("terms", obj("field", "tags"))))), typeIllegalArgument},
		{obj("a", obj("stats", obj("field", "tags"))), typeIllegalArgument},
		{obj("a", obj("terms", obj("field", "tags"), "aggs", "x")), "parsing_exception"},
		{obj("a", obj("date_histogram", obj("field", "published", "calendar_interval", "month", "time_zone", "Europe/Paris"))), typeUnsupported},
	} {
		code, out := s.do("POST", "/articles/_search", obj("aggs", tt.aggs))
		if code != 400 || errType(out) != tt.errType {
			t.Errorf("%v: %d %v, want 400 %s", tt.aggs, code, out, tt.errType)
		}
	}
}

func TestSearchAfterAndPostFilter(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	// pages of 2 by price, each starting after the last sort value
	var pages [][]string
	var after []any
	for range 5 {
		body := obj("size", 2, "sort", list(obj("price", "asc")))
		if after != nil {
			body["search_after"] = after
		}
		out := s.must(200, "POST", "/articles/_search", body)
		hits := hitList(out)
		if total(out) != 6 {
			t.Errorf("search_after %v: total %d, want 6", after, total(out))
		}
		if len(hits) == 0 {
			break
		}
		pages = append(pages, ids(out))
		after = hits[len(hits)-1]["sort"].([]any)
	}
	if want := [][]string{{"1", "4"}, {"5", "2"}, {"6", "3"}}; !reflect.DeepEqual(pages, want) {
		t.Errorf("pages by price: %v, want %v", pages, want)
	}
	// dates: the sort value is epoch milliseconds; ties broken by _id
	out := s.must(200, "POST", "/articles/_search", obj("size", 3, "sort", list(obj("author.country", "asc"), obj("_id", "asc")),
		"search_after", list("GB", "4")))
	if got := ids(out); !reflect.DeepEqual(got, []string{"5", "2", "3"}) {
		t.Errorf("after GB/4: %v, want [5 2 3]", got)
	}
	out = s.must(200, "POST", "/articles/_search", obj("size", 10, "sort", list(obj("published", "desc")), "search_after", list(1709251200000))) // 2024-03-01
	if got := ids(out); !reflect.DeepEqual(got, []string{"3", "2", "1"}) {
		t.Errorf("after 2024-03-01 descending: %v, want [3 2 1]", got)
	}
	for _, body := range []map[string]any{
		obj("search_after", list(1)),
		obj("sort", list("price"), "search_after", list(1, 2)),
		obj("sort", list("price"), "from", 2, "search_after", list(1)),
		obj("sort", list("price"), "search_after", list("cheap")),
	} {
		if code, out := s.do("POST", "/articles/_search", body); code != 400 {
			t.Errorf("%v: %d %v, want 400", body, code, out)
		}
	}

	// post_filter narrows the hits, not the aggregations
	out = s.must(200, "POST", "/articles/_search", obj(
		"query", obj("match", obj("body", "quick brown fox search")),
		"post_filter", obj("term", obj("author.country", "GB")),
		"aggs", obj("c", obj("terms", obj("field", "author.country")))))
	got := map[string]bool{}
	for _, id := range ids(out) {
		got[id] = true
	}
	if !reflect.DeepEqual(got, map[string]bool{"1": true, "4": true, "5": true}) || total(out) != 3 {
		t.Errorf("post_filter hits: %v (total %d), want 1, 4, 5", ids(out), total(out))
	}
	if c := flatBuckets(out["aggregations"].(map[string]any)["c"]); !reflect.DeepEqual(c, []string{"GB=3", "US=1"}) {
		t.Errorf("aggregations under post_filter: %v, want GB=3 US=1", c)
	}
	// the filter does not change the scores
	plain := s.must(200, "POST", "/articles/_search", obj("query", obj("match", obj("body", "quick brown fox search"))))
	scores := map[string]any{}
	for _, h := range hitList(plain) {
		scores[h["_id"].(string)] = h["_score"]
	}
	for _, h := range hitList(out) {
		if h["_score"] != scores[h["_id"].(string)] {
			t.Errorf("hit %s: score %v under post_filter, %v without", h["_id"], h["_score"], scores[h["_id"].(string)])
		}
	}
	if code, out := s.do("POST", "/articles/_search", obj("post_filter", obj("bogus", obj()))); code != 400 || errType(out) != "parsing_exception" {
		t.Errorf("bad post_filter: %d %v", code, out)
	}
}

func TestSearchAfterSeveralIndexes(t *testing.T) {
	s := loadMulti(t)
	out := s.must(200, "POST", "/news,blog/_search", obj("size", 2, "sort", list(obj("n", "asc")), "search_after", list(2)))
	if got := ids(out); !reflect.DeepEqual(got, []string{"n3", "b1"}) {
		t.Errorf("after n=2 over two indexes: %v, want [n3 b1]", got)
	}
	// sub-aggregations add up across indexes
	out = s.must(200, "POST", "/news,blog/_search", obj("size", 0, "aggs", obj("k", obj("terms", obj("field", "kind"), "aggs", obj("n", obj("sum", obj("field", "n")))))))
	if got := flatBuckets(out["aggregations"].(map[string]any)["k"], "n"); !reflect.DeepEqual(got, []string{"storm=3 [n:12]", "kitchen=1 [n:2]", "market=1 [n:1]"}) {
		t.Errorf("terms > sum over two indexes: %v", got)
	}
}
