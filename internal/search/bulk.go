package search

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// bulkItem is one action of a bulk request, in request order.
type bulkItem struct {
	action string
	index  string
	op     Op
	err    *Error // refused before reaching an index
}

// parseBulk reads an NDJSON bulk body: action lines ({"index": {...}},
// "create", "update", "delete"), each but delete followed by a document
// line. Malformed action lines fail the whole request, as in
// Elasticsearch; bad documents fail their item only.
func parseBulk(body []byte, defaultIndex string) ([]bulkItem, error) {
	lines := bytes.Split(body, []byte("\n"))
	var items []bulkItem
	for i := 0; i < len(lines); i++ {
		line := bytes.TrimSpace(lines[i])
		if len(line) == 0 {
			continue
		}
		var action map[string]map[string]any
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			return nil, illegalArgument("Malformed action/metadata line [%d], expected a JSON object with one of create, delete, index or update", i+1)
		}
		var it bulkItem
		var meta map[string]any
		for k, v := range action {
			it.action, meta = k, v
		}
		switch it.action {
		case "index", "create", "update", "delete":
		default:
			return nil, illegalArgument("Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", i+1, it.action)
		}
		it.index = defaultIndex
		for k, v := range meta {
			s, _ := v.(string)
			switch k {
			case "_index":
				it.index = s
			case "_id":
				it.op.ID = s
				if s == "" {
					it.op.ID = fmt.Sprint(v)
				}
			case "op_type":
				if s == "create" {
					it.action = "create"
				}
			case "retry_on_conflict", "routing", "require_alias", "pipeline", "dynamic_templates":
			case "if_seq_no", "if_primary_term", "version", "version_type":
				it.err = unsupported("[%s] in bulk actions", k)
			default:
				return nil, illegalArgument("Action/metadata line [%d] contains an unknown parameter [%s]", i+1, k)
			}
		}
		if it.index == "" {
			return nil, illegalArgument("Validation Failed: 1: index is missing (line [%d]);", i+1)
		}
		it.op.Action = it.action
		if it.action != "delete" {
			i++
			if i >= len(lines) || len(bytes.TrimSpace(lines[i])) == 0 {
				return nil, illegalArgument("The bulk request must be terminated by a newline [\\n] (no document after the action on line [%d])", i)
			}
			it.op.Source = bytes.TrimSpace(lines[i])
		}
		if it.op.ID == "" {
			if it.action != "index" && it.action != "create" {
				return nil, illegalArgument("Validation Failed: 1: id is missing (line [%d]);", i+1)
			}
			it.op.ID = randomID()
		}
		if it.err == nil {
			if err := checkID(it.op.ID); err != nil {
				it.err = esError(err)
			}
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, illegalArgument("%s", errBulkEmpty.Error())
	}
	return items, nil
}

func (h *handler) bulk(c *call) error {
	started := time.Now()
	def := ""
	if len(c.parts) == 2 {
		def = c.parts[0]
	}
	items, err := parseBulk(c.body, def)
	if err != nil {
		return err
	}
	results, err := h.svc.Bulk(c.r.Context(), c.app, items)
	if err != nil {
		return err
	}
	out := make([]any, len(items))
	errs := false
	for i, it := range items {
		if results[i].Err != nil {
			errs = true
		}
		out[i] = map[string]any{it.action: writeResult(it.index, results[i])}
	}
	c.send(http.StatusOK, map[string]any{"took": time.Since(started).Milliseconds(), "errors": errs, "items": out})
	return nil
}

// Bulk applies items, one batch per index, and returns their results in
// request order.
func (s *Service) Bulk(ctx context.Context, app string, items []bulkItem) ([]Result, error) {
	results := make([]Result, len(items))
	byIndex := map[string][]int{}
	var order []string
	for i, it := range items {
		if it.err != nil {
			results[i] = Result{ID: it.op.ID, Status: it.err.Status, Err: it.err}
			continue
		}
		if _, ok := byIndex[it.index]; !ok {
			order = append(order, it.index)
		}
		byIndex[it.index] = append(byIndex[it.index], i)
	}
	for _, name := range order {
		idx := byIndex[name]
		fail := func(err error) {
			e := esError(err)
			if e.Index == "" {
				e.Index = name
			}
			for _, i := range idx {
				results[i] = Result{ID: items[i].op.ID, Status: e.Status, Err: e}
			}
		}
		onlyDeletes := true
		for _, i := range idx {
			onlyDeletes = onlyDeletes && items[i].action == "delete"
		}
		ix, err := s.Index(ctx, app, name, !onlyDeletes)
		if err != nil {
			fail(err)
			continue
		}
		ops := make([]Op, len(idx))
		for j, i := range idx {
			ops[j] = items[i].op
		}
		res, err := ix.Write(ctx, ops)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			fail(err)
			continue
		}
		for j, i := range idx {
			results[i] = res[j]
		}
	}
	return results, nil
}

// PutMapping adds fields to the mapping (PUT /<index>/_mapping). Existing
// fields cannot change type, as in Elasticsearch.
func (ix *Index) PutMapping(ctx context.Context, body []byte) error {
	release, err := ix.use()
	if err != nil {
		return err
	}
	defer release()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	grown := ix.m.clone()
	if err := parseMapping(body, &grown.Mapping); err != nil {
		return err
	}
	if err := grown.check(); err != nil {
		return err
	}
	batch := ix.bi.NewBatch()
	batch.SetInternal([]byte(internalMeta), mustJSON(grown))
	if err := ix.bi.Batch(batch); err != nil {
		return fmt.Errorf("index %s/%s: put mapping: %w", ix.App, ix.Name, err)
	}
	ix.m = grown
	return nil
}
