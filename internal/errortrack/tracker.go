package errortrack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"pier/internal/store"
)

// Options configure a Tracker. Zero values take the defaults noted.
type Options struct {
	// Store holds events, issues, projects and settings. Required.
	Store *store.Store
	// DSNBase is the URL apps send events to, without the key:
	// "http://127.0.0.1:8080/_pier/errors" gives SENTRY_DSN
	// "http://<key>@127.0.0.1:8080/_pier/errors/<id>". Required for Env.
	DSNBase string
	// Logger receives the tracker's logs (nil = discarded).
	Logger *slog.Logger
	// MaxBodyBytes caps a request body, compressed and decompressed
	// (0 = 20 MiB); past it the SDK gets 413.
	MaxBodyBytes int64
	// MaxEventBytes caps one event item (0 = 1 MiB).
	MaxEventBytes int
	// EventsPerIssue is how many of an issue's latest events are kept in
	// full (0 = 100).
	EventsPerIssue int
	// MaxAge is how long an app's events are kept, and its issues after
	// they were last seen, unless its Config sets RetentionDays (0 = 30
	// days). Sweep applies it.
	MaxAge time.Duration
	// MaxBytes caps the events stream on disk (0 = 4 GiB); the oldest
	// events go first.
	MaxBytes int64
	// RatePerSecond and Burst bound each app's events (0 = 100/s, burst
	// 500); an app's Config may change them.
	RatePerSecond float64
	Burst         int
	// NodeRatePerSecond and NodeBurst cap the events of all apps together
	// on this node, on top of each app's rate: when many apps flood at
	// once, past the cap every SDK gets 429 (0 = 1000/s; negative = no
	// cap; NodeBurst 0 = five seconds' worth).
	NodeRatePerSecond float64
	NodeBurst         int
	// MaxIssues is the default cap on each app's issues (0 = 10000).
	MaxIssues int
	// SweepEvery is how often retention runs (0 = 10 minutes).
	SweepEvery time.Duration
	// HTTPClient sends alert webhooks (nil = a client with a 10s timeout).
	HTTPClient *http.Client
}

