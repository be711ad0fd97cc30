package search

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/document"
	index "github.com/blevesearch/bleve_index_api"
)

// Keys of what pier keeps in a bleve index's internal storage.
const (
	internalMeta = "pier.meta" // meta JSON, rewritten in the batch that grows the mapping
	internalSeq  = "pier.seq"  // the last sequence number given
)

// Index is one open Elasticsearch index: a bleve index and its mapping.
//
// Lock order: life, then stripes (in increasing order), then mu.
type Index struct {
	App, Name string
	path      string
	bi        bleve.Index // guarded by life; nil while closed for idleness

	// life is held shared by every operation and exclusively to open or
	// close the bleve index, so that no operation sees it closed.
	life    sync.RWMutex
	closed  bool         // guarded by life: closed for good (deleted, service closed)
	lastUse atomic.Int64 // Unix nanoseconds of the last use()
	// idleDocs is the document count when the bleve index was last
	// closed (guarded by life; nothing changes it until it is reopened)
	idleDocs uint64

	// mu guards m. A write that grows the mapping holds it exclusively
	// until its batch is persisted, so that the stored mapping always
	// covers the stored documents.
	mu sync.RWMutex
	m  *meta

	// stripes serialise writes to the same document IDs, so that versions
	// and "created" versus "updated" are right under concurrent writes.
	stripes [64]sync.Mutex
	seq     atomic.Int64
}

func openIndex(app, name, path string) (*Index, error) {
	ix := &Index{App: app, Name: name, path: path}
	if err := ix.openStore(); err != nil {
		return nil, err
	}
	return ix, nil
}

// openStore opens the bleve index and reads pier's metadata from it.
// Called before the index is shared or with life held exclusively.
func (ix *Index) openStore() error {
	bi, err := bleve.Open(ix.path)
	if err != nil {
		return fmt.Errorf("open index %s/%s: %w", ix.App, ix.Name, err)
	}
	data, err := bi.GetInternal([]byte(internalMeta))
	if err == nil && data == nil {
		err = fmt.Errorf("no pier metadata")
	}
	m := &meta{}
	if err == nil {
		err = json.Unmarshal(data, m)
	}
	if err != nil {
		bi.Close()
		return fmt.Errorf("open index %s/%s: %w", ix.App, ix.Name, err)
	}
	if m.Mapping.Properties == nil {
		m.Mapping.Properties = map[string]*Property{}
	}
	ix.mu.Lock()
	ix.m = m
	ix.mu.Unlock()
	if seq, _ := bi.GetInternal([]byte(internalSeq)); seq != nil {
		n, _ := strconv.ParseInt(string(seq), 10, 64)
		if n > ix.seq.Load() {
			ix.seq.Store(n)
		}
	}
	ix.bi = bi
	ix.lastUse.Store(time.Now().UnixNano())
	return nil
}

func (ix *Index) close() error {
	ix.life.Lock()
	defer ix.life.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	return ix.closeStore()
}

// closeStore closes the bleve index (every acknowledged write is already
// persisted). Called with life held exclusively.
func (ix *Index) closeStore() error {
	if ix.bi == nil {
		return nil
	}
	ix.idleDocs, _ = ix.bi.DocCount()
	err := ix.bi.Close()
	ix.bi = nil
	return err
}

// drop closes the index for good: it is being deleted.
func (ix *Index) drop() error {
	ix.life.Lock()
	defer ix.life.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	return ix.closeStore()
}

// closeIfIdle closes the bleve index (its files, its goroutines) if no
// operation used it since before; the next use opens it again. An index
// in use is left alone.
func (ix *Index) closeIfIdle(before time.Time) (bool, error) {
	if !ix.life.TryLock() {
		return false, nil
	}
	defer ix.life.Unlock()
	if ix.closed || ix.bi == nil || ix.lastUse.Load() > before.UnixNano() {
		return false, nil
	}
	return true, ix.closeStore()
}

// isOpen says whether the bleve index is open (not closed for idleness).
func (ix *Index) isOpen() bool {
	ix.life.RLock()
	defer ix.life.RUnlock()
	return ix.bi != nil
}

