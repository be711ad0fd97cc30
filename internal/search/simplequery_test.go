package search

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestSimpleQueryString(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	sqs := func(q string, extra ...any) map[string]any {
		body := obj("query", q, "fields", list("title", "body", "tags"))
		for i := 0; i+1 < len(extra); i += 2 {
			body[extra[i].(string)] = extra[i+1]
		}
		return obj("query", obj("simple_query_string", body), "size", 20)
	}
	tests := []struct {
		name string
		body map[string]any
		want []string // sorted
	}{
		{"words are or'ed", sqs("quick fox"), []string{"4", "5"}},
		{"default_operator and", sqs("quick fox bears", "default_operator", "and"), []string{"5"}},
		{"phrase", sqs(`"quick brown fox"`), []string{"4"}},
		{"and, or, groups, left to right", sqs("(fox | bears) + brown"), []string{"4", "5"}},
		{"not with and", sqs("fox -bears", "default_operator", "AND"), []string{"4"}},
		{"explicit + not", sqs("fox + -bears"), []string{"4"}},
		// as in Elasticsearch: with OR, "-bears" alone matches everything without bears
		{"not with or", sqs("fox -bears"), []string{"1", "2", "3", "4", "5", "6"}},
		{"prefix", sqs("cach*"), []string{"2"}},
		{"prefix on a keyword keeps its case", obj("query", obj("simple_query_string", obj("query", "G*", "fields", list("author.country")))), []string{"1", "4", "5"}},
		{"fuzzy", sqs("pythn~1"), []string{"2"}},
		{"all fields by default", obj("query", obj("simple_query_string", obj("query", "hopper"))), []string{"3", "6"}},
		{"escaped operator", sqs(`e\-mails`), []string{"3"}},
		// never a syntax error
		{"unclosed quote", sqs(`"quick brown`), []string{"4", "5"}},
		{"unbalanced parentheses", sqs("((fox) bears))"), []string{"4", "5"}},
		{"only operators", sqs("+ | - ()"), nil},
		{"empty", sqs(""), nil},
	}
	for _, tt := range tests {
		got := ids(s.must(200, "POST", "/articles/_search", tt.body))
		slices.Sort(got)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	// boosts in fields
	out := s.must(200, "POST", "/articles/_search", obj("query", obj("simple_query_string", obj("query", "search", "fields", list("title^10", "body")))))
	if got := ids(out); len(got) == 0 || got[0] != "1" {
		t.Errorf("title boosted: %v, want 1 first", got)
	}
	for _, tt := range []struct {
		body    map[string]any
		errType string
	}{
		{sqs(`"quick fox"~2`), typeUnsupported},
		{sqs("fox", "default_operator", "xor"), "parsing_exception"},
		{sqs("fox", "flags", "PHRASE|PREFIX"), typeUnsupported},
		{obj("query", obj("simple_query_string", obj("fields", list("title")))), "parsing_exception"},
		{obj("query", obj("simple_query_string", "fox")), "parsing_exception"},
	} {
		if code, out := s.do("POST", "/articles/_search", tt.body); code != 400 || errType(out) != tt.errType {
			t.Errorf("%v: %d %v, want 400 %s", tt.body, code, out, tt.errType)
		}
	}
}

func FuzzSimpleQueryString(f *testing.F) {
	for _, s := range []string{"quick fox", `"a b" +c | -(d e*) f~1`, `\`, `"`, "((", "-", "~", "a~9", "*"} {
		f.Add(s)
	}
	m := &meta{Mapping: Mapping{Properties: map[string]*Property{
		"title": {Type: "text"}, "tag": {Type: "keyword"}, "n": {Type: "long"}}}}
	f.Fuzz(func(t *testing.T, s string) {
		tr := &translator{m: m}
		q, err := tr.simpleQueryString(map[string]any{"query": s})
		if err != nil {
			if e := (*Error)(nil); !errors.As(err, &e) {
				t.Fatalf("%q: an error that is not Elasticsearch-shaped: %v", s, err)
			}
			return
		}
		if q == nil {
			t.Fatalf("%q: no query and no error", s)
		}
	})
}
