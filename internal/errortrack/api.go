package errortrack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"pier/internal/store"
)

// Routes mounts the tracker's API (for the CLI and the dashboard) with
// handle, which the engine points at its authenticated API mux:
//
//	GET  /v1/apps/{app}/errors?status=unresolved|resolved|ignored|all&limit=N&cursor=C
//	                                              [Issue], last seen first, a page of at most
//	                                              limit (default 100, at most 1000); when more
//	                                              follow, X-Next-Cursor (and Link rel="next")
//	                                              gives the cursor of the next page
//	GET  /v1/apps/{app}/errors/counts             Counts (issues by status, events counted)
//	GET  /v1/apps/{app}/errors/{id}?events=N      IssueDetail (latest N events, default 1, at most 100)
//	POST /v1/apps/{app}/errors/{id}/resolve       Issue   (also /ignore, /unresolve)
//	GET  /v1/apps/{app}/errors/config             Config
//	PUT  /v1/apps/{app}/errors/config             Config -> Config
//	GET  /v1/apps/{app}/errors/dsn                {"dsn": ...}
//	GET  /v1/errors/{id}?events=N                 IssueDetail, for an id alone (admin token)
func (t *Tracker) Routes(handle func(pattern string, h http.Handler)) {
	handle("GET /v1/apps/{app}/errors", http.HandlerFunc(t.apiList))
	handle("GET /v1/apps/{app}/errors/config", http.HandlerFunc(t.apiGetConfig))
	handle("GET /v1/apps/{app}/errors/counts", http.HandlerFunc(t.apiCounts))
	handle("PUT /v1/apps/{app}/errors/config", http.HandlerFunc(t.apiPutConfig))
	handle("GET /v1/apps/{app}/errors/dsn", http.HandlerFunc(t.apiDSN))
	handle("GET /v1/apps/{app}/errors/{id}", http.HandlerFunc(t.apiShow))
	handle("POST /v1/apps/{app}/errors/{id}/{action}", http.HandlerFunc(t.apiAction))
	handle("GET /v1/errors/{id}", http.HandlerFunc(t.apiShow))
}

// IssueDetail is an issue with its latest events.
type IssueDetail struct {
	Issue  Issue   `json:"issue"`
	Events []Event `json:"events"`
}

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func (t *Tracker) reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		status, msg := http.StatusInternalServerError, err.Error()
		var ae *apiError
		switch {
		case errors.As(err, &ae):
			status, msg = ae.status, ae.msg
		case errors.Is(err, store.ErrNotFound):
			status = http.StatusNotFound
		default:
			t.log.Error("errortrack api", "err", err)
		}
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// knownApp fails with 404 for an app the tracker has never seen.
func (t *Tracker) knownApp(ctx context.Context, app string) error {
	if _, err := t.st.project(ctx, app); errors.Is(err, store.ErrNotFound) {
		return &apiError{http.StatusNotFound, fmt.Sprintf("no errors tracked for app %s (is it deployed?)", app)}
	} else if err != nil {
		return err
	}
	return nil
}

// Listing pages: ?limit= defaults to defaultPageSize, at most maxPageSize.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (t *Tracker) apiList(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if err := t.knownApp(r.Context(), app); err != nil {
		t.reply(w, nil, err)
		return
	}
	want := Status(r.FormValue("status"))
	switch want {
	case "":
		want = Unresolved
	case Unresolved, Resolved, Ignored, "all":
	default:
		t.reply(w, nil, &apiError{http.StatusBadRequest, "status: want unresolved, resolved, ignored or all"})
		return
	}
	limit := defaultPageSize
	if v := r.FormValue("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			t.reply(w, nil, &apiError{http.StatusBadRequest, fmt.Sprintf("limit: want a number from 1 to %d", maxPageSize)})
			return
		}
		limit = n
	}
	var from *cursor
	if v := r.FormValue("cursor"); v != "" {
		c, err := parseCursor(v)
		if err != nil {
			t.reply(w, nil, &apiError{http.StatusBadRequest, err.Error()})
			return
		}
		from = &c
	}
	out, next, err := t.st.listIssues(r.Context(), app, want, from, limit)
	if err != nil {
		t.reply(w, nil, err)
		return
	}
	for i := range out {
		out[i].UserKeys = nil
	}
	if next != nil {
		w.Header().Set("X-Next-Cursor", next.String())
		q := url.Values{"status": {string(want)}, "limit": {strconv.Itoa(limit)}, "cursor": {next.String()}}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, q.Encode()))
	}
	t.reply(w, out, nil)
}