func (o *Options) defaults() error {
	if o.Store == nil {
		return errors.New("errortrack: no store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 20 << 20
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = 1 << 20
	}
	if o.EventsPerIssue <= 0 {
		o.EventsPerIssue = 100
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 30 * 24 * time.Hour
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 4 << 30
	}
	if o.RatePerSecond <= 0 {
		o.RatePerSecond = 100
	}
	if o.Burst <= 0 {
		o.Burst = 500
	}
	if o.NodeRatePerSecond == 0 {
		o.NodeRatePerSecond = 1000
	}
	if o.NodeBurst <= 0 {
		o.NodeBurst = max(1, int(5*o.NodeRatePerSecond))
	}
	if o.MaxIssues <= 0 {
		o.MaxIssues = 10000
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = 10 * time.Minute
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return nil
}

// Tracker is the error tracker: ingestion, grouping, crash detection,
// alerts and the API. New, then Start; it stops when Start's ctx ends.
type Tracker struct {
	opts    Options
	log     *slog.Logger
	st      *storage
	limits  *limiters
	alerts  *alerter
	crash   *detector
	crashes chan *Event // detected crashes, filed by fileCrashes

	mu       sync.Mutex     // guards releases
	releases map[string]int // app -> current release, from SetRelease
}

// New checks opts; Start opens the store and starts the work.
func New(opts Options) (*Tracker, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	t := &Tracker{opts: opts, log: opts.Logger, releases: map[string]int{}, crashes: make(chan *Event, 256)}
	t.limits = newLimiters(opts.RatePerSecond, opts.Burst, opts.NodeRatePerSecond, opts.NodeBurst)
	t.crash = newDetector(t.fileCrash)
	return t, nil
}

// Start opens the tracker's buckets and stream and starts grouping, crash
// filing, alerting and retention, until ctx ends.
func (t *Tracker) Start(ctx context.Context) error {
	st, err := openStorage(ctx, t.opts.Store, &t.opts)
	if err != nil {
		return fmt.Errorf("errortrack: %w", err)
	}
	t.st = st
	t.alerts = newAlerter(t.opts.HTTPClient, t.log.With("part", "alerts"), st)
	if err := st.events.Consume(ctx, store.ConsumeOptions{Durable: "errortrack-grouper", Filter: "errors.>", Batch: 512}, t.groupBatch); err != nil {
		return fmt.Errorf("errortrack: %w", err)
	}
	go t.loop(ctx, "alerts", t.alerts.run)
	go t.loop(ctx, "crashes", t.fileCrashes)
	go t.loop(ctx, "crash flush", t.crash.run)
	go t.loop(ctx, "retention", t.sweepLoop)
	return nil
}

// loop runs a background loop, logging a panic instead of taking the
// engine down.
func (t *Tracker) loop(ctx context.Context, name string, fn func(context.Context)) {
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("errortrack loop panicked", "loop", name, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn(ctx)
}

// Env is what every process of app gets: SENTRY_DSN, pointing at this
// tracker through the gateway. It makes the app's project the first time.
func (t *Tracker) Env(app string) map[string]string {
	if t.st == nil || t.opts.DSNBase == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := t.st.ensureProject(ctx, app)
	if err != nil {
		t.log.Error("errortrack: no project for app; it gets no SENTRY_DSN", "app", app, "err", err)
		return nil
	}
	return map[string]string{"SENTRY_DSN": t.DSN(p)}
}

// DSN is the Sentry DSN of a project.
func (t *Tracker) DSN(p Project) string {
	base := t.opts.DSNBase
	scheme, rest, ok := cutScheme(base)
	if !ok {
		return ""
	}
	return scheme + "://" + p.Key + "@" + rest + "/" + strconv.Itoa(p.ID)
}

func cutScheme(u string) (scheme, rest string, ok bool) {
	for _, s := range []string{"http", "https"} {
		if len(u) > len(s)+3 && u[:len(s)+3] == s+"://" {
			return s, trimSlash(u[len(s)+3:]), true
		}
	}
	return "", "", false
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// Project returns app's project (ErrNotFound if the app never ran).
func (t *Tracker) Project(ctx context.Context, app string) (Project, error) {
	return t.st.project(ctx, app)
}

// SetRelease records app's current release: events without a release get
// it, and resolving an issue resolves it in it.
func (t *Tracker) SetRelease(app string, release int) {
	t.mu.Lock()
	t.releases[app] = release
	t.mu.Unlock()
}

func (t *Tracker) currentRelease(app string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n, ok := t.releases[app]; ok && n > 0 {
		return "v" + strconv.Itoa(n)
	}
	return ""
}

// Destroy forgets everything about app.
func (t *Tracker) Destroy(app string) {
	t.mu.Lock()
	delete(t.releases, app)
	t.mu.Unlock()
	t.limits.forget(app)
	t.crash.forget(app)
	if t.st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.st.dropApp(ctx, app); err != nil {
		t.log.Warn("errortrack: drop destroyed app's errors", "app", app, "err", err)
	}
}

// store files one normalised, grouped event; acknowledged means durable.
func (t *Tracker) store(ctx context.Context, ev *Event) error {
	if ev.Release == "" {
		ev.Release = t.currentRelease(ev.App)
	}
	group(ev.App, ev)
	_, err := t.st.appendEvent(ctx, ev)
	return err
}

// groupBatch counts a batch of stored events into their issues: one
// compare-and-set per issue per batch. Redelivered events are skipped by
// sequence, so running it twice on a batch changes nothing.
func (t *Tracker) groupBatch(ctx context.Context, batch []store.Message) error {
	type pending struct {
		events []*Event
		seqs   []uint64
	}
	byIssue := map[string]*pending{}
	var order []string
	for _, m := range batch {
		ev := new(Event)
		if err := json.Unmarshal(m.Data, ev); err != nil || ev.App == "" || ev.Issue == "" {
			t.log.Warn("errortrack: unreadable stored event skipped", "subject", m.Subject, "err", err)
			continue
		}
		k := issueKey(ev.App, ev.Issue)
		p, ok := byIssue[k]
		if !ok {
			p = &pending{}
			byIssue[k] = p
			order = append(order, k)
		}
		p.events = append(p.events, ev)
		p.seqs = append(p.seqs, m.Seq)
	}
	for _, k := range order {
		p := byIssue[k]
		var alerts []alertKind
		is, err := store.Modify(ctx, t.st.issues, k, func(is *Issue, _ bool) error {
			alerts = alerts[:0]
			for i, ev := range p.events {
				if a := is.apply(ev, p.seqs[i]); a != alertNone {
					alerts = append(alerts, a)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("errortrack: update issue %s: %w", k, err)
		}
		for _, a := range alerts {
			t.alerts.send(is.App, a, is)
		}
	}
	return nil
}
