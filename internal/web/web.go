// Package web is pier's dashboard: server-rendered html/template pages,
// made live with htmx (fragments polled or pushed over server-sent events)
// and charted with uPlot, both vendored from npm into assets/vendor (see
// package.json and vendor.mjs) and embedded in the binary.
//
// The engine mounts the dashboard at / on its API listener, beside /v1/.
// It authenticates itself: the admin token logs a browser in, which then
// carries a random session id in an HttpOnly, SameSite=Strict cookie; the
// sessions live in memory, so an engine restart logs everyone out. Every
// POST must carry the session's CSRF token (a hidden "csrf" field, or the
// X-CSRF-Token header htmx sends) and, when the browser sends one, an
// Origin of the dashboard's own host.
//
// What it shows comes through small interfaces the package owns: Engine
// (apps, releases, scale, rollback, config vars, logs and deploy events),
// and the optional Metrics, Errors and Tasks. A nil optional part leaves
// its section labelled as not available rather than showing made-up data.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"pier/internal/api"
)

//go:embed assets templates
var files embed.FS

// Engine is what the dashboard needs from the engine core.
type Engine interface {
	Apps(ctx context.Context) ([]api.App, error)
	App(ctx context.Context, name string) (api.App, error)
	Releases(ctx context.Context, app string) ([]api.Release, error)
	Scale(ctx context.Context, app string, counts map[string]int) (api.App, error)
	// Rollback makes a new release from an older one (0: the previous)
	// and rolls it out, emitting progress as a deploy does.
	Rollback(ctx context.Context, app string, release int, emit func(api.Event)) (int, error)
	Env(ctx context.Context, app string) (map[string]string, error)
	// SetEnv sets and unsets config vars: a new release, rolled out with
	// progress emitted as a deploy does (like `pier env set`).
	SetEnv(ctx context.Context, app string, change api.EnvChange, emit func(api.Event)) (int, error)
	// Logs calls fn with the app's log lines (and new ones with q.Follow)
	// until ctx ends or fn fails.
	Logs(ctx context.Context, app string, q api.LogQuery, fn func(api.LogLine) error) error
	// Events calls fn with the app's last `last` deploy events, then with
	// each new one until ctx ends or fn fails: every deploy, rollback and
	// config change, whoever started it.
	Events(ctx context.Context, app string, last int, fn func(api.Event) error) error
}

// Metrics is the metrics service, as far as the dashboard charts it.
type Metrics interface {
	// Summary is every app's last minute.
	Summary() []Summary
	// Series is one app's history over the last `since`.
	Series(app string, since time.Duration) Series
}

// Summary is an app's last minute at a glance. A nil figure is one the
// metrics service does not have (no requests, no cache): the overview
// shows "—" rather than a made-up 0.
type Summary struct {
	App       string
	RPS       float64
	P99       *float64 // milliseconds
	ErrorRate *float64 // 5xx answers / all answers
	// CacheHitRatio is the share of answers the gateway's cache gave.
	CacheHitRatio *float64
}

// Series is an app's history, one slot per time step; the value slices
// have the length of Times.
type Series struct {
	Step  int     `json:"step"`  // seconds between points
	Times []int64 `json:"times"` // unix seconds
	// From the gateway (web processes).
	RPS []float64 `json:"rps"`
	P50 []float64 `json:"p50"`
	P99 []float64 `json:"p99"`
	// From the supervisor, summed over instances of every process type.
	CPU []float64 `json:"cpu"`    // cores
	RSS []float64 `json:"rss_mb"` // MiB
}

// Errors is the error tracker, as far as the dashboard shows it.
type Errors interface {
	Issues(ctx context.Context, app string) ([]Issue, error)
	Issue(ctx context.Context, app, id string) (IssueDetail, error)
	// SetStatus resolves, ignores or reopens an issue; action is
	// "resolve", "ignore" or "unresolve" (as `pier errors` has them).
	SetStatus(ctx context.Context, app, id, action string) error
}

