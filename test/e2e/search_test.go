package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"
)

// searchApp is a Python app that shows the ELASTICSEARCH_URL it was given.
var searchApp = map[string]string{
	"pier.yaml": "name: notes\nprocesses:\n  web: python3 app.py\nhealth: {path: /healthz}\n",
	"app.py": `import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (os.environ.get("ELASTICSEARCH_URL", "") if self.path == "/" else "ok").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
}

// esClient is the official Go Elasticsearch client pointed at url.
func esClient(t *testing.T, u string) *elasticsearch.Client {
	t.Helper()
	es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{u}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// esDo returns a reader of client answers as JSON that fails the test on
// an error status: esDo(t, "search")(es.Search(...)).
func esDo(t *testing.T, what string) func(*esapi.Response, error) map[string]any {
	return func(resp *esapi.Response, err error) map[string]any {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s: %d %s", what, resp.StatusCode, data)
		}
		var out map[string]any
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s: %v: %s", what, err, data)
		}
		return out
	}
}

func TestSearchEndToEnd(t *testing.T) {
	e := startEngine(t)
	e.must(writeApp(t, searchApp), "deploy")
	code, esURL := e.get("notes", "/")
	if code != 200 || !strings.Contains(esURL, "/_pier/search") {
		t.Fatalf("ELASTICSEARCH_URL: %d %q", code, esURL)
	}
	u, err := url.Parse(esURL)
	if err != nil || u.User.Username() != "notes" {
		t.Fatalf("ELASTICSEARCH_URL %q: want the app's credentials in it", esURL)
	}
	es := esClient(t, esURL)
	ctx := context.Background()

	// create an index with a French mapping, bulk-load, search, aggregate
	esDo(t, "create")(es.Indices.Create("recettes", es.Indices.Create.WithBody(strings.NewReader(`{
		"mappings": {"properties": {
			"titre": {"type": "text", "analyzer": "french"},
			"region": {"type": "keyword"},
			"minutes": {"type": "integer"}}}}`))))
	bulk := `{"index":{"_id":"1"}}
{"titre":"La tarte aux pommes de ma grand-mère","region":"Normandie","minutes":60}
{"index":{"_id":"2"}}
{"titre":"Les crêpes bretonnes","region":"Bretagne","minutes":20}
{"index":{"_id":"3"}}
{"titre":"Le cidre et les pommes du pays d'Auge","region":"Normandie","minutes":5}
{"index":{"_id":"4"}}
{"titre":"Pommes de terre sautées","region":"Auvergne","minutes":"longtemps"}
`
	out := esDo(t, "bulk")(es.Bulk(strings.NewReader(bulk), es.Bulk.WithIndex("recettes"), es.Bulk.WithContext(ctx)))
	if out["errors"] != true {
		t.Errorf("bulk: the fourth document has a bad number and should fail: %v", out)
	}
	out = esDo(t, "search")(es.Search(es.Search.WithIndex("recettes"), es.Search.WithBody(esutil.NewJSONReader(map[string]any{
		"query":     map[string]any{"match": map[string]any{"titre": "pomme"}},
		"highlight": map[string]any{"fields": map[string]any{"titre": map[string]any{}}},
		"aggs":      map[string]any{"regions": map[string]any{"terms": map[string]any{"field": "region"}}},
	}))))
	hits := out["hits"].(map[string]any)
	if n := hits["total"].(map[string]any)["value"]; n != 2.0 {
		t.Errorf("hits for pomme: %v, want 2: %v", n, out)
	}
	first := hits["hits"].([]any)[0].(map[string]any)
	if hl := first["highlight"].(map[string]any)["titre"].([]any)[0].(string); !strings.Contains(hl, "<em>pommes</em>") {
		t.Errorf("highlight %q", hl)
	}
	buckets := out["aggregations"].(map[string]any)["regions"].(map[string]any)["buckets"].([]any)
	if b := buckets[0].(map[string]any); b["key"] != "Normandie" || b["doc_count"] != 2.0 {
		t.Errorf("regions: %v", buckets)
	}
	out = esDo(t, "count")(es.Count(es.Count.WithIndex("recettes")))
	if out["count"] != 3.0 {
		t.Errorf("count %v, want 3", out["count"])
	}

	// sub-aggregations, stats, simple_query_string and search_after through
	// the official client
	out = esDo(t, "search with sub-aggregations")(es.Search(es.Search.WithIndex("recettes"), es.Search.WithBody(esutil.NewJSONReader(map[string]any{
		"size":  1,
		"query": map[string]any{"simple_query_string": map[string]any{"query": "pommes | crêpes", "fields": []string{"titre"}}},
		"sort":  []any{map[string]any{"minutes": "asc"}},
		"aggs": map[string]any{
			"regions": map[string]any{"terms": map[string]any{"field": "region"},
				"aggs": map[string]any{"time": map[string]any{"avg": map[string]any{"field": "minutes"}}}},
			"minutes": map[string]any{"stats": map[string]any{"field": "minutes"}},
		},
	}))))
	if ids := hitIDs(out); len(ids) != 1 || ids[0] != "3" {
		t.Errorf("first page by minutes: %v, want [3]", ids)
	}
	buckets = out["aggregations"].(map[string]any)["regions"].(map[string]any)["buckets"].([]any)
	if b := buckets[0].(map[string]any); b["key"] != "Normandie" || b["time"].(map[string]any)["value"] != 32.5 {
		t.Errorf("regions > avg minutes: %v", buckets)
	}
	if st := out["aggregations"].(map[string]any)["minutes"].(map[string]any); st["count"] != 3.0 || st["max"] != 60.0 {
		t.Errorf("stats of minutes: %v", st)
	}
	last := out["hits"].(map[string]any)["hits"].([]any)[0].(map[string]any)["sort"]
	out = esDo(t, "search_after")(es.Search(es.Search.WithIndex("recettes"), es.Search.WithBody(esutil.NewJSONReader(map[string]any{
		"size":         5,
		"query":        map[string]any{"simple_query_string": map[string]any{"query": "pommes | crêpes", "fields": []string{"titre"}}},
		"sort":         []any{map[string]any{"minutes": "asc"}},
		"search_after": last,
	}))))
	if ids := hitIDs(out); !slices.Equal(ids, []string{"2", "1"}) {
		t.Errorf("after the first page: %v, want [2 1]", ids)
	}

	// the credentials are the app's: no password, a wrong one, or another
	// app's name are refused
	noAuth := *u
	noAuth.User = nil
	other := *u
	pass, _ := u.User.Password()
	other.User = url.UserPassword("other", pass)
	wrong := *u
	wrong.User = url.UserPassword("notes", pass+"x")
	for _, bad := range []*url.URL{&noAuth, &other, &wrong} {
		resp, err := http.Get(bad.String() + "/recettes/_count")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: status %d, want 401", bad.Redacted(), resp.StatusCode)
		}
	}

	// the CLI lists the index and runs a query with the admin token
	list := e.must(t.TempDir(), "search", "--app", "notes")
	if !strings.Contains(list, "recettes") || !strings.Contains(list, "3") {
		t.Errorf("pier search:\n%s", list)
	}
	found := e.must(t.TempDir(), "search", "--app", "notes", "recettes", "crêpes")
	if !strings.Contains(found, "1 hits") || !strings.Contains(found, "[crêpes]") {
		t.Errorf("pier search recettes crêpes:\n%s", found)
	}

	// acknowledged writes survive kill -9 of the engine
	esDo(t, "index")(es.Index("recettes", strings.NewReader(`{"titre":"Galette des rois","region":"Île-de-France","minutes":45}`), es.Index.WithDocumentID("5")))
	e.kill9()
	e.start()
	doc := esDo(t, "get after kill -9")(es.Get("recettes", "5"))
	if doc["found"] != true || !strings.Contains(doc["_source"].(map[string]any)["titre"].(string), "Galette") {
		t.Errorf("after kill -9: %v", doc)
	}
	out = esDo(t, "count after kill -9")(es.Count(es.Count.WithIndex("recettes")))
	if out["count"] != 4.0 {
		t.Errorf("count after kill -9: %v, want 4", out["count"])
	}
}

// hitIDs are the _id of a search answer's hits, in order.
func hitIDs(out map[string]any) []string {
	var ids []string
	for _, h := range out["hits"].(map[string]any)["hits"].([]any) {
		ids = append(ids, h.(map[string]any)["_id"].(string))
	}
	return ids
}
