package search

import (
	"fmt"
	"reflect"
	"testing"
)

// loadMulti creates two indexes whose mappings differ: "title" is English
// in one and standard in the other, "n" an integer and a dynamic long.
func loadMulti(t *testing.T) *server {
	t.Helper()
	s := newServer(t)
	s.must(200, "PUT", "/news", obj("mappings", obj("properties", obj(
		"title", obj("type", "text", "analyzer", "english"),
		"kind", obj("type", "keyword"),
		"n", obj("type", "integer"),
		"day", obj("type", "date")))))
	s.bulk("/news/_bulk",
		obj("index", obj("_id", "n1")), obj("title", "Harbour storm closes the sea road", "kind", "storm", "n", 5, "day", "2026-01-02"),
		obj("index", obj("_id", "n2")), obj("title", "Market prices", "kind", "market", "n", 1, "day", "2026-01-03"),
		obj("index", obj("_id", "n3")), obj("title", "The sea, the sea", "kind", "storm", "n", 3, "day", "2026-01-04"),
	)
	s.must(200, "PUT", "/blog", obj("mappings", obj("properties", obj(
		"title", obj("type", "text"),
		"kind", obj("type", "keyword")))))
	s.bulk("/blog/_bulk",
		obj("index", obj("_id", "b1")), obj("title", "Sailing the open sea", "kind", "storm", "n", 4),
		obj("index", obj("_id", "b2")), obj("title", "Baking bread", "kind", "kitchen", "n", 2),
	)
	return s
}

func TestSearchSeveralIndexes(t *testing.T) {
	s := loadMulti(t)
	sea := obj("query", obj("match", obj("title", "sea")), "highlight", obj("fields", obj("title", obj())))
	for _, path := range []string{"/news,blog/_search", "/_search", "/_all/_search", "/*/_search", "/n*,b*/_search", "/news,news*,blog/_search"} {
		out := s.must(200, "POST", path, sea)
		if total(out) != 3 {
			t.Errorf("%s: total %d, want 3", path, total(out))
		}
		got := map[string]string{}
		prev := 1e9
		for _, h := range hitList(out) {
			got[h["_id"].(string)] = h["_index"].(string)
			if sc := h["_score"].(float64); sc > prev {
				t.Errorf("%s: scores not descending: %v", path, ids(out))
			} else {
				prev = sc
			}
			if h["highlight"] == nil {
				t.Errorf("%s: hit %s has no highlight", path, h["_id"])
			}
		}
		if want := map[string]string{"n1": "news", "n3": "news", "b1": "blog"}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: hits %v, want %v", path, got, want)
		}
	}

	// pagination and sort run over the merged hits
	tests := []struct {
		body map[string]any
		want []string
	}{
		{obj("sort", list(obj("n", "asc")), "size", 10), []string{"n2", "b2", "n3", "b1", "n1"}},
		{obj("sort", list(obj("n", "desc")), "from", 1, "size", 2), []string{"b1", "n3"}},
		{obj("sort", list(obj("n", "asc")), "from", 4, "size", 3), []string{"n1"}},
		{obj("sort", list(obj("n", "asc")), "from", 9), []string{}},
	}
	for _, tt := range tests {
		out := s.must(200, "POST", "/news,blog/_search", tt.body)
		if got := ids(out); !reflect.DeepEqual(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("%v: got %v, want %v", tt.body, got, tt.want)
		}
		if total(out) != 5 {
			t.Errorf("%v: total %d, want 5", tt.body, total(out))
		}
	}

	// facets add up across indexes
	out := s.must(200, "POST", "/news,blog/_search", obj("size", 0, "aggs", obj(
		"kinds", obj("terms", obj("field", "kind")),
		"ns", obj("range", obj("field", "n", "ranges", list(obj("to", 3), obj("from", 3)))))))
	aggs := out["aggregations"].(map[string]any)
	kinds := aggs["kinds"].(map[string]any)["buckets"].([]any)
	if len(kinds) != 3 || kinds[0].(map[string]any)["key"] != "storm" || kinds[0].(map[string]any)["doc_count"] != 3.0 {
		t.Errorf("kinds: %v, want storm 3 first, then market and kitchen", kinds)
	}
	ns := aggs["ns"].(map[string]any)["buckets"].([]any)
	if len(ns) != 2 || ns[0].(map[string]any)["doc_count"] != 2.0 || ns[1].(map[string]any)["doc_count"] != 3.0 {
		t.Errorf("ranges of n: %v, want 2 and 3", ns)
	}

	if out := s.must(200, "GET", "/news,blog/_count", nil); out["count"] != 5.0 {
		t.Errorf("count over both: %v, want 5", out["count"])
	}
	if out := s.must(200, "POST", "/_count", obj("query", obj("match", obj("title", "sea")))); out["count"] != 3.0 {
		t.Errorf("count of sea over all: %v, want 3", out["count"])
	}

	// a missing index among several is an error, as in Elasticsearch
	if code, out := s.do("POST", "/news,nope/_search", sea); code != 404 || errType(out) != "index_not_found_exception" {
		t.Errorf("news,nope: %d %v", code, out)
	}
	// date_histogram over two indexes: "day" is mapped in news only, and
	// its buckets span the dates of both
	out = s.must(200, "POST", "/news,blog/_search", obj("size", 0, "aggs", obj("days", obj("date_histogram", obj("field", "day", "calendar_interval", "day")))))
	days := out["aggregations"].(map[string]any)["days"].(map[string]any)["buckets"].([]any)
	var got []string
	for _, b := range days {
		bm := b.(map[string]any)
		got = append(got, fmt.Sprintf("%v=%v", bm["key_as_string"], bm["doc_count"]))
	}
	if want := []string{"2026-01-02T00:00:00.000Z=1", "2026-01-03T00:00:00.000Z=1", "2026-01-04T00:00:00.000Z=1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("date_histogram over two indexes: %v, want %v", got, want)
	}
	// a field no index maps is an error, as for one index
	if code, out := s.do("POST", "/news,blog/_search", obj("aggs", obj("x", obj("terms", obj("field", "nope"))))); code != 400 || errType(out) != "query_shard_exception" {
		t.Errorf("aggregation on a field no index maps: %d %v", code, out)
	}
}

