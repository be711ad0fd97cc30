package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// esNodeResult is what test/node/es-client.mjs prints: the parsed answers
// of the official Node.js Elasticsearch client.
type esNodeResult struct {
	Info struct {
		Version struct {
			Number string `json:"number"`
		} `json:"version"`
		Tagline string `json:"tagline"`
	} `json:"info"`
	Ping   bool `json:"ping"`
	Create struct {
		Acknowledged bool   `json:"acknowledged"`
		Index        string `json:"index"`
	} `json:"create"`
	Exists bool `json:"exists"`
	Bulk   struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int    `json:"status"`
			Result string `json:"result"`
		} `json:"items"`
	} `json:"bulk"`
	Search esNodeHits `json:"search"`
	Multi  esNodeHits `json:"multi"`
	All    esNodeHits `json:"all"`
	Aggs   struct {
		Aggregations struct {
			Genres struct {
				Buckets []struct {
					Key      string `json:"key"`
					DocCount int    `json:"doc_count"`
				} `json:"buckets"`
			} `json:"genres"`
			AvgPrice struct{ Value float64 } `json:"avg_price"`
			MaxYear  struct{ Value float64 } `json:"max_year"`
		} `json:"aggregations"`
	} `json:"aggs"`
	Count       struct{ Count int } `json:"count"`
	CountNovels struct{ Count int } `json:"countNovels"`
	Unsupported *struct {
		Name   string `json:"name"`
		Status int    `json:"status"`
		Type   string `json:"type"`
	} `json:"unsupported"`
}

type esNodeHits struct {
	Hits struct {
		Total struct {
			Value int `json:"value"`
		} `json:"total"`
		Hits []struct {
			Index     string              `json:"_index"`
			ID        string              `json:"_id"`
			Score     float64             `json:"_score"`
			Highlight map[string][]string `json:"highlight"`
		} `json:"hits"`
	} `json:"hits"`
}

// ids lists the hits as "index/id", in order.
func (h esNodeHits) ids() []string {
	var out []string
	for _, hit := range h.Hits.Hits {
		out = append(out, hit.Index+"/"+hit.ID)
	}
	return out
}

// TestSearchNodeClient drives the search API with @elastic/elasticsearch,
// the official Node.js client, with the ELASTICSEARCH_URL a deployed app
// is given: the client's product check, compatibility headers and
// response parsing must all accept pier's answers.
func TestSearchNodeClient(t *testing.T) {
	nodeDir := filepath.Join(repoRoot(t), "test", "node")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "@elastic", "elasticsearch")); err != nil {
		t.Fatalf("@elastic/elasticsearch missing in %s: run scripts/test-deps.sh", nodeDir)
	}
	e := startEngine(t)
	e.must(writeApp(t, searchApp), "deploy")
	code, esURL := e.get("notes", "/")
	if code != 200 || !strings.Contains(esURL, "/_pier/search") {
		t.Fatalf("ELASTICSEARCH_URL: %d %q", code, esURL)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "es-client.mjs")
	node.Dir = nodeDir
	node.Env = append(os.Environ(), "ELASTICSEARCH_URL="+esURL)
	var stderr strings.Builder
	node.Stderr = &stderr
	data, err := node.Output()
	if err != nil {
		t.Fatalf("node es-client.mjs: %v\n%s", err, stderr.String())
	}
	var got esNodeResult
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("node output: %v\n%s", err, data)
	}

	if got.Info.Version.Number == "" || got.Info.Tagline != "You Know, for Search" || !got.Ping {
		t.Errorf("info %+v, ping %v", got.Info, got.Ping)
	}
	if !got.Create.Acknowledged || got.Create.Index != "books" || !got.Exists {
		t.Errorf("create %+v, exists %v", got.Create, got.Exists)
	}
	if got.Bulk.Errors || len(got.Bulk.Items) != 5 || got.Bulk.Items[0]["index"].Status != 201 {
		t.Errorf("bulk: %+v", got.Bulk)
	}

	// "sea" in the English-analyzed title: three books, highlighted
	if ids := got.Search.ids(); got.Search.Hits.Total.Value != 3 || len(ids) != 3 {
		t.Errorf("search sea: total %d, hits %v, want 3", got.Search.Hits.Total.Value, ids)
	}
	for _, hit := range got.Search.Hits.Hits {
		if hl := hit.Highlight["title"]; len(hl) == 0 || !strings.Contains(hl[0], "<em>Sea</em>") {
			t.Errorf("hit %s: highlight %q, want <em>Sea</em>", hit.ID, hl)
		}
	}

	buckets := got.Aggs.Aggregations.Genres.Buckets
	if len(buckets) != 2 || buckets[0].Key != "novel" || buckets[0].DocCount != 3 || buckets[1].Key != "essay" || buckets[1].DocCount != 2 {
		t.Errorf("genres: %+v, want novel 3, essay 2", buckets)
	}
	if a := got.Aggs.Aggregations; a.AvgPrice.Value != 13 || a.MaxYear.Value != 2022 {
		t.Errorf("avg price %v (want 13), max year %v (want 2022)", a.AvgPrice.Value, a.MaxYear.Value)
	}
	if got.Count.Count != 5 || got.CountNovels.Count != 3 {
		t.Errorf("count %d (want 5), novels %d (want 3)", got.Count.Count, got.CountNovels.Count)
	}

	// several indexes in one search: each hit names its own index
	for name, res := range map[string]esNodeHits{"books,films": got.Multi, "all": got.All} {
		ids := res.ids()
		if res.Hits.Total.Value != 4 || !slices.Contains(ids, "films/f1") || !slices.Contains(ids, "books/3") {
			t.Errorf("search %s: total %d, hits %v, want the 3 books and films/f1", name, res.Hits.Total.Value, ids)
		}
	}

	if u := got.Unsupported; u == nil || u.Name != "ResponseError" || u.Status != 400 || u.Type != "unsupported_operation_exception" {
		t.Errorf("more_like_this: %+v, want a ResponseError 400 unsupported_operation_exception", u)
	}
}