func (t *Tracker) apiCounts(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if err := t.knownApp(r.Context(), app); err != nil {
		t.reply(w, nil, err)
		return
	}
	t.reply(w, t.st.idx.counts(app), nil)
}

func (t *Tracker) apiShow(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	n := 1
	if v := r.FormValue("events"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 || n > 100 {
			t.reply(w, nil, &apiError{http.StatusBadRequest, "events: want a number from 0 to 100"})
			return
		}
	}
	id := r.PathValue("id")
	var is Issue
	var err error
	if app := r.PathValue("app"); app != "" {
		is, err = t.st.issue(ctx, app, id)
	} else {
		is, err = t.st.findIssue(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		err = &apiError{http.StatusNotFound, fmt.Sprintf("no issue %s", id)}
	}
	if err != nil {
		t.reply(w, nil, err)
		return
	}
	is.UserKeys = nil
	d := IssueDetail{Issue: is, Events: []Event{}}
	if n > 0 {
		evs, err := t.st.latestEvents(ctx, is.App, is.ID, n)
		if err != nil {
			t.reply(w, nil, err)
			return
		}
		d.Events = append(d.Events, evs...)
	}
	t.reply(w, d, nil)
}

func (t *Tracker) apiAction(w http.ResponseWriter, r *http.Request) {
	app, id, action := r.PathValue("app"), r.PathValue("id"), r.PathValue("action")
	var to Status
	switch action {
	case "resolve":
		to = Resolved
	case "ignore":
		to = Ignored
	case "unresolve":
		to = Unresolved
	default:
		t.reply(w, nil, &apiError{http.StatusNotFound, fmt.Sprintf("unknown action %q: want resolve, ignore or unresolve", action)})
		return
	}
	is, err := t.SetStatus(r.Context(), app, id, to)
	is.UserKeys = nil
	t.reply(w, is, err)
}

// SetStatus resolves, ignores or reopens an issue. Resolving records the
// release it is resolved in (the app's current one, else the issue's last):
// an event from a newer release makes it a regression.
func (t *Tracker) SetStatus(ctx context.Context, app, id string, to Status) (Issue, error) {
	if _, err := t.st.issue(ctx, app, id); errors.Is(err, store.ErrNotFound) {
		return Issue{}, &apiError{http.StatusNotFound, fmt.Sprintf("app %s has no issue %s", app, id)}
	}
	current := t.currentRelease(app)
	is, err := store.Modify(ctx, t.st.issues, issueKey(app, id), func(is *Issue, exists bool) error {
		if !exists {
			return &apiError{http.StatusNotFound, fmt.Sprintf("app %s has no issue %s", app, id)}
		}
		is.Status = to
		switch to {
		case Resolved:
			is.Regression = false
			is.ResolvedIn = is.LastRelease
			if current != "" && (is.ResolvedIn == "" || newerRelease(current, is.ResolvedIn)) {
				is.ResolvedIn = current
			}
		case Unresolved:
			is.ResolvedIn = ""
		}
		return nil
	})
	if err != nil {
		return is, err
	}
	// A listing right after must show the new status: put it in the index
	// now rather than when the watch brings it (the revision read back
	// keeps the watch's older updates from undoing it).
	if e, err := t.st.issues.Get(ctx, issueKey(app, id)); err == nil {
		var cur indexedIssue
		if json.Unmarshal(e.Value, &cur) == nil {
			t.st.idx.put(app, id, cur, e.Revision)
		}
	}
	return is, nil
}

func (t *Tracker) apiGetConfig(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if err := t.knownApp(r.Context(), app); err != nil {
		t.reply(w, nil, err)
		return
	}
	c, err := t.st.appConfig(r.Context(), app)
	t.reply(w, c, err)
}

func (t *Tracker) apiPutConfig(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if err := t.knownApp(r.Context(), app); err != nil {
		t.reply(w, nil, err)
		return
	}
	var c Config
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.reply(w, nil, &apiError{http.StatusBadRequest, fmt.Sprintf("bad request body: %v", err)})
		return
	}
	if err := c.validate(); err != nil {
		t.reply(w, nil, &apiError{http.StatusBadRequest, err.Error()})
		return
	}
	_, err := store.PutJSON(r.Context(), t.st.config, app, c)
	t.reply(w, c, err)
}

