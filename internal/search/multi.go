package search

import (
	"context"
	"net/url"
	"slices"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
)

// Search runs an Elasticsearch search on the index and returns the answer.
func (ix *Index) Search(ctx context.Context, body []byte, params url.Values) (map[string]any, error) {
	return SearchIndexes(ctx, []*Index{ix}, body, params)
}

// SearchIndexes runs one Elasticsearch search over several indexes of an
// app ("POST /a,b/_search", "/_search"). Each index translates the request
// with its own mapping (a field may be text in one and keyword in another)
// and returns its best from+size hits; the answers are merged as bleve's
// IndexAlias merges them: hits in the requested order, totals summed,
// facets merged. Every hit names the index it comes from.
func SearchIndexes(ctx context.Context, ixs []*Index, body []byte, params url.Values) (map[string]any, error) {
	started := time.Now()
	byName := make(map[string]*Index, len(ixs))
	var (
		first  *searchRequest
		order  search.SortOrder
		merged *bleve.SearchResult
	)
	for _, ix := range ixs {
		release, err := ix.use()
		if err != nil {
			return nil, err
		}
		defer release()
		r, err := ix.parseSearch(ctx, body, params, ix.meta())
		if err != nil {
			return nil, err
		}
		from, size := r.from, r.size
		if len(ixs) > 1 {
			for _, a := range r.aggs {
				if a.kind == "date_histogram" {
					// its buckets are drawn from each index's own dates
					return nil, unsupported("[date_histogram] aggregations over several indexes ([%s])", a.name)
				}
			}
			from, size = 0, r.from+r.size
		}
		req := bleve.NewSearchRequestOptions(r.query, size, from, false)
		req.Fields = []string{fieldSource}
		if r.sort != nil {
			req.SortByCustom(r.sort)
		}
		req.Facets = r.facets
		req.IncludeLocations = r.highlight != nil
		res, err := ix.bi.SearchInContext(ctx, req)
		if err != nil {
			return nil, searchError(err)
		}
		for _, h := range res.Hits {
			h.Index = ix.Name
		}
		byName[ix.Name] = ix
		into := r.aggs
		if first != nil {
			into = first.aggs
		}
		if err := collectMetrics(ctx, ix, r.query, into); err != nil {
			return nil, err
		}
		if merged == nil {
			first, order, merged = r, req.Sort, res
			continue
		}
		merged.Merge(res)
	}
	if len(ixs) > 1 {
		scoring, desc := order.CacheIsScore(), order.CacheDescending()
		slices.SortStableFunc(merged.Hits, func(a, b *search.DocumentMatch) int {
			return order.Compare(scoring, desc, a, b)
		})
		lo, hi := min(first.from, len(merged.Hits)), min(first.from+first.size, len(merged.Hits))
		merged.Hits = merged.Hits[lo:hi]
		for name, fr := range first.facets {
			merged.Facets.Fixup(name, fr.Size)
		}
	}
	return first.answer(merged, byName, started), nil
}

// answer renders a bleve result in Elasticsearch's shape; indexes holds
// the index of every hit by name.
func (r *searchRequest) answer(res *bleve.SearchResult, indexes map[string]*Index, started time.Time) map[string]any {
	hits := make([]any, 0, len(res.Hits))
	var maxScore any
	if r.byScore || r.trackScores {
		maxScore = res.MaxScore
		if len(res.Hits) == 0 {
			maxScore = nil
		}
	}
	for _, h := range res.Hits {
		ix := indexes[h.Index]
		src, _ := h.Fields[fieldSource].(string)
		hit := map[string]any{"_index": ix.Name, "_id": h.ID, "_score": nil}
		if r.byScore || r.trackScores {
			hit["_score"] = h.Score
		}
		if src != "" {
			if out, ok := r.source.apply([]byte(src)); ok {
				hit["_source"] = out
			}
		}
		if r.highlight != nil {
			if hl := r.highlight.fragments(h, []byte(src), ix.meta(), ix.bi.Mapping()); len(hl) > 0 {
				hit["highlight"] = hl
			}
		}
		if r.sort != nil {
			hit["sort"] = sortValues(h, r.sortKinds)
		}
		hits = append(hits, hit)
	}
	n := len(indexes)
	out := map[string]any{
		"took":      time.Since(started).Milliseconds(),
		"timed_out": false,
		"_shards":   map[string]any{"total": n, "successful": n, "skipped": 0, "failed": 0},
	}
	hitsObj := map[string]any{"max_score": maxScore, "hits": hits}
	total, relation := int(res.Total), "eq"
	if r.totalCap > 0 && total > r.totalCap {
		total, relation = r.totalCap, "gte"
	}
	switch {
	case r.totalAsInt:
		hitsObj["total"] = total
	case r.totalCap != 0:
		hitsObj["total"] = map[string]any{"value": total, "relation": relation}
	}
	out["hits"] = hitsObj
	if r.aggs != nil {
		aggs := map[string]any{}
		for _, a := range r.aggs {
			aggs[a.name] = a.result(res.Facets[a.name])
		}
		out["aggregations"] = aggs
	}
	return out
}
