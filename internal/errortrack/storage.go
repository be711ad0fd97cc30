package errortrack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"pier/internal/store"
)

// Store layout (all in the engine's JetStream):
//
//	stream ERRORS, subjects errors.<app>.<issue>: one message per event
//	    (Event JSON); the latest EventsPerIssue per issue, none older
//	    than the app's retention (Sweep), at most MaxBytes in all
//	KV errors_issues   <app>.<issue> -> Issue
//	KV errors_projects app.<app> -> Project, id.<n> -> app name, next -> last id
//	KV errors_config   <app> -> Config
type storage struct {
	events   *store.Stream
	issues   *store.Bucket
	projects *store.Bucket
	config   *store.Bucket
	idx      *issueIndex // issues by app and last seen, from a watch of issues

	mu     sync.Mutex      // guards byID
	byID   map[int]Project // cache of projects by id; projects never change, only go
	byName map[string]Project
}

// Project is an app's identity on the Sentry protocol: the DSN's project
// id and public key.
type Project struct {
	App     string    `json:"app"`
	ID      int       `json:"id"`
	Key     string    `json:"key"`
	Created time.Time `json:"created"`
}

// Config is an app's error-tracking settings, changed through the API.
type Config struct {
	// Webhook receives a JSON POST for each new issue and regression
	// ("" = no alerts).
	Webhook string `json:"webhook,omitempty"`
	// AlertsPerHour caps the webhook calls (0 = 20).
	AlertsPerHour int `json:"alerts_per_hour,omitempty"`
	// RatePerSecond and Burst bound the events the app may send; past
	// them the SDK gets 429 (0 = the engine's defaults).
	RatePerSecond float64 `json:"rate_per_second,omitempty"`
	Burst         int     `json:"burst,omitempty"`
	// MaxIssues and RetentionDays bound what is kept: events stored more
	// than RetentionDays ago leave (their issues keep counting them), and
	// so do issues last seen that long ago and those past MaxIssues, least
	// recently seen first (0 = the engine's defaults, Options.MaxIssues
	// and Options.MaxAge). RetentionDays is at most maxRetentionDays.
	MaxIssues     int `json:"max_issues,omitempty"`
	RetentionDays int `json:"retention_days,omitempty"`
}

// maxRetentionDays is the longest retention an app may set; the events
// stream's own age bound (the larger of it and Options.MaxAge) is a
// ceiling that holds even when retention sweeps do not run.
const maxRetentionDays = 365

func openStorage(ctx context.Context, st *store.Store, o *Options) (*storage, error) {
	s := &storage{byID: map[int]Project{}, byName: map[string]Project{}}
	var err error
	if s.events, err = st.Stream(ctx, store.StreamConfig{
		Name: "ERRORS", Subjects: []string{"errors.>"},
		// Each app's retention age is applied by Sweep; the stream's own
		// age bound is only the ceiling no app may pass.
		MaxMsgsPerSubject: int64(o.EventsPerIssue), MaxAge: max(o.MaxAge, maxRetentionDays*24*time.Hour), MaxBytes: o.MaxBytes,
	}); err != nil {
		return nil, err
	}
	if s.issues, err = st.Bucket(ctx, "errors_issues", 1); err != nil {
		return nil, err
	}
	if s.projects, err = st.Bucket(ctx, "errors_projects", 1); err != nil {
		return nil, err
	}
	if s.config, err = st.Bucket(ctx, "errors_config", 1); err != nil {
		return nil, err
	}
	s.idx = newIssueIndex()
	if err := s.idx.watch(ctx, s.issues); err != nil {
		return nil, fmt.Errorf("index issues: %w", err)
	}
	return s, nil
}

func eventSubject(app, issue string) string { return "errors." + app + "." + issue }

func issueKey(app, issue string) string { return app + "." + issue }

