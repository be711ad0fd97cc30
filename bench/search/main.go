// Command search measures pier's full-text search (issue #7): bulk
// indexing throughput and query latency (p50, p99) on a generated corpus of
// English-like articles (100,000 by default), through the real
// Elasticsearch-compatible HTTP API on a loopback port, with real bleve
// indexes on disk. Every run is bounded by -docs, -queries and -timeout.
//
//	go run ./bench/search [-docs 100000] [-batch 1000] [-queries 300] [-timeout 10m] [-cpuprofile FILE]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"pier/internal/search"
)

func main() {
	docs := flag.Int("docs", 100000, "documents in the corpus")
	batch := flag.Int("batch", 1000, "documents per _bulk request")
	queries := flag.Int("queries", 300, "queries of each kind")
	timeout := flag.Duration("timeout", 10*time.Minute, "stop after this long, whatever is left")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (engine side included: it runs in this process) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *docs, *batch, *queries); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// corpus generates articles from a vocabulary with a Zipf distribution of
// words, like natural text, so that common and rare terms both occur.
type corpus struct {
	rng   *rand.Rand
	zipf  *rand.Zipf
	words []string
	tags  []string
}

var syllables = []string{"ka", "lo", "mi", "ser", "ta", "vin", "dor", "pe", "ru", "sa", "ne", "qui", "bra", "tel", "on", "ar", "is", "um", "ex", "po"}

// newCorpus returns a generator over the same vocabulary whatever the
// seed, which only changes the sequence of documents or query words.
func newCorpus(seed uint64) *corpus {
	rng := rand.New(rand.NewPCG(1, 0x9e3779b97f4a7c15))
	c := &corpus{rng: rng}
	seen := map[string]bool{}
	for len(c.words) < 20000 {
		n := 1 + rng.IntN(4) // 20^4 possible words: enough distinct ones
		var b strings.Builder
		for range n {
			b.WriteString(syllables[rng.IntN(len(syllables))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			c.words = append(c.words, w)
		}
	}
	c.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	c.zipf = rand.NewZipf(c.rng, 1.1, 2, uint64(len(c.words)-1))
	for i := range 60 {
		c.tags = append(c.tags, fmt.Sprintf("tag-%02d", i))
	}
	return c
}

func (c *corpus) word() string { return c.words[c.zipf.Uint64()] }

func (c *corpus) text(min, max int) string {
	n := min + c.rng.IntN(max-min+1)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = c.word()
	}
	return strings.Join(parts, " ")
}

func (c *corpus) doc() map[string]any {
	tags := []string{c.tags[c.rng.IntN(len(c.tags))], c.tags[c.rng.IntN(10)]}
	return map[string]any{
		"title":     c.text(4, 10),
		"body":      c.text(60, 160),
		"tags":      tags,
		"category":  []string{"news", "sport", "culture", "tech", "food"}[c.rng.IntN(5)],
		"price":     float64(c.rng.IntN(10000)) / 100,
		"published": time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(c.rng.Int64N(int64(3 * 365 * 24 * time.Hour)))).Format(time.RFC3339),
	}
}

const mapping = `{"mappings": {"properties": {
	"title": {"type": "text", "analyzer": "english"},
	"body": {"type": "text", "analyzer": "english"},
	"tags": {"type": "keyword"},
	"category": {"type": "keyword"},
	"price": {"type": "float"},
	"published": {"type": "date"}}}}`

