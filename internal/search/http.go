package search

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// maxBody is Elasticsearch's http.max_content_length default.
const maxBody = 100 << 20

// Version is the Elasticsearch version pier's API reports to clients.
const Version = "8.11.0"

// Route tells, for a request, which app's indexes it may use and the path
// below the API's root ("/blog/_search"). An error is answered as is.
type Route func(r *http.Request) (app, path string, err error)

// BasicAuth routes requests under prefix by HTTP basic auth: the user is
// the app, and check must accept its password. Elasticsearch clients send
// the credentials of the URL they are given this way.
func BasicAuth(prefix string, check func(ctx context.Context, app, password string) bool) Route {
	return func(r *http.Request) (string, string, error) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			if tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
				// the app's PIER_TOKEN, "<app>.<secret>", also works
				user, _, _ = strings.Cut(tok, ".")
				pass, ok = tok, true
			}
		}
		if !ok || user == "" || !check(r.Context(), user, pass) {
			return "", "", &Error{Status: http.StatusUnauthorized, Type: typeSecurity,
				Reason: "missing or wrong credentials for REST request [" + r.URL.Path + "] (use the URL in $ELASTICSEARCH_URL, which carries them)"}
		}
		return user, strings.TrimPrefix(r.URL.Path, prefix), nil
	}
}

// ConstantTimeEqual compares secrets.
func ConstantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Handler returns the Elasticsearch-compatible REST API over s, for the
// app route picks.
func (s *Service) Handler(route Route) http.Handler {
	return &handler{svc: s, route: route, log: s.log}
}

type handler struct {
	svc   *Service
	route Route
	log   *slog.Logger
}

