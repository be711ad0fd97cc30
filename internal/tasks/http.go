package tasks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Routes are the task queue routes of the engine API, mounted behind its
// token check (an app's own token only reaches its own app):
//
//	POST   /v1/apps/{app}/tasks/{queue}                  one task (JSON object or raw body) or a batch (JSON array)
//	GET    /v1/apps/{app}/tasks                          queues with their figures
//	GET    /v1/apps/{app}/tasks/{queue}/dead             dead tasks (?limit=100)
//	POST   /v1/apps/{app}/tasks/{queue}/dead/{id}/retry  back to ready; {id} "all" retries every dead task
//	DELETE /v1/apps/{app}/tasks/{queue}/dead/{id}        drop a dead task; "all" drops them all
//	POST   /v1/apps/{app}/tasks/{queue}/pause            {"for":"1h"} ("" or absent: until resumed)
//	POST   /v1/apps/{app}/tasks/{queue}/resume
func (s *Service) Routes(exists func(ctx context.Context, app string) bool) map[string]http.Handler {
	h := &httpAPI{s: s, exists: exists}
	return map[string]http.Handler{
		"POST /v1/apps/{app}/tasks/{queue}":                 h.wrap(h.enqueue),
		"GET /v1/apps/{app}/tasks":                          h.wrap(h.list),
		"GET /v1/apps/{app}/tasks/{queue}/dead":             h.wrap(h.dead),
		"POST /v1/apps/{app}/tasks/{queue}/dead/{id}/retry": h.wrap(h.retry),
		"DELETE /v1/apps/{app}/tasks/{queue}/dead/{id}":     h.wrap(h.drop),
		"POST /v1/apps/{app}/tasks/{queue}/pause":           h.wrap(h.pause),
		"POST /v1/apps/{app}/tasks/{queue}/resume":          h.wrap(h.pause),
	}
}

type httpAPI struct {
	s      *Service
	exists func(ctx context.Context, app string) bool
}

// httpError is an answer with a status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func (h *httpAPI) wrap(fn func(w http.ResponseWriter, r *http.Request, app string) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app := r.PathValue("app")
		var err error
		if h.exists != nil && !h.exists(r.Context(), app) {
			err = &httpError{http.StatusNotFound, fmt.Sprintf("no app named %q", app)}
		} else if q := r.PathValue("queue"); q != "" {
			err = ValidQueue(q)
		}
		if err == nil {
			err = fn(w, r, app)
		}
		if err == nil {
			return
		}
		status := http.StatusInternalServerError
		var he *httpError
		var de *DuplicateError
		switch {
		case errors.As(err, &he):
			status = he.status
		case errors.As(err, &de):
			status = http.StatusConflict
		case errors.Is(err, ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, ErrBadQueue):
			status = http.StatusBadRequest
		case errors.Is(err, ErrTooBig):
			status = http.StatusRequestEntityTooLarge
		case errors.Is(err, ErrDraining):
			status = http.StatusServiceUnavailable
		default:
			h.s.log.Warn("tasks API", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// TaskRequest is one task in an enqueue request.
type TaskRequest struct {
	Body       string `json:"body"`
	BodyBase64 string `json:"body_base64,omitempty"` // instead of body, for binary bodies
	Name       string `json:"name,omitempty"`
	Priority   uint32 `json:"priority,omitempty"`
	Delay      string `json:"delay,omitempty"` // "30s"
	ETA        string `json:"eta,omitempty"`   // RFC 3339
	TTR        string `json:"ttr,omitempty"`   // "60s"
}

// TaskResult is the answer for one task: its id, or why it was refused.
type TaskResult struct {
	ID        uint64 `json:"id,omitempty"`
	Error     string `json:"error,omitempty"`
	Duplicate uint64 `json:"duplicate_of,omitempty"`
}

func (tr TaskRequest) task() (NewTask, error) {
	t := NewTask{Body: []byte(tr.Body), Name: tr.Name, Priority: tr.Priority}
	if tr.BodyBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(tr.BodyBase64)
		if err != nil {
			return t, badRequest("body_base64: %v", err)
		}
		t.Body = b
	}
	var err error
	if tr.Delay != "" {
		if t.Delay, err = time.ParseDuration(tr.Delay); err != nil || t.Delay < 0 {
			return t, badRequest("delay %q: want a duration such as 30s", tr.Delay)
		}
	}
	if tr.TTR != "" {
		if t.TTR, err = time.ParseDuration(tr.TTR); err != nil || t.TTR <= 0 {
			return t, badRequest("ttr %q: want a positive duration such as 60s", tr.TTR)
		}
	}
	if tr.ETA != "" {
		if t.ETA, err = time.Parse(time.RFC3339, tr.ETA); err != nil {
			return t, badRequest("eta %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", tr.ETA)
		}
	}
	if len(tr.Name) > 200 {
		return t, badRequest("name: at most 200 bytes")
	}
	return t, nil
}

func (h *httpAPI) enqueue(w http.ResponseWriter, r *http.Request, app string) error {
	queue := r.PathValue("queue")
	limit := int64(h.s.opts.MaxBody)*4 + 1<<20
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1000*limit))
	if err != nil {
		return badRequest("reading the request: %v", err)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		// A raw body is the task; options come in the query.
		q := r.URL.Query()
		pri, _ := strconv.ParseUint(q.Get("priority"), 10, 32)
		t, err := TaskRequest{Name: q.Get("name"), Delay: q.Get("delay"), ETA: q.Get("eta"), TTR: q.Get("ttr"), Priority: uint32(pri)}.task()
		if err != nil {
			return err
		}
		t.Body = raw
		return h.one(w, r.Context(), app, queue, t)
	}
	trimmed := strings.TrimSpace(string(raw))
	if strings.HasPrefix(trimmed, "[") {
		var reqs []TaskRequest
		if err := strictJSON(raw, &reqs); err != nil {
			return err
		}
		if len(reqs) > 1000 {
			return badRequest("a batch holds at most 1000 tasks, got %d", len(reqs))
		}
		news := make([]NewTask, len(reqs))
		for i, tr := range reqs {
			if news[i], err = tr.task(); err != nil {
				return badRequest("task %d: %v", i, err)
			}
		}
		results := make([]TaskResult, len(news))
		for i, t := range news {
			id, err := h.s.Enqueue(r.Context(), app, queue, t)
			var de *DuplicateError
			switch {
			case errors.As(err, &de):
				results[i] = TaskResult{Error: de.Error(), Duplicate: de.ID}
			case err != nil:
				return err // earlier tasks of the batch are stored; their ids are lost to the caller
			default:
				results[i] = TaskResult{ID: id}
			}
		}
		writeJSON(w, http.StatusCreated, results)
		return nil
	}
	var tr TaskRequest
	if err := strictJSON(raw, &tr); err != nil {
		return err
	}
	t, err := tr.task()
	if err != nil {
		return err
	}
	return h.one(w, r.Context(), app, queue, t)
}