func run(ctx context.Context, ndocs, batch, nqueries int) error {
	dir, err := os.MkdirTemp("", "pier-bench-search-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	svc, err := search.Open(search.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer svc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc.Handler(func(r *http.Request) (string, string, error) { return "bench", r.URL.Path, nil })}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 2 * time.Minute}
	call := func(method, path string, body []byte) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
		return data, nil
	}

	printMachine(ndocs, batch)
	if _, err := call("PUT", "/articles", []byte(mapping)); err != nil {
		return err
	}

	// indexing: _bulk requests of batch documents
	c := newCorpus(1)
	var rates []float64
	started := time.Now()
	indexed := 0
	for indexed < ndocs && ctx.Err() == nil {
		n := min(batch, ndocs-indexed)
		var b bytes.Buffer
		for i := range n {
			fmt.Fprintf(&b, `{"index":{"_id":"%d"}}`+"\n", indexed+i)
			data, _ := json.Marshal(c.doc())
			b.Write(data)
			b.WriteByte('\n')
		}
		t0 := time.Now()
		out, err := call("POST", "/articles/_bulk", b.Bytes())
		if err != nil {
			return err
		}
		if bytes.Contains(out[:min(len(out), 64)], []byte(`"errors":true`)) {
			return fmt.Errorf("bulk reported errors: %.300s", out)
		}
		rates = append(rates, float64(n)/time.Since(t0).Seconds())
		indexed += n
	}
	elapsed := time.Since(started)
	fmt.Printf("indexing   %d docs in %.1fs: %.0f docs/s overall, median _bulk of %d: %.0f docs/s\n",
		indexed, elapsed.Seconds(), float64(indexed)/elapsed.Seconds(), batch, median(rates))
	if ctx.Err() != nil {
		return fmt.Errorf("timed out while indexing")
	}

	// queries: a few kinds, each with fresh random words
	q := newCorpus(2)
	kinds := []struct {
		name string
		body func() any
	}{
		{"match 2 words", func() any {
			return map[string]any{"query": map[string]any{"match": map[string]any{"body": q.word() + " " + q.word()}}}
		}},
		{"match_phrase", func() any {
			return map[string]any{"query": map[string]any{"match_phrase": map[string]any{"body": q.word() + " " + q.word()}}}
		}},
		{"bool+filter+range", func() any {
			return map[string]any{"query": map[string]any{"bool": map[string]any{
				"must":   map[string]any{"match": map[string]any{"title": q.word()}},
				"filter": []any{map[string]any{"term": map[string]any{"category": "tech"}}, map[string]any{"range": map[string]any{"price": map[string]any{"lt": 50}}}},
			}}}
		}},
		{"fuzzy AUTO", func() any {
			return map[string]any{"query": map[string]any{"match": map[string]any{"title": map[string]any{"query": q.word(), "fuzziness": "AUTO"}}}}
		}},
		{"highlight", func() any {
			return map[string]any{"query": map[string]any{"match": map[string]any{"body": q.word()}}, "highlight": map[string]any{"fields": map[string]any{"body": map[string]any{}}}}
		}},
		{"aggs terms+histogram", func() any {
			return map[string]any{"size": 0, "query": map[string]any{"match": map[string]any{"body": q.word()}}, "aggs": map[string]any{
				"tags":  map[string]any{"terms": map[string]any{"field": "tags"}},
				"month": map[string]any{"date_histogram": map[string]any{"field": "published", "calendar_interval": "month"}},
			}}
		}},
		{"aggs sub-aggs+stats", func() any {
			return map[string]any{"size": 0, "query": map[string]any{"match": map[string]any{"body": q.word()}}, "aggs": map[string]any{
				"category": map[string]any{"terms": map[string]any{"field": "category"}, "aggs": map[string]any{
					"price": map[string]any{"avg": map[string]any{"field": "price"}}}},
				"month": map[string]any{"date_histogram": map[string]any{"field": "published", "calendar_interval": "month"}, "aggs": map[string]any{
					"tags": map[string]any{"terms": map[string]any{"field": "tags", "size": 3}}}},
				"price": map[string]any{"stats": map[string]any{"field": "price"}},
			}}
		}},
		{"simple_query_string", func() any {
			return map[string]any{"query": map[string]any{"simple_query_string": map[string]any{
				"query": q.word() + " +" + q.word() + "* -" + q.word(), "fields": []string{"title^2", "body"}}}}
		}},
	}
	for _, k := range kinds {
		var lat []time.Duration
		hits := 0
		for range nqueries {
			if ctx.Err() != nil {
				break
			}
			body, _ := json.Marshal(k.body())
			t0 := time.Now()
			out, err := call("POST", "/articles/_search", body)
			if err != nil {
				return err
			}
			lat = append(lat, time.Since(t0))
			var res struct {
				Hits struct {
					Total struct{ Value int } `json:"total"`
				} `json:"hits"`
			}
			json.Unmarshal(out, &res)
			hits += res.Hits.Total.Value
		}
		slices.Sort(lat)
		if len(lat) == 0 {
			break
		}
		fmt.Printf("query      %-22s n=%-4d p50 %7.2fms  p99 %7.2fms  (%d hits on average)\n", k.name, len(lat), ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), hits/len(lat))
	}
	var size int64
	filepathWalk(dir, &size)
	fmt.Printf("disk       %.0f MB for %d docs\n", float64(size)/(1<<20), indexed)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func printMachine(ndocs, batch int) {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	fmt.Printf("pier search bench: %d generated English-like docs (~110 words each), _bulk of %d, over HTTP on loopback\n", ndocs, batch)
	fmt.Printf("machine    %s, %d CPUs (GOMAXPROCS %d), %s, bleve v2.6.1 scorch, durable writes\n", model, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
}

func filepathWalk(dir string, size *int64) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := dir + "/" + e.Name()
		if e.IsDir() {
			filepathWalk(p, size)
		} else if fi, err := e.Info(); err == nil {
			*size += fi.Size()
		}
	}
}
