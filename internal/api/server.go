package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Engine is what the server needs from the engine.
type Engine interface {
	Apps(ctx context.Context) ([]App, error)
	App(ctx context.Context, name string) (App, error)
	Releases(ctx context.Context, app string) ([]Release, error)
	Deploy(ctx context.Context, app string, bundle io.Reader, emit func(Event)) (int, error)
	Rollback(ctx context.Context, app string, release int, emit func(Event)) (int, error)
	Env(ctx context.Context, app string) (map[string]string, error)
	SetEnv(ctx context.Context, app string, change EnvChange, emit func(Event)) (int, error)
	Scale(ctx context.Context, app string, counts map[string]int) (App, error)
	PS(app string) []Instance
	Logs(ctx context.Context, app string, q LogQuery, fn func(LogLine) error) error
	Run(ctx context.Context, app string, argv []string, out func(stream, text string)) (int, error)
	Destroy(ctx context.Context, app string) error
}

// CanaryEngine is what graded rollouts need from the engine, found on an
// Engine by type assertion: without it, canary deploys and promote answer
// 501.
type CanaryEngine interface {
	// DeployCanary deploys bundle as a canary release that gets percent
	// of the app's new clients beside the current release.
	DeployCanary(ctx context.Context, app string, bundle io.Reader, percent float64, emit func(Event)) (int, error)
	// Promote makes the app's canary its current release.
	Promote(ctx context.Context, app string, emit func(Event)) (int, error)
}

// LogQuery selects log lines.
type LogQuery struct {
	Follow  bool
	Process string
	Lines   int
	Since   time.Time
	Grep    string // a regular expression the line's text must match
}

// ServerOptions configure NewServer.
type ServerOptions struct {
	Token   string // the admin token; required
	Version string
	Logger  *slog.Logger
	// AppToken resolves an app's own token (PIER_TOKEN) to the app's name.
	// A request authenticated by an app token may only use that app's
	// routes (/v1/apps/<app>/...). Nil: only the admin token works.
	AppToken func(ctx context.Context, token string) (app string, ok bool)
}

// Caller is who made an API request.
type Caller struct {
	Admin bool
	App   string // set when an app's own token authenticated the request
}

type callerKey struct{}

// CallerFrom returns the authenticated caller of a request handled by the
// server (zero outside of it).
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// Server answers the engine API.
type Server struct {
	public   *http.ServeMux // routes that authenticate themselves (Sentry DSNs, ...)
	eng      Engine
	token    string
	appToken func(ctx context.Context, token string) (string, bool)
	ver      string
	log      *slog.Logger
	mux      *http.ServeMux
}

// NewServer returns the API handler.
func NewServer(eng Engine, opts ServerOptions) *Server {
	s := &Server{eng: eng, token: opts.Token, appToken: opts.AppToken, ver: opts.Version, log: opts.Logger, mux: http.NewServeMux(), public: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux.HandleFunc("GET /v1/health", s.health)
	s.mux.HandleFunc("GET /v1/apps", s.apps)
	s.mux.HandleFunc("GET /v1/apps/{app}", s.app)
	s.mux.HandleFunc("POST /v1/apps/{app}/deploy", s.deploy)
	s.mux.HandleFunc("GET /v1/apps/{app}/releases", s.releases)
	s.mux.HandleFunc("POST /v1/apps/{app}/rollback", s.rollback)
	s.mux.HandleFunc("POST /v1/apps/{app}/promote", s.promote)
	s.mux.HandleFunc("GET /v1/apps/{app}/env", s.env)
	s.mux.HandleFunc("PATCH /v1/apps/{app}/env", s.setEnv)
	s.mux.HandleFunc("PUT /v1/apps/{app}/scale", s.scale)
	s.mux.HandleFunc("GET /v1/apps/{app}/ps", s.ps)
	s.mux.HandleFunc("GET /v1/apps/{app}/logs", s.logs)
	s.mux.HandleFunc("POST /v1/apps/{app}/run", s.run)
	s.mux.HandleFunc("DELETE /v1/apps/{app}", s.destroy)
	s.mux.HandleFunc("GET /v1/domains", s.listDomains)
	s.mux.HandleFunc("GET /v1/apps/{app}/domains", s.listDomains)
	s.mux.HandleFunc("POST /v1/apps/{app}/domains", s.addDomains)
	s.mux.HandleFunc("POST /v1/apps/{app}/domains/remove", s.removeDomains)
	s.mux.HandleFunc("DELETE /v1/apps/{app}/domains/{host}", s.removeDomain)
	return s
}

// Handle mounts another part's routes (tasks, errors, search) on the API.
// They get the same authentication; CallerFrom tells who called. Call it
// before the server takes requests.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandlePublic mounts routes that do their own authentication (a Sentry
// DSN key, basic auth): the API's token check does not apply to them.
// Their patterns must not overlap /v1/.
func (s *Server) HandlePublic(pattern string, h http.Handler) { s.public.Handle(pattern, h) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		if h, pattern := s.public.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
	}
	if r.URL.Path == "/v1/health" {
		s.mux.ServeHTTP(w, r)
		return
	}
	c, ok := s.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pier"`)
		sendError(w, http.StatusUnauthorized, "missing or wrong API token (send Authorization: Bearer <token>; the token is in $PIER_HOME/token)")
		return
	}
	if !c.Admin && !strings.HasPrefix(r.URL.Path, "/v1/apps/"+c.App+"/") {
		sendError(w, http.StatusForbidden, fmt.Sprintf("the token of app %s may only use /v1/apps/%s/", c.App, c.App))
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
}

