package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"pier/internal/api"
)

// pages are the parsed templates, one set per page, all sharing the
// layout and the partials.
type pages struct {
	byName map[string]*template.Template
}

var pageNames = []string{"login", "overview", "app", "deploys", "issue", "problem"}

func parsePages() (*pages, error) {
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(files,
			"templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		d := time.Since(t).Round(time.Second)
		switch {
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return t.Format("2006-01-02")
	},
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	// rps keeps a quiet app's trickle visible (1 request a minute is 0.02/s).
	"rps": func(f float64) string {
		if f > 0 && f < 1 {
			return strconv.FormatFloat(f, 'f', 2, 64)
		}
		return strconv.FormatFloat(f, 'f', 1, 64)
	},
	"pct": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"ready": func(ins []api.Instance) int {
		n := 0
		for _, i := range ins {
			if i.Ready {
				n++
			}
		}
		return n
	},
	"inApp": func(f Frame) bool { return f.InApp == nil || *f.InApp },
	"reverse": func(fs []Frame) []Frame {
		out := slices.Clone(fs)
		slices.Reverse(out)
		return out
	},
	"str": func(b []byte) string { return string(b) },
	// ms and ratio show a figure the metrics service may not have.
	"ms": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return strconv.FormatFloat(*p, 'f', 1, 64) + " ms"
	},
	"ratio": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return strconv.FormatFloat(*p*100, 'f', 1, 64) + "%"
	},
	"issueItem": func(app, csrf, back string, is Issue) issueItem {
		return issueItem{App: app, CSRF: csrf, Back: back, Issue: is}
	},
	"issueActions": issueActions,
	// plural words a count: "1 event", "3 events".
	"plural": func(n any, word string) string {
		v := fmt.Sprint(n)
		if v == "1" {
			return v + " " + word
		}
		return v + " " + word + "s"
	},
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
}

// issueItem is what an issue's line and its buttons need.
type issueItem struct {
	App, CSRF string
	Back      string // "issue": the buttons bring the browser back to the issue page
	Issue     Issue
}

// issueActions are the status changes an issue in status offers.
func issueActions(status string) []string {
	if isOpen(status) {
		return []string{"resolve", "ignore"}
	}
	return []string{"unresolve"}
}

// isOpen: an issue still to look at (the tracker's "unresolved"; an
// empty status is a tracker that does not say).
func isOpen(status string) bool { return status == "unresolved" || status == "" }

// render writes a page (or one of its named templates, for fragments).
func (s *Server) render(w http.ResponseWriter, status int, page string, data map[string]any) {
	s.renderTemplate(w, status, page, "layout", data)
}

func (s *Server) renderTemplate(w http.ResponseWriter, status int, page, name string, data map[string]any) {
	var buf bytes.Buffer
	if err := s.pages.byName[page].ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("render", "page", page, "template", name, "err", err)
		http.Error(w, "the dashboard failed to render this page (see the engine log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// IssueCounter is what an Errors may also do: count an app's open issues
// without listing them (Issues gives one page, the most recently seen).
type IssueCounter interface {
	OpenIssues(ctx context.Context, app string) (int, error)
}

// data starts a page's template data with what every page needs.
func (s *Server) data(r *http.Request, title string) map[string]any {
	d := map[string]any{"Title": title, "Services": s.services()}
	if se := sessionFrom(r.Context()); se != nil {
		d["CSRF"] = se.csrf
	}
	return d
}

func (s *Server) services() map[string]bool {
	return map[string]bool{"metrics": s.opts.Metrics != nil, "errors": s.opts.Errors != nil, "tasks": s.opts.Tasks != nil}
}

// fail answers an engine error: 404 for an unknown app, 400 for a bad
// request, 500 (logged) otherwise.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, api.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, api.ErrBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, api.ErrConflict):
		status = http.StatusConflict
	default:
		s.log.Error("dashboard", "path", r.URL.Path, "err", err)
	}
	// A browser that followed a link or sent a form gets a page it can
	// find its way back from; htmx and scripts get the message alone.
	if r.Header.Get("HX-Request") == "" && strings.Contains(r.Header.Get("Accept"), "text/html") {
		d := s.data(r, "That did not work")
		d["Problem"] = err.Error()
		if app := r.PathValue("app"); app != "" && status != http.StatusNotFound {
			d["App"] = app
		}
		s.render(w, status, "problem", d)
		return
	}
	http.Error(w, err.Error(), status)
}