func (c Config) validate() error {
	if c.Webhook != "" {
		u, err := url.Parse(c.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhook: want an http(s) URL, got %q", c.Webhook)
		}
	}
	switch {
	case c.AlertsPerHour < 0 || c.AlertsPerHour > 3600:
		return errors.New("alerts_per_hour: want 0 (default 20) to 3600")
	case c.RatePerSecond < 0 || c.Burst < 0:
		return errors.New("rate_per_second and burst: want 0 (default) or more")
	case c.MaxIssues < 0:
		return errors.New("max_issues: want 0 (default) or more")
	case c.RetentionDays < 0 || c.RetentionDays > maxRetentionDays:
		return fmt.Errorf("retention_days: want 0 (default) to %d", maxRetentionDays)
	}
	return nil
}

func (t *Tracker) apiDSN(w http.ResponseWriter, r *http.Request) {
	p, err := t.st.project(r.Context(), r.PathValue("app"))
	if errors.Is(err, store.ErrNotFound) {
		err = &apiError{http.StatusNotFound, fmt.Sprintf("no errors tracked for app %s (is it deployed?)", r.PathValue("app"))}
	}
	if err != nil {
		t.reply(w, nil, err)
		return
	}
	t.reply(w, map[string]any{"dsn": t.DSN(p), "project": p.ID}, nil)
}

// sweepLoop applies retention every SweepEvery.
func (t *Tracker) sweepLoop(ctx context.Context) {
	tick := time.NewTicker(t.opts.SweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := t.Sweep(ctx); err != nil && ctx.Err() == nil {
				t.log.Warn("errortrack: retention", "err", err)
			}
		}
	}
}

// Sweep applies each app's retention (its Config, else the engine's
// Options): its events stored longer ago than its retention age leave the
// stream (the issues they were counted into keep their counts); issues
// last seen longer ago than that, and those past its issue cap (least
// recently seen first), go with their remaining events.
func (t *Tracker) Sweep(ctx context.Context) error {
	return t.sweepAt(ctx, time.Now())
}

// sweepAt is Sweep as of now.
func (t *Tracker) sweepAt(ctx context.Context, now time.Time) error {
	keys, err := t.st.projects.Keys(ctx, "app.*")
	if err != nil {
		return fmt.Errorf("errortrack: retention: list apps: %w", err)
	}
	var errs []error
	for _, k := range keys {
		app := k[len("app."):]
		if err := t.sweepApp(ctx, app, now); err != nil {
			errs = append(errs, fmt.Errorf("errortrack: retention of %s: %w", app, err))
		}
	}
	return errors.Join(errs...)
}

func (t *Tracker) sweepApp(ctx context.Context, app string, now time.Time) error {
	cfg, err := t.st.appConfig(ctx, app)
	if err != nil {
		return err
	}
	maxAge, maxIssues := t.retention(cfg)
	for i, is := range t.st.idx.issuesOf(app) { // last seen first
		if i >= maxIssues || now.Sub(is.lastSeen) > maxAge {
			if err := t.st.dropIssue(ctx, app, is.id); err != nil {
				return err
			}
		}
	}
	return t.st.events.PurgeBefore(ctx, "errors."+app+".>", now.Add(-maxAge))
}

// retention is how long an app's events are kept and how many issues.
func (t *Tracker) retention(cfg Config) (time.Duration, int) {
	maxAge, maxIssues := t.opts.MaxAge, t.opts.MaxIssues
	if cfg.RetentionDays > 0 {
		maxAge = time.Duration(cfg.RetentionDays) * 24 * time.Hour
	}
	if cfg.MaxIssues > 0 {
		maxIssues = cfg.MaxIssues
	}
	return maxAge, maxIssues
}
