package search

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzQueryString feeds the query_string parser and translator arbitrary
// text: it must never panic, and every failure must be an Elasticsearch
// error a client can read (400), never an internal one.
func FuzzQueryString(f *testing.F) {
	for _, s := range []string{
		`quick brown fox`, `title:"search engine" AND tags:go`, `(a OR b) AND NOT c`, `+must -not should`,
		`price:[10 TO 20}`, `published:>=2024-01-01`, `fuzzy~ fuzzy~1 "phrase"`, `a^2 b^0.5`, `title:(x y)^3`,
		`_exists_:title`, `tit*:foo`, `qu?ck`, `\(escaped\)`, `a && b || c`, `((((((a))))))`, `"unterminated`,
		`[1 TO`, `field:`, `AND`, `搜索引擎 AND 缓存`, `crêpes OR pâtes`, `title:*`,
	} {
		f.Add(s)
	}
	m := fuzzMeta(f)
	f.Fuzz(func(t *testing.T, s string) {
		tr := &translator{m: m, now: time.Unix(1700000000, 0)}
		_, err := tr.queryString(map[string]any{"query": s})
		checkClientError(t, s, err)
	})
}

// FuzzSearchBody feeds whole search bodies through parsing and
// translation, with the same rule.
func FuzzSearchBody(f *testing.F) {
	for _, s := range []string{
		`{"query":{"match":{"title":"x"}}}`,
		`{"query":{"bool":{"must":[{"term":{"tags":"a"}}],"should":{"range":{"price":{"gte":1}}},"minimum_should_match":"50%"}}}`,
		`{"query":{"range":{"published":{"gte":"now-1d/d","lt":"2024-01-01||+1M"}}},"sort":[{"price":"desc"},"_score"]}`,
		`{"query":{"multi_match":{"query":"a b","fields":["title^2","body"],"fuzziness":"AUTO"}},"highlight":{"fields":{"*":{}}}}`,
		`{"aggs":{"t":{"terms":{"field":"tags"}},"r":{"range":{"field":"price","ranges":[{"to":5}]}}},"size":0}`,
		`{"query":{"query_string":{"query":"a:b","fields":["title"]}},"_source":["title"],"from":5}`,
		`{"query":{"fuzzy":{"title":{"value":"x","fuzziness":2}}}}`, `{"query":{}}`, `[]`, `{"size":-1}`,
	} {
		f.Add(s)
	}
	m := fuzzMeta(f)
	ix := &Index{Name: "fuzz"}
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Contains(body, "date_histogram") {
			return // needs a real index for its bounds
		}
		_, err := ix.parseSearch(context.Background(), []byte(body), url.Values{}, m)
		checkClientError(t, body, err)
	})
}

func checkClientError(t *testing.T, input string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%q: error %v is not an Elasticsearch error", input, err)
	}
	if e.Status != 400 || e.Type == "" || e.Reason == "" {
		t.Fatalf("%q: error %+v should be a 400 with a type and a reason", input, e)
	}
	if _, err := json.Marshal(e.body()); err != nil {
		t.Fatalf("%q: error body does not encode: %v", input, err)
	}
}

func fuzzMeta(tb testing.TB) *meta {
	data, _ := json.Marshal(articlesMapping)
	m, err := parseCreateBody(data)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}