// appRow is one line of the overview.
type appRow struct {
	App     api.App
	Metrics *Summary // nil without metrics
	Issues  int      // unresolved issues
	// IssuesKnown: the error tracker answered for this app.
	IssuesKnown bool
}

func (s *Server) appRows(ctx context.Context) ([]appRow, error) {
	apps, err := s.opts.Engine.Apps(ctx)
	if err != nil {
		return nil, err
	}
	sums := map[string]Summary{}
	if s.opts.Metrics != nil {
		for _, m := range s.opts.Metrics.Summary() {
			sums[m.App] = m
		}
	}
	rows := make([]appRow, len(apps))
	for i, a := range apps {
		rows[i].App = a
		if s.opts.Metrics != nil {
			m := sums[a.Name]
			rows[i].Metrics = &m
		}
		if c, ok := s.opts.Errors.(IssueCounter); ok {
			if n, err := c.OpenIssues(ctx, a.Name); err == nil {
				rows[i].Issues, rows[i].IssuesKnown = n, true
			}
		} else if s.opts.Errors != nil {
			if is, err := s.opts.Errors.Issues(ctx, a.Name); err == nil {
				n := 0
				for _, x := range is {
					if isOpen(x.Status) {
						n++
					}
				}
				rows[i].Issues, rows[i].IssuesKnown = n, true
			}
		}
	}
	return rows, nil
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	s.renderOverview(w, r, "layout")
}

// appsTable is the overview's table alone, which the page refreshes.
func (s *Server) appsTable(w http.ResponseWriter, r *http.Request) {
	s.renderOverview(w, r, "apps-table")
}