func (s *Server) authenticate(r *http.Request) (Caller, bool) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		return Caller{}, false
	}
	if s.token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1 {
		return Caller{Admin: true}, true
	}
	if s.appToken != nil {
		if app, ok := s.appToken(r.Context(), got); ok {
			return Caller{App: app}, true
		}
	}
	return Caller{}, false
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	sendJSON(w, http.StatusOK, Health{OK: true, Version: s.ver})
}

func (s *Server) apps(w http.ResponseWriter, r *http.Request) {
	apps, err := s.eng.Apps(r.Context())
	s.reply(w, apps, err)
}

func (s *Server) app(w http.ResponseWriter, r *http.Request) {
	app, err := s.eng.App(r.Context(), r.PathValue("app"))
	s.reply(w, app, err)
}

func (s *Server) releases(w http.ResponseWriter, r *http.Request) {
	rels, err := s.eng.Releases(r.Context(), r.PathValue("app"))
	s.reply(w, rels, err)
}

func (s *Server) env(w http.ResponseWriter, r *http.Request) {
	env, err := s.eng.Env(r.Context(), r.PathValue("app"))
	s.reply(w, env, err)
}

func (s *Server) ps(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if _, err := s.eng.App(r.Context(), app); err != nil {
		s.reply(w, nil, err)
		return
	}
	s.reply(w, s.eng.PS(app), nil)
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) {
	var counts map[string]int
	if !decode(w, r, &counts) {
		return
	}
	app, err := s.eng.Scale(r.Context(), r.PathValue("app"), counts)
	s.reply(w, app, err)
}