// ensureProject returns app's project, creating it (a new numeric id and
// key) the first time.
func (s *storage) ensureProject(ctx context.Context, app string) (Project, error) {
	s.mu.Lock()
	p, ok := s.byName[app]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	if _, err := store.GetJSON(ctx, s.projects, "app."+app, &p); err == nil {
		s.remember(p)
		return p, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return Project{}, err
	}
	next, err := store.Modify(ctx, s.projects, "next", func(n *int, _ bool) error { *n++; return nil })
	if err != nil {
		return Project{}, fmt.Errorf("errortrack: allocate project id: %w", err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	p = Project{App: app, ID: next, Key: hex.EncodeToString(key), Created: time.Now().UTC()}
	if _, err := s.projects.Put(ctx, "id."+strconv.Itoa(p.ID), []byte(app)); err != nil {
		return Project{}, err
	}
	data, _ := json.Marshal(p)
	if _, err := s.projects.Create(ctx, "app."+app, data); errors.Is(err, store.ErrExists) {
		// Another engine (or call) made it first: use theirs.
		s.projects.Delete(ctx, "id."+strconv.Itoa(p.ID))
		if _, err := store.GetJSON(ctx, s.projects, "app."+app, &p); err != nil {
			return Project{}, err
		}
	} else if err != nil {
		return Project{}, err
	}
	s.remember(p)
	return p, nil
}

func (s *storage) remember(p Project) {
	s.mu.Lock()
	s.byID[p.ID], s.byName[p.App] = p, p
	s.mu.Unlock()
}

// project finds a project by app name (ErrNotFound when the app never ran).
func (s *storage) project(ctx context.Context, app string) (Project, error) {
	s.mu.Lock()
	p, ok := s.byName[app]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	if _, err := store.GetJSON(ctx, s.projects, "app."+app, &p); err != nil {
		return Project{}, err
	}
	s.remember(p)
	return p, nil
}

// projectByID finds a project by its DSN id.
func (s *storage) projectByID(ctx context.Context, id int) (Project, error) {
	s.mu.Lock()
	p, ok := s.byID[id]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	e, err := s.projects.Get(ctx, "id."+strconv.Itoa(id))
	if err != nil {
		return Project{}, err
	}
	return s.project(ctx, string(e.Value))
}

// appendEvent stores ev durably and returns its stream sequence.
func (s *storage) appendEvent(ctx context.Context, ev *Event) (uint64, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return 0, fmt.Errorf("errortrack: encode event: %w", err)
	}
	return s.events.Append(ctx, eventSubject(ev.App, ev.Issue), data, nil)
}

func (s *storage) issue(ctx context.Context, app, id string) (Issue, error) {
	var is Issue
	_, err := store.GetJSON(ctx, s.issues, issueKey(app, id), &is)
	return is, err
}

// listIssues returns a page of app's issues with status want ("all" for
// any), most recently seen first, after from (nil: the first page), and
// the next page's cursor (nil: that was the last). The index picks the
// page; only its issues are read, fresh, from the bucket, so an issue
// deleted or changed since the index saw it is skipped when it no longer
// matches.
func (s *storage) listIssues(ctx context.Context, app string, want Status, from *cursor, limit int) ([]Issue, *cursor, error) {
	ids, next := s.idx.page(app, want, from, limit)
	out := make([]Issue, 0, len(ids))
	for _, id := range ids {
		is, err := s.issue(ctx, app, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if want != "all" && is.Status != want {
			continue
		}
		out = append(out, is)
	}
	return out, next, nil
}

// findIssue finds an issue by id alone, in any app.
func (s *storage) findIssue(ctx context.Context, id string) (Issue, error) {
	if !validIssueID(id) {
		return Issue{}, fmt.Errorf("issue %q: %w", id, store.ErrNotFound)
	}
	if app, ok := s.idx.app(id); ok {
		return s.issue(ctx, app, id)
	}
	// Not indexed yet (the watch lags a write by moments): ask the bucket.
	keys, err := s.issues.Keys(ctx, "*."+id)
	if err != nil {
		return Issue{}, err
	}
	if len(keys) == 0 {
		return Issue{}, fmt.Errorf("issue %s: %w", id, store.ErrNotFound)
	}
	app, _, _ := strings.Cut(keys[0], ".")
	return s.issue(ctx, app, id)
}

func validIssueID(id string) bool {
	if len(id) != 12 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// latestEvents returns up to n of the issue's newest events, newest first.
func (s *storage) latestEvents(ctx context.Context, app, id string, n int) ([]Event, error) {
	if n == 1 {
		m, err := s.events.Last(ctx, eventSubject(app, id))
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var ev Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return nil, fmt.Errorf("errortrack: decode event: %w", err)
		}
		return []Event{ev}, nil
	}
	var out []Event
	err := s.events.Read(ctx, eventSubject(app, id), store.ReadOptions{Last: n}, func(m store.Message) error {
		var ev Event
		if json.Unmarshal(m.Data, &ev) == nil {
			out = append(out, ev)
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

func (s *storage) appConfig(ctx context.Context, app string) (Config, error) {
	var c Config
	_, err := store.GetJSON(ctx, s.config, app, &c)
	if errors.Is(err, store.ErrNotFound) {
		return Config{}, nil
	}
	return c, err
}

// dropIssue deletes an issue and its events.
func (s *storage) dropIssue(ctx context.Context, app, id string) error {
	if err := s.events.Purge(ctx, eventSubject(app, id)); err != nil {
		return err
	}
	if err := s.issues.Delete(ctx, issueKey(app, id)); err != nil {
		return err
	}
	s.idx.remove(app, id, 0)
	return nil
}

// dropApp deletes everything stored about app.
func (s *storage) dropApp(ctx context.Context, app string) error {
	var errs []error
	errs = append(errs, s.events.Purge(ctx, "errors."+app+".>"))
	keys, err := s.issues.Keys(ctx, app+".*")
	errs = append(errs, err)
	for _, k := range keys {
		errs = append(errs, s.issues.Delete(ctx, k))
	}
	if p, err := s.project(ctx, app); err == nil {
		errs = append(errs, s.projects.Delete(ctx, "id."+strconv.Itoa(p.ID)))
	}
	errs = append(errs, s.projects.Delete(ctx, "app."+app), s.config.Delete(ctx, app))
	s.idx.dropApp(app)
	s.mu.Lock()
	if p, ok := s.byName[app]; ok {
		delete(s.byID, p.ID)
		delete(s.byName, app)
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}
