package search

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestRankingOrder(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	out := s.must(200, "POST", "/articles/_search", obj("query", obj("match", obj("body", "search engine index"))))
	got := ids(out)
	// 1 has all three words, two of them twice; 6 has "index"; 2 and 4 one word each
	if len(got) < 3 || got[0] != "1" {
		t.Fatalf("ranking: got %v, want 1 first", got)
	}
	if total(out) != len(got) {
		t.Errorf("total %d, hits %d", total(out), len(got))
	}
	scores := []float64{}
	for _, h := range hitList(out) {
		scores = append(scores, h["_score"].(float64))
	}
	if !slices.IsSortedFunc(scores, func(a, b float64) int { return -cmpFloat(a, b) }) {
		t.Errorf("scores not descending: %v", scores)
	}
	// a boost on the title makes the title match win
	out = s.must(200, "POST", "/articles/_search", obj("query", obj("multi_match", obj("query", "quick fox", "fields", list("title^5", "body")))))
	if got := ids(out); got[0] != "4" {
		t.Errorf("multi_match with title boost: got %v, want 4 first", got)
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestLanguages(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	s.load("recettes", recettesMapping, recettes)
	s.load("livros", livrosMapping, livros)
	s.load("wenzhang", wenzhangMapping, wenzhang)
	tests := []struct {
		index, field, text string
		want               []string
	}{
		// English stemming: "searching" and "searches" meet "search"
		{"articles", "title", "searching", []string{"1"}},
		{"articles", "body", "jobs retried", []string{"3"}},
		// French: plural and singular, elision, accents kept
		{"recettes", "titre", "recette", []string{"r3", "r4"}},
		{"recettes", "texte", "pomme", []string{"r1"}},
		{"recettes", "titre", "crêpe", []string{"r2"}},
		{"recettes", "texte", "gâteau", []string{"r4"}},
		// Portuguese: "memória" meets "Memórias", "livro" meets "livros"
		{"livros", "titulo", "memória", []string{"l1"}},
		{"livros", "resumo", "livro", []string{"l2", "l3"}},
		// Chinese by bigrams: 搜索 is in z1 only, 缓存代理 in z3
		{"wenzhang", "neirong", "搜索", []string{"z1"}},
		{"wenzhang", "biaoti", "缓存代理", []string{"z3"}},
		{"wenzhang", "neirong", "汉字", []string{"z2"}},
	}
	for _, tt := range tests {
		t.Run(tt.index+"/"+tt.text, func(t *testing.T) {
			out := s.must(200, "POST", "/"+tt.index+"/_search", obj("query", obj("match", obj(tt.field, obj("query", tt.text, "operator", "and")))))
			got := ids(out)
			slices.Sort(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("match %s:%q: got %v, want %v", tt.field, tt.text, got, tt.want)
			}
		})
	}
}

func TestPhraseVersusTerms(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	// "quick brown" as words: 4 and 5; as a phrase: 4 only
	words := ids(s.must(200, "POST", "/articles/_search", obj("query", obj("match", obj("body", obj("query", "quick brown", "operator", "and"))))))
	slices.Sort(words)
	if !reflect.DeepEqual(words, []string{"4", "5"}) {
		t.Errorf("match: got %v, want [4 5]", words)
	}
	phrase := ids(s.must(200, "POST", "/articles/_search", obj("query", obj("match_phrase", obj("body", "quick brown fox")))))
	if !reflect.DeepEqual(phrase, []string{"4"}) {
		t.Errorf("match_phrase: got %v, want [4]", phrase)
	}
	// term is exact: on a keyword field it matches, on text it needs the indexed token
	if got := ids(s.must(200, "POST", "/articles/_search", obj("query", obj("term", obj("tags", "performance"))))); len(got) != 3 {
		t.Errorf("term on keyword: got %v, want 3 hits", got)
	}
	if got := ids(s.must(200, "POST", "/articles/_search", obj("query", obj("term", obj("title.raw", "The quick brown fox"))))); !reflect.DeepEqual(got, []string{"4"}) {
		t.Errorf("term on keyword multi-field: got %v", got)
	}
	if got := ids(s.must(200, "POST", "/articles/_search", obj("query", obj("term", obj("title", "The quick brown fox"))))); len(got) != 0 {
		t.Errorf("term with a whole sentence on a text field: got %v, want nothing", got)
	}
}

func TestFuzzy(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	s.load("recettes", recettesMapping, recettes)
	if got := ids(s.must(200, "POST", "/articles/_search", obj("query", obj("match", obj("title", "serach"))))); len(got) != 0 {
		t.Errorf("typo without fuzziness: got %v, want nothing", got)
	}
	tests := []struct {
		index string
		q     map[string]any
		want  string
	}{
		{"articles", obj("match", obj("title", obj("query", "serach", "fuzziness", "AUTO"))), "1"},
		{"articles", obj("match", obj("body", obj("query", "caching proxxy", "fuzziness", 1, "operator", "and"))), "2"},
		{"articles", obj("fuzzy", obj("tags", obj("value", "monitorng"))), "6"},
		{"articles", obj("query_string", obj("query", "queus~")), "3"},
		{"recettes", obj("match", obj("titre", obj("query", "bourguignonne", "fuzziness", "2"))), "r3"},
	}
	for _, tt := range tests {
		got := ids(s.must(200, "POST", "/"+tt.index+"/_search", obj("query", tt.q)))
		if len(got) == 0 || got[0] != tt.want {
			t.Errorf("%v: got %v, want %s first", tt.q, got, tt.want)
		}
	}
}

func TestAggregations(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	out := s.must(200, "POST", "/articles/_search", obj(
		"size", 0,
		"aggs", obj(
			"tags", obj("terms", obj("field", "tags", "size", 2)),
			"countries", obj("terms", obj("field", "author.country")),
			"prices", obj("range", obj("field", "price", "ranges", list(obj("to", 10), obj("from", 10, "to", 20), obj("from", 20)))),
			"months", obj("date_histogram", obj("field", "published", "calendar_interval", "month")),
			"featured", obj("terms", obj("field", "featured")),
		)))
	if len(hitList(out)) != 0 || total(out) != 6 {
		t.Errorf("size 0: %d hits, total %d", len(hitList(out)), total(out))
	}
	aggs := out["aggregations"].(map[string]any)
	buckets := func(name string) []string {
		var got []string
		for _, b := range aggs[name].(map[string]any)["buckets"].([]any) {
			bm := b.(map[string]any)
			key := fmt.Sprint(bm["key"])
			if ks, ok := bm["key_as_string"]; ok {
				key = fmt.Sprint(ks)
			}
			got = append(got, fmt.Sprintf("%s=%v", key, bm["doc_count"]))
		}
		return got
	}
	checks := []struct {
		name string
		want []string
	}{
		{"tags", []string{"performance=3", "caching=1"}},
		{"countries", []string{"GB=3", "US=2", "NL=1"}},
		{"prices", []string{"*-10.0=3", "10.0-20.0=2", "20.0-*=1"}},
		{"months", []string{"2024-01-01T00:00:00.000Z=1", "2024-02-01T00:00:00.000Z=2", "2024-03-01T00:00:00.000Z=2", "2024-04-01T00:00:00.000Z=1"}},
		{"featured", []string{"false=4", "true=2"}},
	}
	for _, c := range checks {
		got := buckets(c.name)
		if c.name == "tags" {
			// the second place is a tie between five tags counted once
			if got[0] != c.want[0] || len(got) != 2 {
				t.Errorf("%s: got %v, want %v first of 2", c.name, got, c.want[0])
			}
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	if other := aggs["tags"].(map[string]any)["sum_other_doc_count"].(float64); other != 7 { // 11 tag values, 4 in the top 2
		t.Errorf("tags sum_other_doc_count = %v, want 7", other)
	}
	// facets follow the query
	out = s.must(200, "POST", "/articles/_search", obj("query", obj("match", obj("body", "fox")), "size", 0,
		"aggs", obj("countries", obj("terms", obj("field", "author.country")))))
	aggs = out["aggregations"].(map[string]any)
	if got := buckets("countries"); !reflect.DeepEqual(got, []string{"GB=2"}) {
		t.Errorf("countries of fox documents: %v", got)
	}
}

func TestHighlight(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	s.load("recettes", recettesMapping, recettes)
	out := s.must(200, "POST", "/articles/_search", obj(
		"query", obj("match", obj("body", "inverted index")),
		"highlight", obj("fields", obj("body", obj("fragment_size", 60)))))
	h := hitList(out)[0]
	frags := h["highlight"].(map[string]any)["body"].([]any)
	joined := fmt.Sprint(frags...)
	if !strings.Contains(joined, "<em>inverted</em> <em>index</em>") {
		t.Errorf("fragments %q lack the marked terms", joined)
	}
	// custom tags, stemmed French match marks the original word
	out = s.must(200, "POST", "/recettes/_search", obj(
		"query", obj("match", obj("texte", "pomme")),
		"highlight", obj("pre_tags", list("<b>"), "post_tags", list("</b>"), "fields", obj("texte", obj("number_of_fragments", 0)))))
	frag := hitList(out)[0]["highlight"].(map[string]any)["texte"].([]any)[0].(string)
	if frag != "Épluchez les <b>pommes</b>, étalez la pâte et faites cuire la tarte quarante minutes." {
		t.Errorf("whole-field highlight: %q", frag)
	}
}

func TestPaginationAndSort(t *testing.T) {
	s := newServer(t)
	var docs []map[string]any
	for i := range 25 {
		docs = append(docs, map[string]any{"_id": fmt.Sprintf("d%02d", i), "n": i, "name": fmt.Sprintf("item %02d", i), "kind": []string{"odd", "even"}[(i+1)%2]})
	}
	s.load("items", nil, docs)
	var seen []string
	for from := 0; from < 25; from += 10 {
		out := s.must(200, "POST", "/items/_search", obj("from", from, "size", 10, "sort", list(obj("n", "desc"))))
		if total(out) != 25 {
			t.Fatalf("total %d", total(out))
		}
		for _, h := range hitList(out) {
			if h["_score"] != nil {
				t.Errorf("sorted by field, _score should be null, got %v", h["_score"])
			}
			seen = append(seen, h["_id"].(string))
		}
	}
	if len(seen) != 25 || seen[0] != "d24" || seen[24] != "d00" {
		t.Errorf("pages: %v", seen)
	}
	// sort values are numbers; a keyword multi-field sorts strings
	out := s.must(200, "GET", "/items/_search?size=2&sort=kind.keyword:asc,n:asc", nil)
	if got := ids(out); !reflect.DeepEqual(got, []string{"d00", "d02"}) {
		t.Errorf("sort by kind then n: %v", got)
	}
	if sv := hitList(out)[0]["sort"].([]any); sv[0] != "even" || sv[1] != 0.0 {
		t.Errorf("sort values %v", sv)
	}
	// sorting on text is refused the Elasticsearch way
	code, errOut := s.do("POST", "/items/_search", obj("sort", list("name")))
	if code != 400 || errType(errOut) != typeIllegalArgument {
		t.Errorf("sort on text: %d %v", code, errOut)
	}
	// the result window is bounded
	code, errOut = s.do("POST", "/items/_search", obj("from", 9995, "size", 10))
	if code != 400 || !strings.Contains(errReason(errOut), "Result window is too large") {
		t.Errorf("window: %d %v", code, errOut)
	}
}

func TestBoolAndRange(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	tests := []struct {
		name string
		q    map[string]any
		want []string
	}{
		{"must+filter", obj("bool", obj("must", obj("match", obj("body", "quick")), "filter", list(obj("term", obj("author.country", "GB"))))), []string{"4", "5"}},
		{"must_not", obj("bool", obj("must", obj("match", obj("body", "fox")), "must_not", obj("term", obj("featured", true)))), []string{"4"}},
		{"should min 2", obj("bool", obj("should", list(obj("term", obj("tags", "performance")), obj("term", obj("tags", "caching")), obj("term", obj("tags", "python"))), "minimum_should_match", 2)), []string{"2"}},
		{"range number", obj("range", obj("price", obj("gt", 5, "lte", 15))), []string{"2", "5", "6"}},
		{"range date", obj("range", obj("published", obj("gte", "2024-02-01", "lt", "2024-03-01"))), []string{"2", "3"}},
		{"range date math", obj("range", obj("published", obj("gte", "2024-03-01||-1M/M", "lte", "2024-02-25||/M"))), []string{"2", "3"}},
		{"terms", obj("terms", obj("tags", list("nature", "examples"))), []string{"4", "5"}},
		{"exists", obj("bool", obj("must_not", obj("exists", obj("field", "author.name")))), nil},
		{"ids", obj("ids", obj("values", list("3", "6", "nope"))), []string{"3", "6"}},
		{"prefix", obj("prefix", obj("tags", "perf")), []string{"2", "3", "6"}},
		{"query_string", obj("query_string", obj("query", "title:(quick OR bears) AND NOT tags:nature")), []string{"4"}},
		{"query_string range", obj("query_string", obj("query", "price:[10 TO 20} AND featured:false")), []string{"2", "6"}},
		{"query_string default AND", obj("query_string", obj("query", "brown fox", "default_operator", "AND", "fields", list("body"))), []string{"4", "5"}},
		{"constant_score", obj("constant_score", obj("filter", obj("term", obj("tags", "queues")))), []string{"3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(s.must(200, "POST", "/articles/_search", obj("query", tt.q, "size", 20)))
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if out := s.must(200, "POST", "/articles/_count", obj("query", obj("term", obj("author.country", "US")))); out["count"] != 2.0 {
		t.Errorf("_count: %v", out)
	}
	if out := s.must(200, "GET", "/articles/_count", nil); out["count"] != 6.0 {
		t.Errorf("_count without a body: %v", out)
	}
}

func TestBulkPartialFailures(t *testing.T) {
	s := newServer(t)
	s.must(200, "PUT", "/shop", obj("mappings", obj("dynamic", "strict", "properties", obj(
		"name", obj("type", "text"), "price", obj("type", "float"), "sold", obj("type", "date")))))
	out := s.bulk("/shop/_bulk",
		obj("index", obj("_id", "a")), obj("name", "Café filtre", "price", 3.5),
		obj("index", obj("_id", "b")), obj("name", "Thé vert", "price", "cher"),
		obj("create", obj("_id", "c")), obj("name", "Chocolat", "color", "brown"),
		obj("create", obj("_id", "a")), obj("name", "again", "price", 1),
		obj("delete", obj("_id", "zz")),
		obj("index", obj("_id", "d", "_index", "other")), obj("free", "form"),
		obj("update", obj("_id", "a")), obj("doc", obj("price", 4)),
		obj("update", obj("_id", "nope")), obj("doc", obj("price", 4)),
	)
	if out["errors"] != true {
		t.Fatalf("errors should be true: %v", out)
	}
	type item struct {
		status int
		result string
		err    string
	}
	var got []item
	for _, it := range out["items"].([]any) {
		for _, v := range it.(map[string]any) {
			m := v.(map[string]any)
			var i item
			i.status = int(m["status"].(float64))
			i.result, _ = m["result"].(string)
			if e, ok := m["error"].(map[string]any); ok {
				i.err = e["type"].(string)
			}
			got = append(got, i)
		}
	}
	want := []item{
		{201, "created", ""},
		{400, "", typeMapperParsing},
		{400, "", typeStrictMapping},
		{409, "", typeVersionConflict},
		{404, "not_found", ""},
		{201, "created", ""},
		{200, "updated", ""},
		{404, "", typeDocMissing},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("items:\n got %v\nwant %v", got, want)
	}
	doc := s.must(200, "GET", "/shop/_doc/a", nil)
	if doc["_version"] != 2.0 || doc["_source"].(map[string]any)["price"] != 4.0 || doc["_source"].(map[string]any)["name"] != "Café filtre" {
		t.Errorf("updated doc: %v", doc)
	}
	s.must(404, "GET", "/shop/_doc/b", nil)
}

func TestBadRequests(t *testing.T) {
	s := newServer(t)
	s.load("articles", articlesMapping, articles)
	tests := []struct {
		name, method, path string
		body               any
		status             int
		typ                string
		reason             string // a part of it
	}{
		{"bad json", "POST", "/articles/_search", `{"query": {"match": `, 400, typeXContent, "failed to parse JSON"},
		{"trailing data", "POST", "/articles/_search", `{"query": {"match_all": {}}} x`, 400, typeXContent, ""},
		{"unknown query", "POST", "/articles/_search", obj("query", obj("matchh", obj("title", "x"))), 400, typeParsing, "unknown query [matchh]"},
		{"two queries in one", "POST", "/articles/_search", obj("query", obj("match", obj("title", "x"), "term", obj("tags", "y"))), 400, typeParsing, "malformed"},
		{"unsupported query", "POST", "/articles/_search", obj("query", obj("nested", obj("path", "a"))), 400, typeUnsupported, "query [nested]"},
		{"unsupported agg", "POST", "/articles/_search", obj("aggs", obj("p", obj("percentiles", obj("field", "price")))), 400, typeUnsupported, "aggregation type [percentiles]"},
		{"unsupported sub agg", "POST", "/articles/_search", obj("aggs", obj("t", obj("terms", obj("field", "tags"), "aggs", obj("x", obj("top_hits", obj()))))), 400, typeUnsupported, "aggregation type [top_hits]"},
		{"sub aggs under a metric", "POST", "/articles/_search", obj("aggs", obj("t", obj("avg", obj("field", "price"), "aggs", obj("x", obj("terms", obj("field", "tags")))))), 400, "aggregation_initialization_exception", "cannot accept sub-aggregations"},
		{"unsupported search key", "POST", "/articles/_search", obj("suggest", obj()), 400, typeUnsupported, "[suggest]"},
		{"bad fuzziness", "POST", "/articles/_search", obj("query", obj("match", obj("title", obj("query", "x", "fuzziness", "lots")))), 400, typeParsing, "fuzziness"},
		{"bad number", "POST", "/articles/_search", obj("query", obj("term", obj("price", "cheap"))), 400, "query_shard_exception", "not a number"},
		{"bad query string", "POST", "/articles/_search", obj("query", obj("query_string", obj("query", "title:(quick"))), 400, "query_shard_exception", "Failed to parse query"},
		{"no index", "POST", "/nope/_search", obj(), 404, typeIndexNotFound, "no such index [nope]"},
		{"bad index name", "PUT", "/Bad*Name", obj(), 400, typeInvalidIndex, "Invalid index name"},
		{"exists", "PUT", "/articles", obj(), 400, typeIndexExists, "already exists"},
		{"bad mapping type", "PUT", "/x", obj("mappings", obj("properties", obj("a", obj("type", "strnig")))), 400, typeMapperParsing, "no handler for type [strnig]"},
		{"unknown analyzer", "PUT", "/x", obj("mappings", obj("properties", obj("a", obj("type", "text", "analyzer", "klingon")))), 400, typeMapperParsing, "analyzer [klingon]"},
		{"unknown param", "PUT", "/x", obj("mappings", obj("properties", obj("a", obj("type", "text", "colour", "red")))), 400, typeMapperParsing, "unknown parameter [colour]"},
		{"bad document", "PUT", "/articles/_doc/9", `[1,2]`, 400, typeMapperParsing, "failed to parse"},
		{"bad bulk", "POST", "/_bulk", "{\"index\": {\"_index\": \"a\"}}\n", 400, typeIllegalArgument, "terminated by a newline"},
		{"unknown bulk action", "POST", "/_bulk", "{\"upsert\": {}}\n{}\n", 400, typeIllegalArgument, "Malformed action/metadata line [1]"},
		{"unsupported api", "POST", "/articles/_msearch", obj(), 400, typeUnsupported, "[/articles/_msearch] API"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := s.do(tt.method, tt.path, tt.body)
			if code != tt.status || errType(out) != tt.typ || !strings.Contains(errReason(out), tt.reason) {
				t.Errorf("got %d %s %q, want %d %s containing %q", code, errType(out), errReason(out), tt.status, tt.typ, tt.reason)
			}
			if out["status"] != float64(tt.status) {
				t.Errorf("body status %v", out["status"])
			}
			if root := out["error"].(map[string]any)["root_cause"]; root == nil {
				t.Errorf("no root_cause: %v", out)
			}
		})
	}
	code, out := s.do("PATCH", "/articles/_search", nil)
	if code != 405 || !strings.Contains(fmt.Sprint(out["error"]), "Incorrect HTTP method") {
		t.Errorf("405: %d %v", code, out)
	}
}