// call is one request being answered.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	app    string
	parts  []string // path segments, unescaped
	body   []byte
	params url.Values
	ctype  string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	c := &call{w: w, r: r, params: r.URL.Query(), ctype: "application/json"}
	if strings.Contains(r.Header.Get("Accept"), "vnd.elasticsearch+json") {
		c.ctype = "application/vnd.elasticsearch+json;compatible-with=8"
	}
	app, path, err := h.route(r)
	if err != nil {
		if e := esError(err); e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="pier search" charset="UTF-8"`)
		}
		h.fail(c, err)
		return
	}
	c.app = app
	for _, p := range strings.Split(strings.Trim(path, "/"), "/") {
		if p == "" {
			continue
		}
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		}
		c.parts = append(c.parts, p)
	}
	if r.Body != nil {
		data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			h.fail(c, badRequest(typeParsing, "reading the request body: %v", err))
			return
		}
		if len(data) > maxBody {
			h.fail(c, &Error{Status: http.StatusRequestEntityTooLarge, Type: "content_too_long_exception", Reason: "the request body is larger than 100mb"})
			return
		}
		c.body = data
	}
	if src := c.params.Get("source"); src != "" && len(c.body) == 0 {
		c.body = []byte(src) // GET with ?source= instead of a body
	}
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("search request panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
			h.fail(c, fmt.Errorf("panic: %v", p))
		}
	}()
	if err := h.dispatch(c); err != nil {
		h.fail(c, err)
	}
}

func (h *handler) fail(c *call, err error) {
	e := esError(err)
	if e.Status >= 500 {
		h.log.Error("search request failed", "app", c.app, "method", c.r.Method, "path", c.r.URL.Path, "err", err)
	}
	c.send(e.Status, e.body())
}

func (c *call) send(status int, v any) {
	c.w.Header().Set("Content-Type", c.ctype)
	c.w.WriteHeader(status)
	if c.r.Method == http.MethodHead {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		data = []byte(`{"error":"encoding the answer failed","status":500}`)
	}
	if _, ok := c.params["pretty"]; ok {
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.Encode(json.RawMessage(data))
		c.w.Write([]byte(buf.String()))
		return
	}
	c.w.Write(append(data, '\n'))
}

// route is one entry of the verb table: a path shape, where "{index}" and
// "{id}" match any segment, and the handler per method.
type route struct {
	shape   []string
	methods map[string]func(h *handler, c *call) error
}

var routes []route

func init() {
	type m = map[string]func(h *handler, c *call) error
	routes = []route{
		{nil, m{"GET": (*handler).info, "HEAD": (*handler).info}},
		{[]string{"_bulk"}, m{"POST": (*handler).bulk, "PUT": (*handler).bulk}},
		{[]string{"_search"}, m{"GET": (*handler).search, "POST": (*handler).search}},
		{[]string{"_count"}, m{"GET": (*handler).count, "POST": (*handler).count}},
		{[]string{"_all", "_search"}, m{"GET": (*handler).search, "POST": (*handler).search}},
		{[]string{"_all", "_count"}, m{"GET": (*handler).count, "POST": (*handler).count}},
		{[]string{"_refresh"}, m{"GET": (*handler).refresh, "POST": (*handler).refresh}},
		{[]string{"_mapping"}, m{"GET": (*handler).getMapping}},
		{[]string{"_cat", "indices"}, m{"GET": (*handler).catIndices}},
		{[]string{"_cat", "indices", "{index}"}, m{"GET": (*handler).catIndices}},
		{[]string{"_cluster", "health"}, m{"GET": (*handler).health}},
		{[]string{"{index}"}, m{"PUT": (*handler).createIndex, "DELETE": (*handler).deleteIndex, "GET": (*handler).getIndex, "HEAD": (*handler).getIndex}},
		{[]string{"{index}", "_doc"}, m{"POST": (*handler).indexDoc}},
		{[]string{"{index}", "_doc", "{id}"}, m{"PUT": (*handler).indexDoc, "POST": (*handler).indexDoc, "GET": (*handler).getDoc, "HEAD": (*handler).getDoc, "DELETE": (*handler).deleteDoc}},
		{[]string{"{index}", "_create", "{id}"}, m{"PUT": (*handler).indexDoc, "POST": (*handler).indexDoc}},
		{[]string{"{index}", "_update", "{id}"}, m{"POST": (*handler).updateDoc}},
		{[]string{"{index}", "_source", "{id}"}, m{"GET": (*handler).getDoc, "HEAD": (*handler).getDoc}},
		{[]string{"{index}", "_bulk"}, m{"POST": (*handler).bulk, "PUT": (*handler).bulk}},
		{[]string{"{index}", "_search"}, m{"GET": (*handler).search, "POST": (*handler).search}},
		{[]string{"{index}", "_count"}, m{"GET": (*handler).count, "POST": (*handler).count}},
		{[]string{"{index}", "_refresh"}, m{"GET": (*handler).refresh, "POST": (*handler).refresh}},
		{[]string{"{index}", "_mapping"}, m{"GET": (*handler).getMapping, "PUT": (*handler).putMapping, "POST": (*handler).putMapping}},
		{[]string{"{index}", "_settings"}, m{"GET": (*handler).getSettings}},
	}
}

func (r route) match(parts []string) bool {
	if len(parts) != len(r.shape) {
		return false
	}
	for i, s := range r.shape {
		switch s {
		case "{index}":
			if strings.HasPrefix(parts[i], "_") {
				return false
			}
		case "{id}":
		default:
			if parts[i] != s {
				return false
			}
		}
	}
	return true
}

func (h *handler) dispatch(c *call) error {
	for _, rt := range routes {
		if !rt.match(c.parts) {
			continue
		}
		if f := rt.methods[c.r.Method]; f != nil {
			return f(h, c)
		}
		var allowed []string
		for m := range rt.methods {
			allowed = append(allowed, m)
		}
		c.send(http.StatusMethodNotAllowed, map[string]any{
			"error":  fmt.Sprintf("Incorrect HTTP method for uri [%s] and method [%s], allowed: [%s]", c.r.URL.Path, c.r.Method, strings.Join(sortStrings(allowed), ", ")),
			"status": http.StatusMethodNotAllowed,
		})
		return nil
	}
	for _, p := range c.parts {
		if strings.HasPrefix(p, "_") {
			return unsupported("the [%s] API", "/"+strings.Join(c.parts, "/"))
		}
	}
	return &Error{Status: http.StatusBadRequest, Type: typeIllegalArgument, Reason: "no handler found for uri [" + c.r.URL.Path + "] and method [" + c.r.Method + "]"}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func (h *handler) info(c *call) error {
	c.send(http.StatusOK, map[string]any{
		"name":         "pier",
		"cluster_name": "pier",
		"cluster_uuid": "pier-" + c.app,
		"version": map[string]any{
			"number": Version, "build_flavor": "default", "build_type": "pier", "lucene_version": "9.8.0",
			"minimum_wire_compatibility_version": "7.17.0", "minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	})
	return nil
}

func (h *handler) health(c *call) error {
	names, err := h.svc.names(c.app, nil)
	if err != nil {
		return err
	}
	c.send(http.StatusOK, map[string]any{"cluster_name": "pier", "status": "green", "timed_out": false,
		"number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": len(names), "active_shards": len(names),
		"relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": 0, "active_shards_percent_as_number": 100.0})
	return nil
}

func (h *handler) createIndex(c *call) error {
	name := c.parts[0]
	if err := h.svc.CreateIndex(c.r.Context(), c.app, name, c.body); err != nil {
		return err
	}
	c.send(http.StatusOK, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
	return nil
}

func (h *handler) deleteIndex(c *call) error {
	names, err := h.resolve(c, c.parts[0])
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := h.svc.DeleteIndex(c.r.Context(), c.app, name); err != nil {
			return err
		}
	}
	c.send(http.StatusOK, map[string]any{"acknowledged": true})
	return nil
}

// resolve expands an index expression ("a,b", "logs-*", "_all") into
// existing index names; a plain name that does not exist is an error.
func (h *handler) resolve(c *call, expr string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(expr, ",") {
		if strings.ContainsRune(part, '*') || part == "_all" {
			names, err := h.svc.names(c.app, []string{part})
			if err != nil {
				return nil, err
			}
			out = append(out, names...)
			continue
		}
		if err := checkIndexName(part); err != nil {
			return nil, err
		}
		if _, err := h.svc.Index(c.r.Context(), c.app, part, false); err != nil {
			return nil, err
		}
		out = append(out, part)
	}
	return out, nil
}

func (h *handler) getIndex(c *call) error {
	names, err := h.resolve(c, c.parts[0])
	if err != nil {
		if c.r.Method == http.MethodHead {
			c.send(http.StatusNotFound, nil)
			return nil
		}
		return err
	}
	out := map[string]any{}
	for _, name := range names {
		ix, err := h.svc.Index(c.r.Context(), c.app, name, false)
		if err != nil {
			return err
		}
		m := ix.meta()
		out[name] = map[string]any{"aliases": map[string]any{}, "mappings": m.Mapping, "settings": settingsJSON(name, m)}
	}
	c.send(http.StatusOK, out)
	return nil
}

func settingsJSON(name string, m *meta) map[string]any {
	idx := map[string]any{
		"number_of_shards": fmt.Sprint(max(1, m.Settings.Shards)), "number_of_replicas": fmt.Sprint(m.Settings.Replicas),
		"uuid": m.UUID, "creation_date": fmt.Sprint(m.Created), "provided_name": name,
	}
	if m.Settings.DefaultAnalyzer != "" || len(m.Settings.Analyzers) > 0 {
		an := map[string]any{}
		for k, v := range m.Settings.Analyzers {
			an[k] = v
		}
		if m.Settings.DefaultAnalyzer != "" {
			an["default"] = map[string]any{"type": m.Settings.DefaultAnalyzer}
		}
		idx["analysis"] = map[string]any{"analyzer": an}
	}
	return map[string]any{"index": idx}
}

func (h *handler) getMapping(c *call) error {
	expr := "_all"
	if len(c.parts) == 2 {
		expr = c.parts[0]
	}
	names, err := h.resolve(c, expr)
	if err != nil {
		return err
	}
	out := map[string]any{}
	for _, name := range names {
		ix, err := h.svc.Index(c.r.Context(), c.app, name, false)
		if err != nil {
			return err
		}
		out[name] = map[string]any{"mappings": ix.meta().Mapping}
	}
	c.send(http.StatusOK, out)
	return nil
}

func (h *handler) putMapping(c *call) error {
	ix, err := h.svc.Index(c.r.Context(), c.app, c.parts[0], false)
	if err != nil {
		return err
	}
	if err := ix.PutMapping(c.r.Context(), c.body); err != nil {
		return err
	}
	c.send(http.StatusOK, map[string]any{"acknowledged": true})
	return nil
}

func (h *handler) getSettings(c *call) error {
	ix, err := h.svc.Index(c.r.Context(), c.app, c.parts[0], false)
	if err != nil {
		return err
	}
	c.send(http.StatusOK, map[string]any{ix.Name: map[string]any{"settings": settingsJSON(ix.Name, ix.meta())}})
	return nil
}

func (h *handler) catIndices(c *call) error {
	var patterns []string
	if len(c.parts) == 3 {
		patterns = strings.Split(c.parts[2], ",")
	}
	infos, err := h.svc.Indexes(c.r.Context(), c.app, patterns...)
	if err != nil {
		return err
	}
	if c.params.Get("format") == "json" {
		c.send(http.StatusOK, infos)
		return nil
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	tw := tabwriter.NewWriter(c.w, 0, 4, 1, ' ', 0)
	if _, ok := c.params["v"]; ok {
		fmt.Fprintln(tw, "health\tstatus\tindex\tuuid\tpri\trep\tdocs.count\tcreation.date")
	}
	for _, i := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", i.Health, i.Status, i.Name, i.UUID, i.Primary, i.Replica, i.Docs, time.UnixMilli(i.Created).UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func (h *handler) refresh(c *call) error {
	if len(c.parts) == 2 {
		if _, err := h.resolve(c, c.parts[0]); err != nil {
			return err
		}
	}
	// writes are visible as soon as they are acknowledged: nothing to do
	c.send(http.StatusOK, map[string]any{"_shards": map[string]any{"total": 1, "successful": 1, "failed": 0}})
	return nil
}

// searchIndexes opens the indexes a search or count runs on: those the
// path names ("a,b", "logs-*"), or all of the app's for "/_search".
func (h *handler) searchIndexes(c *call) ([]*Index, error) {
	expr := "_all"
	if len(c.parts) == 2 {
		expr = c.parts[0]
	}
	names, err := h.resolve(c, expr)
	if err != nil {
		return nil, err
	}
	var ixs []*Index
	for _, name := range names {
		if slices.ContainsFunc(ixs, func(ix *Index) bool { return ix.Name == name }) {
			continue // "a,a*" names a twice
		}
		ix, err := h.svc.Index(c.r.Context(), c.app, name, false)
		if err != nil {
			return nil, err
		}
		ixs = append(ixs, ix)
	}
	return ixs, nil
}

func (h *handler) search(c *call) error {
	ixs, err := h.searchIndexes(c)
	if err != nil {
		return err
	}
	if len(ixs) == 0 {
		c.send(http.StatusOK, map[string]any{"took": 0, "timed_out": false,
			"_shards": map[string]any{"total": 0, "successful": 0, "skipped": 0, "failed": 0},
			"hits":    map[string]any{"total": map[string]any{"value": 0, "relation": "eq"}, "max_score": nil, "hits": []any{}}})
		return nil
	}
	out, err := SearchIndexes(c.r.Context(), ixs, c.body, c.params)
	if err != nil {
		return err
	}
	c.send(http.StatusOK, out)
	return nil
}

func (h *handler) count(c *call) error {
	ixs, err := h.searchIndexes(c)
	if err != nil {
		return err
	}
	var total uint64
	for _, ix := range ixs {
		n, err := ix.Count(c.r.Context(), c.body, c.params)
		if err != nil {
			return err
		}
		total += n
	}
	c.send(http.StatusOK, map[string]any{"count": total, "_shards": map[string]any{"total": len(ixs), "successful": len(ixs), "skipped": 0, "failed": 0}})
	return nil
}

// writeResult is the JSON of a document write, alone or in a bulk.
func writeResult(index string, r Result) map[string]any {
	m := map[string]any{"_index": index, "_id": r.ID, "status": r.Status}
	if r.Err != nil {
		m["error"] = r.Err.itemError()
		return m
	}
	m["_version"] = r.Version
	m["result"] = r.Result
	m["_shards"] = map[string]any{"total": 1, "successful": 1, "failed": 0}
	m["_seq_no"] = r.Seq
	m["_primary_term"] = 1
	return m
}

func (h *handler) writeOne(c *call, op Op) error {
	ix, err := h.svc.Index(c.r.Context(), c.app, c.parts[0], true)
	if err != nil {
		return err
	}
	res, err := ix.Write(c.r.Context(), []Op{op})
	if err != nil {
		return err
	}
	r := res[0]
	if r.Err != nil {
		if r.Err.Index == "" {
			r.Err.Index = ix.Name
		}
		return r.Err
	}
	body := writeResult(ix.Name, r)
	delete(body, "status")
	c.send(r.Status, body)
	return nil
}

func (h *handler) indexDoc(c *call) error {
	op := Op{Action: "index", Source: c.body}
	if len(c.parts) == 3 {
		op.ID = c.parts[2]
	} else {
		op.ID = randomID()
	}
	if c.parts[1] == "_create" || c.params.Get("op_type") == "create" {
		op.Action = "create"
	}
	if err := checkID(op.ID); err != nil {
		return err
	}
	return h.writeOne(c, op)
}

func checkID(id string) error {
	if id == "" || len(id) > 512 {
		return illegalArgument("id [%s] is too long, must be no longer than 512 bytes but was: %d", id, len(id))
	}
	return nil
}

func (h *handler) updateDoc(c *call) error {
	if err := checkID(c.parts[2]); err != nil {
		return err
	}
	return h.writeOne(c, Op{Action: "update", ID: c.parts[2], Source: c.body})
}

func (h *handler) deleteDoc(c *call) error {
	ix, err := h.svc.Index(c.r.Context(), c.app, c.parts[0], false)
	if err != nil {
		return err
	}
	res, err := ix.Write(c.r.Context(), []Op{{Action: "delete", ID: c.parts[2]}})
	if err != nil {
		return err
	}
	body := writeResult(ix.Name, res[0])
	delete(body, "status")
	c.send(res[0].Status, body)
	return nil
}

func (h *handler) getDoc(c *call) error {
	ix, err := h.svc.Index(c.r.Context(), c.app, c.parts[0], false)
	if err != nil {
		return err
	}
	src, version, found, err := ix.Get(c.r.Context(), c.parts[2])
	if err != nil {
		return err
	}
	if c.parts[1] == "_source" {
		if !found {
			return &Error{Status: http.StatusNotFound, Type: "resource_not_found_exception", Reason: "Document not found [" + ix.Name + "]/[" + c.parts[2] + "]"}
		}
		c.send(http.StatusOK, json.RawMessage(src))
		return nil
	}
	out := map[string]any{"_index": ix.Name, "_id": c.parts[2], "found": found}
	if !found {
		c.send(http.StatusNotFound, out)
		return nil
	}
	out["_version"], out["_seq_no"], out["_primary_term"] = version, 0, 1
	if f, err := sourceParam(c.params); err != nil {
		return err
	} else if v, ok := f.apply(src); ok {
		out["_source"] = v
	}
	c.send(http.StatusOK, out)
	return nil
}

func sourceParam(p url.Values) (sourceFilter, error) {
	f := sourceFilter{all: true}
	if v := p.Get("_source"); v == "false" {
		f.all = false
	} else if v != "" && v != "true" {
		f = sourceFilter{includes: strings.Split(v, ",")}
	}
	if v := p.Get("_source_includes"); v != "" {
		f.all, f.includes = false, strings.Split(v, ",")
	}
	if v := p.Get("_source_excludes"); v != "" {
		f.excludes = strings.Split(v, ",")
	}
	return f, nil
}

var errBulkEmpty = errors.New("Validation Failed: 1: no requests added;")
