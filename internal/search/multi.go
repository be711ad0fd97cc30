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
// IndexAlias merges them: hits in the requested order, totals summed.
// Aggregations collect the documents of every index into the same
// buckets. Every hit names the index it comes from.
func SearchIndexes(ctx context.Context, ixs []*Index, body []byte, params url.Values) (map[string]any, error) {
	started := time.Now()
	byName := make(map[string]*Index, len(ixs))
	reqs := make([]*searchRequest, len(ixs))
	for i, ix := range ixs {
		release, err := ix.use()
		if err != nil {
			return nil, err
		}
		defer release()
		if reqs[i], err = ix.parseSearch(ctx, body, params, ix.meta()); err != nil {
			return nil, err
		}
		byName[ix.Name] = ix
	}
	first := reqs[0]
	var states []*aggState // what the aggregations collect, over every index
	if len(first.aggs) > 0 {
		others := make([][]*agg, 0, len(reqs)-1)
		for _, r := range reqs[1:] {
			others = append(others, r.aggs)
		}
		if err := adoptMappings(first.aggs, others); err != nil {
			return nil, err
		}
		states = newStates(first.aggs)
	}
	var (
		order  search.SortOrder
		merged *bleve.SearchResult
	)
	for i, ix := range ixs {
		r := reqs[i]
		from, size := r.from, r.size
		if len(ixs) > 1 {
			from, size = 0, r.from+r.size
		}
		sctx := ctx
		if len(r.aggs) > 0 {
			sctx = withCollector(ctx, newAggCollector(r.aggs, states))
		}
		q := r.query
		if r.hitsQuery != nil {
			// post_filter: the aggregations see what the query matches,
			// the hits what the filter keeps of it
			if len(r.aggs) > 0 {
				if _, err := ix.bi.SearchInContext(sctx, bleve.NewSearchRequestOptions(r.query, 0, 0, false)); err != nil {
					return nil, searchError(err)
				}
				sctx = ctx
			}
			q = r.hitsQuery
		}
		req := bleve.NewSearchRequestOptions(q, size, from, false)
		req.Fields = []string{fieldSource}
		if r.sort != nil {
			req.SortByCustom(r.sort)
		}
		req.SearchAfter = r.searchAfter
		req.IncludeLocations = r.highlight != nil
		if size == 0 {
			// no hits to rank (aggregations, counts): skip scoring
			req.Score = bleve.ScoreNone
		}
		res, err := ix.bi.SearchInContext(sctx, req)
		if err != nil {
			return nil, searchError(err)
		}
		for _, h := range res.Hits {
			h.Index = ix.Name
		}
		if merged == nil {
			order, merged = req.Sort, res
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
	}
	return first.answer(merged, byName, states, started)
}

// answer renders a bleve result in Elasticsearch's shape; indexes holds
// the index of every hit by name.
func (r *searchRequest) answer(res *bleve.SearchResult, indexes map[string]*Index, states []*aggState, started time.Time) (map[string]any, error) {
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
		if len(r.aggs) == 0 {
			states = nil
		}
		aggs, err := aggResults(r.aggs, states)
		if err != nil {
			return nil, err
		}
		out["aggregations"] = aggs
	}
	return out, nil
}