func (h *httpAPI) one(w http.ResponseWriter, ctx context.Context, app, queue string, t NewTask) error {
	id, err := h.s.Enqueue(ctx, app, queue, t)
	var de *DuplicateError
	if errors.As(err, &de) {
		writeJSON(w, http.StatusConflict, TaskResult{Error: de.Error(), Duplicate: de.ID})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, TaskResult{ID: id})
	return nil
}

func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

func (h *httpAPI) list(w http.ResponseWriter, r *http.Request, app string) error {
	names, err := h.s.QueueNames(r.Context(), app)
	if err != nil {
		return err
	}
	out := make([]QueueStats, 0, len(names))
	for _, n := range names {
		st, err := h.s.Stats(r.Context(), app, n)
		if err != nil {
			return err
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *httpAPI) dead(w http.ResponseWriter, r *http.Request, app string) error {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return badRequest("limit %q: want a positive number", v)
		}
		limit = min(n, 10000)
	}
	ts, err := h.s.Dead(r.Context(), app, r.PathValue("queue"), limit)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []Task{}
	}
	writeJSON(w, http.StatusOK, ts)
	return nil
}

// deadTask checks that {id} names a dead task of {queue}.
func (h *httpAPI) deadTask(r *http.Request, app string) (uint64, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		return 0, badRequest("task id %q: want a number or \"all\"", r.PathValue("id"))
	}
	t, err := h.s.Lookup(r.Context(), app, id)
	if err != nil {
		return 0, err
	}
	if t.State != StateBuried || t.Queue != r.PathValue("queue") {
		return 0, &httpError{http.StatusNotFound, fmt.Sprintf("task %d is not in the dead set of %s (it is %s in %s)", id, r.PathValue("queue"), t.State, t.Queue)}
	}
	return id, nil
}

func (h *httpAPI) retry(w http.ResponseWriter, r *http.Request, app string) error {
	queue := r.PathValue("queue")
	if r.PathValue("id") == "all" {
		n, err := h.s.KickDead(r.Context(), app, queue)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]int{"retried": n})
		return nil
	}
	id, err := h.deadTask(r, app)
	if err != nil {
		return err
	}
	if err := h.s.KickTask(r.Context(), app, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"retried": 1})
	return nil
}

func (h *httpAPI) drop(w http.ResponseWriter, r *http.Request, app string) error {
	queue := r.PathValue("queue")
	if r.PathValue("id") == "all" {
		n, err := h.s.DropDead(r.Context(), app, queue)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]int{"dropped": n})
		return nil
	}
	id, err := h.deadTask(r, app)
	if err != nil {
		return err
	}
	if err := h.s.DeleteStored(r.Context(), app, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"dropped": 1})
	return nil
}

func (h *httpAPI) pause(w http.ResponseWriter, r *http.Request, app string) error {
	var d time.Duration
	if strings.HasSuffix(r.URL.Path, "/pause") {
		d = 100 * 365 * 24 * time.Hour
		var req struct {
			For string `json:"for"`
		}
		if raw, _ := io.ReadAll(io.LimitReader(r.Body, 4096)); len(strings.TrimSpace(string(raw))) > 0 {
			if err := strictJSON(raw, &req); err != nil {
				return err
			}
		}
		if req.For != "" {
			v, err := time.ParseDuration(req.For)
			if err != nil || v <= 0 {
				return badRequest("for %q: want a positive duration such as 1h", req.For)
			}
			d = v
		}
	}
	if err := h.s.Pause(r.Context(), app, r.PathValue("queue"), d); err != nil {
		return err
	}
	st, err := h.s.Stats(r.Context(), app, r.PathValue("queue"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