// Issue is a group of error events (JSON as the errors API has it).
type Issue struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	Culprit    string    `json:"culprit"`
	Level      string    `json:"level"`
	Status     string    `json:"status"`
	Regression bool      `json:"regression"`
	Count      int64     `json:"count"`
	Users      int       `json:"users"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	LastRel    string    `json:"last_release"`
}

// IssueDetail is an issue with its latest events.
type IssueDetail struct {
	Issue  Issue        `json:"issue"`
	Events []ErrorEvent `json:"events"`
}

// ErrorEvent is one occurrence of an issue.
type ErrorEvent struct {
	ID         string      `json:"id"`
	Timestamp  time.Time   `json:"timestamp"`
	Release    string      `json:"release"`
	Message    string      `json:"message"`
	Source     string      `json:"source"` // sdk or crash
	Exceptions []Exception `json:"exceptions"`
	Output     string      `json:"output"` // the process output a crash report came from
}

// Exception is one exception of a chain, its frames oldest call first.
type Exception struct {
	Type   string  `json:"type"`
	Value  string  `json:"value"`
	Module string  `json:"module"`
	Frames []Frame `json:"frames"`
}

// Frame is one stack frame.
type Frame struct {
	Filename    string `json:"filename"`
	Function    string `json:"function"`
	Module      string `json:"module"`
	Lineno      int    `json:"lineno"`
	InApp       *bool  `json:"in_app"`
	ContextLine string `json:"context_line"`
}

// Tasks is the task queues service, as far as the dashboard shows it.
type Tasks interface {
	Queues(ctx context.Context, app string) ([]Queue, error)
	Dead(ctx context.Context, app, queue string, limit int) ([]DeadTask, error)
	// Retry puts a dead task back to ready; Drop deletes it.
	Retry(ctx context.Context, app, queue, id string) error
	Drop(ctx context.Context, app, queue, id string) error
	// Pause stops delivery from a queue until Resume (enqueues still
	// land), as `pier tasks pause` does.
	Pause(ctx context.Context, app, queue string) error
	Resume(ctx context.Context, app, queue string) error
}

// Queue is one queue's figures.
type Queue struct {
	Name     string `json:"name"`
	Ready    int    `json:"ready"`
	Reserved int    `json:"reserved"`
	Delayed  int    `json:"delayed"`
	Dead     int    `json:"dead"`
	Paused   bool   `json:"paused"`
}

// DeadTask is a task that used up its attempts.
type DeadTask struct {
	ID      uint64    `json:"id"`
	Queue   string    `json:"queue"`
	Body    []byte    `json:"body"`
	Name    string    `json:"name"`
	Attempt int       `json:"attempt"`
	Error   string    `json:"error"`
	Created time.Time `json:"created"`
}

// Options configure New.
type Options struct {
	// Token is the admin token that logs a browser in. Required.
	Token string
	// Engine is the engine core. Required.
	Engine Engine
	// Metrics, Errors and Tasks are optional: if nil, their sections say
	// the service is not available.
	Metrics Metrics
	Errors  Errors
	Tasks   Tasks
	// Logger receives the dashboard's logs. If nil, they are discarded.
	Logger *slog.Logger
	// SessionTTL is how long a login lasts. If 0, 12 hours.
	SessionTTL time.Duration
	// Now tells the time (sessions expire by it). If nil, time.Now.
	Now func() time.Time
	// Background is the context rollbacks started from the dashboard run
	// in, so they outlive the request that started them. If nil,
	// context.Background().
	Background context.Context
	// RolloutWait is how long a rollback or config change from a page
	// waits to start (another change to the app goes first) before the
	// browser is sent to the deploy view anyway. If 0, 3 seconds.
	RolloutWait time.Duration
}

// Server is the dashboard's http.Handler.
type Server struct {
	opts     Options
	log      *slog.Logger
	pages    *pages
	sessions *sessions
	mux      *http.ServeMux
}

// New returns the dashboard. It fails if an option is missing or a
// template does not parse.
func New(opts Options) (*Server, error) {
	if opts.Token == "" || opts.Engine == nil {
		return nil, errors.New("web: Token and Engine are required")
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Background == nil {
		opts.Background = context.Background()
	}
	if opts.RolloutWait == 0 {
		opts.RolloutWait = 3 * time.Second
	}
	s := &Server{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.sessions = newSessions(opts.SessionTTL, opts.Now)
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	assets, _ := fs.Sub(files, "assets")
	static := http.StripPrefix("/assets/", http.FileServerFS(assets))
	s.mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		static.ServeHTTP(w, r)
	}))
	s.mux.HandleFunc("GET /login", s.loginPage)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.Handle("POST /logout", s.authed(s.logout))
	s.mux.Handle("GET /{$}", s.authed(s.overview))
	s.mux.Handle("GET /apps-table", s.authed(s.appsTable))
	s.mux.Handle("GET /apps/{app}", s.authed(s.appPage))
	s.mux.Handle("GET /apps/{app}/instances", s.authed(s.instances))
	s.mux.Handle("POST /apps/{app}/scale", s.authed(s.scale))
	s.mux.Handle("POST /apps/{app}/rollback", s.authed(s.rollback))
	s.mux.Handle("GET /apps/{app}/env", s.authed(s.env))
	s.mux.Handle("POST /apps/{app}/env", s.authed(s.setEnv))
	s.mux.Handle("POST /apps/{app}/env/unset", s.authed(s.setEnv))
	s.mux.Handle("GET /apps/{app}/metrics.json", s.authed(s.metricsJSON))
	s.mux.Handle("GET /apps/{app}/logs/stream", s.authed(s.logStream))
	s.mux.Handle("GET /apps/{app}/deploys", s.authed(s.deploysPage))
	s.mux.Handle("GET /apps/{app}/events/stream", s.authed(s.eventStream))
	s.mux.Handle("GET /apps/{app}/errors/{id}", s.authed(s.issuePage))
	s.mux.Handle("POST /apps/{app}/errors/{id}/{action}", s.authed(s.issueAction))
	s.mux.Handle("POST /apps/{app}/tasks/{queue}/{action}", s.authed(s.queueAction))
	s.mux.Handle("POST /apps/{app}/tasks/{queue}/dead/{id}/{action}", s.authed(s.deadTask))
}

// ServeHTTP answers the dashboard's routes with its security headers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}