func (s *Server) renderOverview(w http.ResponseWriter, r *http.Request, tmpl string) {
	rows, err := s.appRows(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.data(r, "Apps")
	d["Rows"] = rows
	s.renderTemplate(w, http.StatusOK, "overview", tmpl, d)
}

// queueView is a queue with its dead tasks.
type queueView struct {
	Queue
	DeadTasks []DeadTask
}

func (s *Server) appPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("app")
	app, err := s.opts.Engine.App(ctx, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rels, err := s.opts.Engine.Releases(ctx, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	env, err := s.opts.Engine.Env(ctx, name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.data(r, name)
	d["App"] = app
	d["Processes"] = processes(app)
	d["Releases"] = rels
	d["EnvKeys"] = slices.Sorted(maps.Keys(env))
	if r.FormValue("show") == "env" {
		d["Env"] = env
	}
	if s.opts.Errors != nil {
		is, err := s.opts.Errors.Issues(ctx, name)
		if err != nil {
			d["IssuesError"] = err.Error()
		}
		d["Issues"] = is
		var open, closed []Issue
		for _, x := range is {
			if isOpen(x.Status) {
				open = append(open, x)
			} else {
				closed = append(closed, x)
			}
		}
		d["OpenIssues"], d["ClosedIssues"] = open, closed
	}
	if s.opts.Tasks != nil {
		qs, err := s.opts.Tasks.Queues(ctx, name)
		if err != nil {
			d["QueuesError"] = err.Error()
		}
		views := make([]queueView, len(qs))
		for i, q := range qs {
			views[i].Queue = q
			if q.Dead > 0 {
				views[i].DeadTasks, _ = s.opts.Tasks.Dead(ctx, name, q.Name, 20)
			}
		}
		d["Queues"] = views
	}
	s.render(w, http.StatusOK, "app", d)
}

// processes lists an app's process types, web first.
func processes(a api.App) []string {
	ps := slices.Sorted(maps.Keys(a.Scale))
	if i := slices.Index(ps, "web"); i > 0 {
		ps = append([]string{"web"}, slices.Delete(ps, i, i+1)...)
	}
	return ps
}

func (s *Server) instances(w http.ResponseWriter, r *http.Request) {
	app, err := s.opts.Engine.App(r.Context(), r.PathValue("app"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.data(r, app.Name)
	d["App"] = app
	s.renderTemplate(w, http.StatusOK, "app", "instances", d)
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	app, err := s.opts.Engine.App(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	counts := map[string]int{}
	for p := range app.Scale {
		v := strings.TrimSpace(r.PostFormValue("scale." + p))
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			http.Error(w, fmt.Sprintf("%s: want a number of instances from 0 to 100", p), http.StatusBadRequest)
			return
		}
		counts[p] = n
	}
	if len(counts) == 0 {
		http.Error(w, "nothing to scale", http.StatusBadRequest)
		return
	}
	if _, err := s.opts.Engine.Scale(r.Context(), name, counts); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("scaled from the dashboard", "app", name, "counts", counts)
	if r.Header.Get("HX-Request") != "" {
		s.instances(w, r)
		return
	}
	http.Redirect(w, r, "/apps/"+name+"#processes", http.StatusSeeOther)
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	n, err := strconv.Atoi(r.PostFormValue("release"))
	if err != nil || n < 0 {
		http.Error(w, "release: want a release number", http.StatusBadRequest)
		return
	}
	s.rollout(w, r, name, fmt.Sprintf("rollback to v%d", n), func(ctx context.Context, emit func(api.Event)) (int, error) {
		return s.opts.Engine.Rollback(ctx, name, n, emit)
	})
}

// rollout starts a release (rollback, config change) that outlives the
// request and sends the browser to the deploy view, where its progress
// arrives through the events stream. It waits (up to RolloutWait) for the
// first progress event or the end, so that a refusal (unknown app, a
// release that never worked, a bad config var) is answered here instead
// of only logged.
func (s *Server) rollout(w http.ResponseWriter, r *http.Request, app, what string, op func(context.Context, func(api.Event)) (int, error)) {
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(s.opts.Background, 15*time.Minute)
		defer cancel()
		_, err := op(ctx, func(api.Event) { once.Do(func() { close(started) }) })
		if err != nil {
			s.log.Warn("from the dashboard", "app", app, "what", what, "err", err)
		}
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		if err != nil {
			s.fail(w, r, err)
			return
		}
		select {
		case <-started:
			// It made a release and ended before this select ran (both
			// cases were ready, and select picks at random).
		default:
			// Ended without a release (no release yet to derive one from).
			s.log.Info("from the dashboard", "app", app, "what", what)
			http.Redirect(w, r, "/apps/"+app+"#releases", http.StatusSeeOther)
			return
		}
	case <-time.After(s.opts.RolloutWait):
		// Queued behind another change to the app (the engine makes them
		// one at a time): it shows in the deploy view when its turn comes.
	case <-r.Context().Done():
		return
	}
	s.log.Info("from the dashboard", "app", app, "what", what)
	http.Redirect(w, r, "/apps/"+app+"/deploys", http.StatusSeeOther)
}

// setEnv sets one config var (name, value) or, at /env/unset, unsets
// one (name): a new release, as `pier env set` makes.
func (s *Server) setEnv(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	key := strings.TrimSpace(r.PostFormValue("name"))
	if key == "" {
		http.Error(w, "name: want a config var name such as LOG_LEVEL", http.StatusBadRequest)
		return
	}
	var change api.EnvChange
	what := "env unset " + key
	if strings.HasSuffix(r.URL.Path, "/unset") {
		change.Unset = []string{key}
	} else {
		change.Set = map[string]string{key: r.PostFormValue("value")}
		what = "env set " + key
	}
	s.rollout(w, r, name, what, func(ctx context.Context, emit func(api.Event)) (int, error) {
		return s.opts.Engine.SetEnv(ctx, name, change, emit)
	})
}

func (s *Server) env(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	env, err := s.opts.Engine.Env(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.data(r, name)
	d["App"] = api.App{Name: name}
	d["EnvKeys"] = slices.Sorted(maps.Keys(env))
	if r.FormValue("show") == "1" {
		d["Env"] = env
	}
	s.renderTemplate(w, http.StatusOK, "app", "env", d)
}

func (s *Server) metricsJSON(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics == nil {
		http.Error(w, "metrics are not available", http.StatusNotFound)
		return
	}
	name := r.PathValue("app")
	if _, err := s.opts.Engine.App(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	since := time.Hour
	if v := r.FormValue("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			http.Error(w, "since: want a duration such as 15m", http.StatusBadRequest)
			return
		}
		since = d
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.opts.Metrics.Series(name, since))
}

func (s *Server) deploysPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("app")
	app, err := s.opts.Engine.App(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.data(r, name+": deploys")
	d["App"] = app
	s.render(w, http.StatusOK, "deploys", d)
}

func (s *Server) issuePage(w http.ResponseWriter, r *http.Request) {
	if s.opts.Errors == nil {
		http.Error(w, "error tracking is not available", http.StatusNotFound)
		return
	}
	name := r.PathValue("app")
	is, err := s.opts.Errors.Issue(r.Context(), name, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := s.data(r, is.Issue.Title)
	d["App"] = api.App{Name: name}
	d["Detail"] = is
	s.render(w, http.StatusOK, "issue", d)
}

func (s *Server) deadTask(w http.ResponseWriter, r *http.Request) {
	if s.opts.Tasks == nil {
		http.Error(w, "task queues are not available", http.StatusNotFound)
		return
	}
	app, queue, id := r.PathValue("app"), r.PathValue("queue"), r.PathValue("id")
	var err error
	switch r.PathValue("action") {
	case "retry":
		err = s.opts.Tasks.Retry(r.Context(), app, queue, id)
	case "drop":
		err = s.opts.Tasks.Drop(r.Context(), app, queue, id)
	default:
		http.Error(w, "want retry or drop", http.StatusNotFound)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/apps/"+app+"#queues", http.StatusSeeOther)
}

func (s *Server) issueAction(w http.ResponseWriter, r *http.Request) {
	if s.opts.Errors == nil {
		http.Error(w, "error tracking is not available", http.StatusNotFound)
		return
	}
	app, id, action := r.PathValue("app"), r.PathValue("id"), r.PathValue("action")
	if action != "resolve" && action != "ignore" && action != "unresolve" {
		http.Error(w, "want resolve, ignore or unresolve", http.StatusNotFound)
		return
	}
	if err := s.opts.Errors.SetStatus(r.Context(), app, id, action); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("issue from the dashboard", "app", app, "issue", id, "action", action)
	back := "/apps/" + app + "#errors"
	if r.PostFormValue("back") == "issue" {
		back = "/apps/" + app + "/errors/" + id
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

func (s *Server) queueAction(w http.ResponseWriter, r *http.Request) {
	if s.opts.Tasks == nil {
		http.Error(w, "task queues are not available", http.StatusNotFound)
		return
	}
	app, queue := r.PathValue("app"), r.PathValue("queue")
	var err error
	switch r.PathValue("action") {
	case "pause":
		err = s.opts.Tasks.Pause(r.Context(), app, queue)
	case "resume":
		err = s.opts.Tasks.Resume(r.Context(), app, queue)
	default:
		http.Error(w, "want pause or resume", http.StatusNotFound)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("queue from the dashboard", "app", app, "queue", queue, "action", r.PathValue("action"))
	http.Redirect(w, r, "/apps/"+app+"#queues", http.StatusSeeOther)
}