// use is held for the length of an operation: it opens the index again if
// it was closed for idleness, and fails once the index is closed for good
// (deleted meanwhile).
func (ix *Index) use() (release func(), err error) {
	for {
		ix.life.RLock()
		if ix.closed {
			ix.life.RUnlock()
			return nil, indexNotFound(ix.Name)
		}
		if ix.bi != nil {
			ix.lastUse.Store(time.Now().UnixNano())
			return ix.life.RUnlock, nil
		}
		ix.life.RUnlock()
		ix.life.Lock()
		if !ix.closed && ix.bi == nil {
			err = ix.openStore()
		}
		ix.life.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// meta returns the current mapping and settings; callers must not change
// them.
func (ix *Index) meta() *meta {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.m
}

// DocCount is the number of documents in the index.
func (ix *Index) DocCount() (uint64, error) {
	// an index closed for idleness answers from what it had, so that
	// listings (_cat/indices, pier search) do not open every index
	ix.life.RLock()
	if !ix.closed && ix.bi == nil {
		n := ix.idleDocs
		ix.life.RUnlock()
		return n, nil
	}
	ix.life.RUnlock()
	release, err := ix.use()
	if err != nil {
		return 0, err
	}
	defer release()
	return ix.bi.DocCount()
}

// Op is one write: "index" (create or replace), "create" (fails if the ID
// exists), "update" (merge Doc into the stored source) or "delete".
type Op struct {
	Action string
	ID     string
	Source []byte // index, create: the document; update: {"doc": ..., "doc_as_upsert": ...}
}

// Result is the outcome of one Op, as Elasticsearch reports it.
type Result struct {
	ID      string
	Version int64
	Seq     int64
	Result  string // created, updated, deleted, not_found, noop
	Status  int
	Err     *Error
}

// stored is what a write needs to know of a document already there.
type stored struct {
	version int64
	source  []byte // nil: deleted or never written
}

// Write applies ops in one bleve batch and returns once bleve has
// persisted it. Each op fails or succeeds on its own (as a bulk item
// does); the error is for failures of the whole batch.
func (ix *Index) Write(ctx context.Context, ops []Op) ([]Result, error) {
	release, err := ix.use()
	if err != nil {
		return nil, err
	}
	defer release()
	for _, s := range ix.stripesOf(ops) {
		ix.stripes[s].Lock()
		defer ix.stripes[s].Unlock()
	}
	ix.mu.RLock()
	res, batch, _, err := ix.prepare(ops, ix.m, false)
	if err == errGrow {
		ix.mu.RUnlock()
		ix.mu.Lock()
		defer ix.mu.Unlock()
		grown := ix.m.clone()
		var changed bool
		if res, batch, changed, err = ix.prepare(ops, grown, true); err != nil {
			return nil, err
		}
		if changed {
			batch.SetInternal([]byte(internalMeta), mustJSON(grown))
		}
		if err := ix.commit(batch); err != nil {
			return nil, err
		}
		ix.m = grown
		return res, nil
	}
	defer ix.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	if batch.Size() == 0 {
		return res, nil
	}
	if err := ix.commit(batch); err != nil {
		return nil, err
	}
	return res, nil
}

// commit applies batch; bleve returns once it is persisted (one fsync'd
// segment per batch, so per bulk request).
func (ix *Index) commit(batch *bleve.Batch) error {
	if err := ix.bi.Batch(batch); err != nil {
		return fmt.Errorf("index %s/%s: write: %w", ix.App, ix.Name, err)
	}
	return nil
}

func (ix *Index) stripesOf(ops []Op) []int {
	var out []int
	for _, op := range ops {
		h := fnv.New32a()
		h.Write([]byte(op.ID))
		out = append(out, int(h.Sum32()%uint32(len(ix.stripes))))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// prepare builds the batch for ops against m. Without grow, a document
// needing new fields makes it return errGrow.
func (ix *Index) prepare(ops []Op, m *meta, grow bool) ([]Result, *bleve.Batch, bool, error) {
	batch := ix.bi.NewBatch()
	b := &builder{meta: m, analyzers: ix.bi.Mapping(), grow: grow}
	pending := map[string]stored{}
	res := make([]Result, len(ops))
	for i, op := range ops {
		r := &res[i]
		r.ID = op.ID
		cur, ok := pending[op.ID]
		if !ok {
			var err error
			if cur, err = ix.load(op.ID, op.Action == "update"); err != nil {
				return nil, nil, false, err
			}
		}
		src := op.Source
		switch op.Action {
		case "delete":
			if cur.source == nil {
				r.Result, r.Status, r.Version = "not_found", http.StatusNotFound, cur.version+1
				r.Seq = ix.seq.Add(1)
				continue
			}
			batch.Delete(op.ID)
			r.Result, r.Status, r.Version = "deleted", http.StatusOK, cur.version+1
			r.Seq = ix.seq.Add(1)
			pending[op.ID] = stored{version: r.Version}
			continue
		case "create":
			if cur.source != nil {
				r.Status = http.StatusConflict
				r.Err = &Error{Status: http.StatusConflict, Type: typeVersionConflict, Index: ix.Name,
					Reason: fmt.Sprintf("[%s]: version conflict, document already exists (current version [%d])", op.ID, cur.version)}
				continue
			}
		case "update":
			merged, err := applyUpdate(op.ID, cur.source, op.Source)
			if err != nil {
				r.Err = esError(err)
				r.Status = r.Err.Status
				r.Err.Index = ix.Name
				continue
			}
			src = merged
		}
		obj, err := parseSource(src)
		if err == nil {
			var doc *document.Document
			if doc, err = b.build(op.ID, src, obj, cur.version+1); err == nil {
				err = batch.IndexAdvanced(doc)
			}
		}
		if err == errGrow {
			return nil, nil, false, errGrow
		}
		if err != nil {
			r.Err = esError(err)
			r.Err.Index = ix.Name
			r.Status = r.Err.Status
			continue
		}
		r.Version = cur.version + 1
		r.Result, r.Status = "created", http.StatusCreated
		if cur.source != nil {
			r.Result, r.Status = "updated", http.StatusOK
		}
		r.Seq = ix.seq.Add(1)
		pending[op.ID] = stored{version: r.Version, source: src}
	}
	batch.SetInternal([]byte(internalSeq), []byte(strconv.FormatInt(ix.seq.Load(), 10)))
	return res, batch, b.changed, nil
}

// load reads the stored version (and source, if withSource) of id.
func (ix *Index) load(id string, withSource bool) (stored, error) {
	doc, err := ix.bi.Document(id)
	if err != nil {
		return stored{}, fmt.Errorf("index %s/%s: read %s: %w", ix.App, ix.Name, id, err)
	}
	if doc == nil {
		return stored{}, nil
	}
	var s stored
	doc.VisitFields(func(f index.Field) {
		switch f.Name() {
		case fieldVersion:
			s.version, _ = strconv.ParseInt(string(f.Value()), 10, 64)
		case fieldSource:
			s.source = slices.Clone(f.Value())
		}
	})
	if s.source == nil {
		s.source = []byte("{}")
	}
	return s, nil
}

// Get returns a document's source and version; found is false if there is
// none with that ID.
func (ix *Index) Get(ctx context.Context, id string) (source []byte, version int64, found bool, err error) {
	release, err := ix.use()
	if err != nil {
		return nil, 0, false, err
	}
	defer release()
	s, err := ix.load(id, true)
	if err != nil || s.version == 0 {
		return nil, 0, false, err
	}
	return s.source, s.version, true, nil
}

// applyUpdate merges an update request ({"doc": {...}, "doc_as_upsert":
// true, "upsert": {...}}) into the current source (nil: no document).
func applyUpdate(id string, current, body []byte) ([]byte, error) {
	var req struct {
		Doc         map[string]any `json:"doc"`
		DocAsUpsert bool           `json:"doc_as_upsert"`
		Upsert      map[string]any `json:"upsert"`
		Script      any            `json:"script"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.Script != nil {
		return nil, unsupported("scripted updates")
	}
	if req.Doc == nil && req.Upsert == nil {
		return nil, badRequest(typeIllegalArgument, "Validation Failed: 1: script or doc is missing;")
	}
	if current == nil {
		switch {
		case req.Upsert != nil:
			return mustJSON(req.Upsert), nil
		case req.DocAsUpsert:
			return mustJSON(req.Doc), nil
		}
		return nil, &Error{Status: http.StatusNotFound, Type: typeDocMissing, Reason: "[" + id + "]: document missing"}
	}
	cur, err := parseSource(current)
	if err != nil {
		return nil, err
	}
	mergeInto(cur, req.Doc)
	return mustJSON(cur), nil
}

// mergeInto merges src into dst the way partial updates do: objects merge
// recursively, everything else replaces.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				mergeInto(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}