func TestMetricAggregations(t *testing.T) {
	s := loadMulti(t)
	aggs := obj(
		"avg_n", obj("avg", obj("field", "n")),
		"sum_n", obj("sum", obj("field", "n")),
		"min_n", obj("min", obj("field", "n")),
		"max_n", obj("max", obj("field", "n")),
		"kinds", obj("value_count", obj("field", "kind")))
	value := func(out map[string]any, name string) any {
		return out["aggregations"].(map[string]any)[name].(map[string]any)["value"]
	}
	tests := []struct {
		path  string
		query map[string]any
		want  map[string]any
	}{
		{"/news/_search", nil, obj("avg_n", 3.0, "sum_n", 9.0, "min_n", 1.0, "max_n", 5.0, "kinds", 3.0)},
		{"/news,blog/_search", nil, obj("avg_n", 3.0, "sum_n", 15.0, "min_n", 1.0, "max_n", 5.0, "kinds", 5.0)},
		{"/news,blog/_search", obj("match", obj("title", "sea")), obj("avg_n", 4.0, "sum_n", 12.0, "min_n", 3.0, "max_n", 5.0, "kinds", 3.0)},
		// nothing matches: sum 0, the others null, as in Elasticsearch
		{"/news/_search", obj("term", obj("kind", "none")), obj("avg_n", nil, "sum_n", 0.0, "min_n", nil, "max_n", nil, "kinds", 0.0)},
	}
	for _, tt := range tests {
		body := obj("size", 0, "aggs", aggs)
		if tt.query != nil {
			body["query"] = tt.query
		}
		out := s.must(200, "POST", tt.path, body)
		for name, want := range tt.want {
			if got := value(out, name); got != want {
				t.Errorf("%s %v: %s = %v, want %v", tt.path, tt.query, name, got, want)
			}
		}
	}

	for _, tt := range []struct {
		aggs    map[string]any
		errType string
	}{
		{obj("a", obj("avg", obj("field", "kind"))), "illegal_argument_exception"},
		{obj("a", obj("sum", obj("field", "n", "missing", 0))), "unsupported_operation_exception"},
		{obj("a", obj("percentiles", obj("field", "n"))), "unsupported_operation_exception"},
		{obj("a", obj("max", obj("field", "nope"))), "query_shard_exception"},
	} {
		code, out := s.do("POST", "/news/_search", obj("aggs", tt.aggs))
		if code != 400 || errType(out) != tt.errType {
			t.Errorf("%v: %d %s, want 400 %s", tt.aggs, code, errType(out), tt.errType)
		}
	}
}