func (s *Server) destroy(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.Destroy(r.Context(), r.PathValue("app")); err != nil {
		s.reply(w, nil, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	r.Body = http.MaxBytesReader(w, r.Body, 1<<30)
	if to := r.URL.Query().Get("to"); to != "" {
		s.deployTo(w, r, app, to)
		return
	}
	if v := r.URL.Query().Get("canary"); v != "" {
		percent, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || !(percent > 0 && percent < 100) {
			sendError(w, http.StatusBadRequest, "canary: want a share of traffic above 0 and below 100, such as 10")
			return
		}
		ce, ok := s.eng.(CanaryEngine)
		if !ok {
			sendError(w, http.StatusNotImplemented, "this engine does not do canary deploys")
			return
		}
		s.stream(w, app, func(emit func(Event)) (int, error) {
			return ce.DeployCanary(r.Context(), app, r.Body, percent, emit)
		})
		return
	}
	s.stream(w, app, func(emit func(Event)) (int, error) {
		return s.eng.Deploy(r.Context(), app, r.Body, emit)
	})
}

func (s *Server) promote(w http.ResponseWriter, r *http.Request) {
	if from := r.URL.Query().Get("from"); from != "" {
		s.promoteFrom(w, r, r.PathValue("app"), from)
		return
	}
	ce, ok := s.eng.(CanaryEngine)
	if !ok {
		sendError(w, http.StatusNotImplemented, "this engine does not do canary deploys")
		return
	}
	app := r.PathValue("app")
	s.stream(w, app, func(emit func(Event)) (int, error) {
		return ce.Promote(r.Context(), app, emit)
	})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	if !decode(w, r, &req) {
		return
	}
	app := r.PathValue("app")
	s.stream(w, app, func(emit func(Event)) (int, error) {
		return s.eng.Rollback(r.Context(), app, req.Release, emit)
	})
}

func (s *Server) setEnv(w http.ResponseWriter, r *http.Request) {
	var req EnvChange
	if !decode(w, r, &req) {
		return
	}
	app := r.PathValue("app")
	s.stream(w, app, func(emit func(Event)) (int, error) {
		return s.eng.SetEnv(r.Context(), app, req, emit)
	})
}

// stream answers with NDJSON events while op runs; the last line is a done
// or error event. Status is 200 once streaming started: errors after that
// travel in the error event.
func (s *Server) stream(w http.ResponseWriter, app string, op func(emit func(Event)) (int, error)) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	nd := newNDJSON(w)
	sawEnd := false
	n, err := op(func(e Event) {
		if e.Type == EventDone || e.Type == EventError {
			sawEnd = true
		}
		nd.write(e)
	})
	if sawEnd {
		return
	}
	// The operation ended before any release started (bad name, unknown
	// app, a bad bundle): say so as the final event.
	if err != nil {
		if !nd.started() {
			s.reply(w, nil, err)
			return
		}
		nd.write(Event{Time: time.Now().UTC(), App: app, Type: EventError, Error: err.Error()})
		return
	}
	nd.write(Event{Time: time.Now().UTC(), App: app, Release: n, Type: EventDone})
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if _, err := s.eng.App(r.Context(), app); err != nil {
		s.reply(w, nil, err)
		return
	}
	q := LogQuery{Follow: truthy(r.FormValue("follow")), Process: r.FormValue("process"), Lines: 100, Grep: r.FormValue("grep")}
	if v := r.FormValue("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			sendError(w, http.StatusBadRequest, "lines: want a number >= 0")
			return
		}
		q.Lines = n
	}
	if v := r.FormValue("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			sendError(w, http.StatusBadRequest, "since: want a duration such as 10m")
			return
		}
		q.Since = time.Now().Add(-d)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	nd := newNDJSON(w)
	nd.flushNow()
	err := s.eng.Logs(r.Context(), app, q, func(l LogLine) error { return nd.write(l) })
	if err != nil && r.Context().Err() == nil {
		s.log.Warn("logs", "app", app, "err", err)
	}
}

func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	if !decode(w, r, &req) {
		return
	}
	app := r.PathValue("app")
	if _, err := s.eng.App(r.Context(), app); err != nil {
		s.reply(w, nil, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	nd := newNDJSON(w)
	code, err := s.eng.Run(r.Context(), app, req.Command, func(stream, text string) {
		nd.write(RunOutput{Stream: stream, Text: text})
	})
	if err != nil {
		nd.write(RunOutput{Error: err.Error()})
		return
	}
	nd.write(RunOutput{Exit: &code})
}

// ndjson writes one JSON value a line and flushes each, from any goroutine.
type ndjson struct {
	mu  sync.Mutex // guards w, n
	w   http.ResponseWriter
	rc  *http.ResponseController
	n   int
	err error
}

func newNDJSON(w http.ResponseWriter) *ndjson {
	return &ndjson{w: w, rc: http.NewResponseController(w)}
}

func (nd *ndjson) write(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.err != nil {
		return nd.err
	}
	nd.n++
	if _, err := nd.w.Write(append(data, '\n')); err != nil {
		nd.err = err
		return err
	}
	if err := nd.rc.Flush(); err != nil {
		nd.err = err
	}
	return nd.err
}

func (nd *ndjson) flushNow() {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	nd.w.WriteHeader(http.StatusOK)
	nd.rc.Flush()
	nd.n++
}

func (nd *ndjson) started() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.n > 0
}

func (s *Server) reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, ErrBadRequest):
			status = http.StatusBadRequest
		case errors.Is(err, ErrConflict):
			status = http.StatusConflict
		}
		if status == http.StatusInternalServerError {
			s.log.Error("api", "err", err)
		}
		sendError(w, status, cleanError(err))
		return
	}
	sendJSON(w, http.StatusOK, v)
}

// cleanError drops the sentinel's own words ("not found: ...") that
// prefix messages built with "%w: ...".
func cleanError(err error) string {
	msg := err.Error()
	for _, s := range []error{ErrNotFound, ErrBadRequest, ErrConflict} {
		msg = strings.Replace(msg, s.Error()+": ", "", 1)
	}
	return msg
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		sendError(w, http.StatusBadRequest, fmt.Sprintf("bad request body: %v", err))
		return false
	}
	return true
}

func sendJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func sendError(w http.ResponseWriter, status int, msg string) {
	sendJSON(w, status, Error{Error: msg})
}

func truthy(s string) bool {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}
