package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pier/internal/api"
	"pier/internal/store"
)

const testToken = "0123456789abcdef0123456789abcdef"

// storeEngine is the dashboard's Engine over a real store: deploy events
// and log lines in real JetStream streams, apps and releases in memory.
type storeEngine struct {
	events, logs *store.Stream

	busy sync.Mutex // held: SetEnv waits (a change queued behind another)

	mu      sync.Mutex // guards apps, scaled, changes
	apps    map[string]api.App
	scaled  []map[string]int
	changes []api.EnvChange
}

func (e *storeEngine) Apps(ctx context.Context) ([]api.App, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []api.App
	for _, a := range e.apps {
		out = append(out, a)
	}
	return out, nil
}

func (e *storeEngine) App(ctx context.Context, name string) (api.App, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.apps[name]
	if !ok {
		return api.App{}, fmt.Errorf("%w: no app named %s", api.ErrNotFound, name)
	}
	return a, nil
}

func (e *storeEngine) Releases(ctx context.Context, app string) ([]api.Release, error) {
	return []api.Release{
		{App: app, Number: 2, Status: api.ReleaseActive, Cause: "env set GREETING", Created: time.Now()},
		{App: app, Number: 1, Status: api.ReleaseRetired, Cause: "deploy", Created: time.Now().Add(-time.Hour)},
	}, nil
}

func (e *storeEngine) Scale(ctx context.Context, app string, counts map[string]int) (api.App, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scaled = append(e.scaled, counts)
	return e.apps[app], nil
}

func (e *storeEngine) Rollback(ctx context.Context, app string, release int, emit func(api.Event)) (int, error) {
	return 0, errors.New("not in this test")
}

func (e *storeEngine) Env(ctx context.Context, app string) (map[string]string, error) {
	return map[string]string{"GREETING": "bonjour-secret"}, nil
}

// SetEnv refuses what deploy.Manager refuses before a release starts
// (a name pier sets itself), waits while busy is held (another change to
// the app going first, as deploy.Manager's lock makes it), then records
// the change and emits one event.
func (e *storeEngine) SetEnv(ctx context.Context, app string, change api.EnvChange, emit func(api.Event)) (int, error) {
	for k := range change.Set {
		if strings.HasPrefix(k, "PIER_") {
			return 0, fmt.Errorf("%w: %s is set by pier itself", api.ErrBadRequest, k)
		}
	}
	if _, err := e.App(ctx, app); err != nil {
		return 0, err
	}
	e.busy.Lock()
	e.busy.Unlock()
	e.mu.Lock()
	e.changes = append(e.changes, change)
	e.mu.Unlock()
	emit(api.Event{Time: time.Now(), App: app, Release: 3, Type: api.EventBuild, Message: "config change"})
	return 3, nil
}

func (e *storeEngine) envChanges() []api.EnvChange {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]api.EnvChange(nil), e.changes...)
}

func (e *storeEngine) Logs(ctx context.Context, app string, q api.LogQuery, fn func(api.LogLine) error) error {
	return e.logs.Read(ctx, "logs."+app, store.ReadOptions{Last: q.Lines, Follow: q.Follow}, func(m store.Message) error {
		return fn(api.LogLine{Time: m.Time, App: app, Instance: "web.1", Stream: "stdout", Text: string(m.Data)})
	})
}

func (e *storeEngine) Events(ctx context.Context, app string, last int, fn func(api.Event) error) error {
	return e.events.Read(ctx, "events."+app, store.ReadOptions{Last: last, Follow: true}, func(m store.Message) error {
		var ev api.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return err
		}
		return fn(ev)
	})
}

func (e *storeEngine) scales() []map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]map[string]int(nil), e.scaled...)
}

type fixture struct {
	t    *testing.T
	eng  *storeEngine
	srv  *httptest.Server
	now  time.Time
	nowM sync.Mutex
}

func (f *fixture) clock() time.Time {
	f.nowM.Lock()
	defer f.nowM.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.nowM.Lock()
	defer f.nowM.Unlock()
	f.now = f.now.Add(d)
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith lets opts add to the dashboard's options.
func newFixtureWith(t *testing.T, opts func(*Options)) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	events, err := st.Stream(ctx, store.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := st.Stream(ctx, store.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, now: time.Now()}
	f.eng = &storeEngine{events: events, logs: logs, apps: map[string]api.App{
		"blog": {Name: "blog", Release: 2, Status: "running", Scale: map[string]int{"web": 1, "worker": 1},
			Instances: []api.Instance{{Instance: "web.1", Process: "web", Release: 2, State: "running", Ready: true}}},
	}}
	o := Options{Token: testToken, Engine: f.eng, SessionTTL: time.Hour, Now: f.clock}
	if opts != nil {
		opts(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(srv)
	t.Cleanup(f.srv.Close)
	return f
}

// client is a browser-like client that keeps cookies and does not follow
// redirects.
func (f *fixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// login logs c in and returns the session's CSRF token.
func (f *fixture) login(c *http.Client) string {
	t := f.t
	t.Helper()
	resp, err := c.Get(f.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	m := csrfField.FindStringSubmatch(body(t, resp))
	if m == nil {
		t.Fatal("no csrf field on the login page")
	}
	resp, err = c.PostForm(f.srv.URL+"/login", url.Values{"csrf": {m[1]}, "token": {testToken}, "next": {"/apps/blog"}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/apps/blog" {
		t.Fatalf("login: %d to %q, want 303 to /apps/blog", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/", sc)
	}
	resp, err = c.Get(f.srv.URL + "/apps/blog")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("app page after login: %d %s", resp.StatusCode, page)
	}
	m = csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no csrf field on the app page")
	}
	return m[1]
}

func TestLoginRequiredEverywhere(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", http.StatusSeeOther},
		{"GET", "/apps/blog", http.StatusSeeOther},
		{"GET", "/apps/blog/logs/stream", http.StatusUnauthorized},
		{"GET", "/apps/blog/events/stream", http.StatusUnauthorized},
		{"GET", "/apps/blog/metrics.json", http.StatusUnauthorized},
		{"POST", "/apps/blog/scale", http.StatusUnauthorized},
		{"POST", "/apps/blog/env", http.StatusUnauthorized},
		{"POST", "/apps/blog/env/unset", http.StatusUnauthorized},
		{"POST", "/apps/blog/errors/i1/resolve", http.StatusUnauthorized},
		{"POST", "/apps/blog/tasks/email/pause", http.StatusUnauthorized},
		{"POST", "/logout", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	resp, _ := c.Get(f.srv.URL + "/assets/vendor/htmx.min.js")
	if b := body(t, resp); resp.StatusCode != 200 || !strings.Contains(b, "htmx") {
		t.Errorf("assets need no login: got %d", resp.StatusCode)
	}
}

func TestLoginRefusals(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	// No login form token (a cross-site POST): refused even with the right admin token.
	resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"token": {testToken}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without its form token: got %d, want 403", resp.StatusCode)
	}
	resp, _ = c.Get(f.srv.URL + "/login")
	m := csrfField.FindStringSubmatch(body(t, resp))
	resp, _ = c.PostForm(f.srv.URL+"/login", url.Values{"csrf": {m[1]}, "token": {"wrong"}})
	if b := body(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(b, "Wrong token") {
		t.Errorf("wrong token: got %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			t.Error("a wrong token got a session cookie")
		}
	}
}

func TestCSRFRefusal(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	csrf := f.login(c)
	post := func(form url.Values, header map[string]string) int {
		req, _ := http.NewRequest("POST", f.srv.URL+"/apps/blog/scale", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		header map[string]string
		want   int
	}{
		{"no token", url.Values{"scale.web": {"3"}}, nil, http.StatusForbidden},
		{"wrong token", url.Values{"scale.web": {"3"}, "csrf": {strings.Repeat("0", 64)}}, nil, http.StatusForbidden},
		{"other site", url.Values{"scale.web": {"3"}, "csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"form token", url.Values{"scale.web": {"3"}, "csrf": {csrf}}, nil, http.StatusSeeOther},
		{"htmx header", url.Values{"scale.web": {"2"}}, map[string]string{"X-CSRF-Token": csrf, "HX-Request": "true", "Origin": f.srv.URL}, http.StatusOK},
		{"bad count", url.Values{"scale.web": {"-1"}, "csrf": {csrf}}, nil, http.StatusBadRequest},
	} {
		if got := post(tc.form, tc.header); got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, got, tc.want)
		}
	}
	got := f.eng.scales()
	if len(got) != 2 || got[0]["web"] != 3 || got[1]["web"] != 2 {
		t.Errorf("scales done: %v, want web=3 then web=2 only", got)
	}
}

func TestSessionExpiryAndLogout(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.login(c)
	f.advance(59 * time.Minute)
	resp, _ := c.Get(f.srv.URL + "/")
	if body(t, resp); resp.StatusCode != 200 {
		t.Fatalf("within the TTL: got %d, want 200", resp.StatusCode)
	}
	f.advance(2 * time.Minute)
	resp, _ = c.Get(f.srv.URL + "/")
	body(t, resp)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("after the TTL: got %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}

	csrf := f.login(c)
	resp, _ = c.PostForm(f.srv.URL+"/logout", url.Values{"csrf": {csrf}})
	body(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: got %d", resp.StatusCode)
	}
	resp, _ = c.Get(f.srv.URL + "/apps/blog")
	if body(t, resp); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: got %d, want 303", resp.StatusCode)
	}
}

func TestAppPageRenders(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.login(c)
	resp, _ := c.Get(f.srv.URL + "/apps/blog")
	page := body(t, resp)
	for _, want := range []string{
		`<label for="scale-web">web instances</label>`, `name="scale.worker"`, `data-instance="web.1"`,
		`aria-label="Roll back to v1"`, "GREETING", "Show values",
		"Metrics are not available", "Error tracking is not available", "Task queues are not available",
		`sse-connect="/apps/blog/logs/stream"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("app page lacks %q", want)
		}
	}
	if strings.Contains(page, "bonjour-secret") {
		t.Error("app page shows a config value before it was asked for")
	}
	resp, _ = c.Get(f.srv.URL + "/apps/blog/env?show=1")
	if b := body(t, resp); !strings.Contains(b, "bonjour-secret") {
		t.Errorf("env?show=1 lacks the value:\n%s", b)
	}
	resp, _ = c.Get(f.srv.URL + "/apps/nope")
	if body(t, resp); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown app: got %d, want 404", resp.StatusCode)
	}
	resp, _ = c.Get(f.srv.URL + "/")
	if b := body(t, resp); !strings.Contains(b, `href="/apps/blog"`) || strings.Contains(b, "Req/s") {
		t.Errorf("overview: want the app and no metrics columns without metrics:\n%s", b)
	}
}

// sseEvents reads server-sent events until n have come.
func sseEvents(t *testing.T, c *http.Client, u string, n int, during func()) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("%s: content type %q", u, ct)
	}
	if during != nil {
		go during()
	}
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for len(out) < n && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: "):
			cur.WriteString(strings.TrimPrefix(line, "data: "))
		case line == "" && cur.Len() > 0:
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if len(out) < n {
		t.Fatalf("%s: got %d events, want %d: %v", u, len(out), n, out)
	}
	return out
}

func TestStreamsFromTheStore(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	f.login(c)
	ctx := t.Context()
	put := func(st *store.Stream, subject string, v any) {
		data, _ := json.Marshal(v)
		if s, ok := v.(string); ok {
			data = []byte(s)
		}
		if _, err := st.Append(ctx, subject, data, nil); err != nil {
			t.Error(err)
		}
	}
	put(f.eng.events, "events.blog", api.Event{Time: time.Now(), App: "blog", Release: 3, Type: api.EventBuild, Message: "Received bundle"})
	evs := sseEvents(t, c, f.srv.URL+"/apps/blog/events/stream", 2, func() {
		put(f.eng.events, "events.blog", api.Event{Time: time.Now(), App: "blog", Release: 3, Type: api.EventDone, Message: "blog v3 is live"})
	})
	if !strings.Contains(evs[0], `data-type="build"`) || !strings.Contains(evs[1], `data-type="done"`) || !strings.Contains(evs[1], "blog v3 is live") {
		t.Errorf("deploy events: %q", evs)
	}

	put(f.eng.logs, "logs.blog", "<script>alert(1)</script>")
	lines := sseEvents(t, c, f.srv.URL+"/apps/blog/logs/stream", 2, func() { put(f.eng.logs, "logs.blog", "second line") })
	if strings.Contains(lines[0], "<script>") || !strings.Contains(lines[0], "&lt;script&gt;") || !strings.Contains(lines[1], "second line") {
		t.Errorf("log lines (must be escaped): %q", lines)
	}
}

// memErrors and memTasks are the optional services in memory: the real
// ones run in test/e2e (TestDashboardInBrowser); here the dashboard's
// own part is tested, the forms, CSRF checks and what they call.
type memErrors struct {
	mu     sync.Mutex // guards issues
	issues []Issue
}

func (m *memErrors) Issues(ctx context.Context, app string) ([]Issue, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.issues), nil
}

func (m *memErrors) Issue(ctx context.Context, app, id string) (IssueDetail, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, is := range m.issues {
		if is.ID == id {
			return IssueDetail{Issue: is}, nil
		}
	}
	return IssueDetail{}, fmt.Errorf("%w: no issue %s", api.ErrNotFound, id)
}

func (m *memErrors) SetStatus(ctx context.Context, app, id, action string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	to := map[string]string{"resolve": "resolved", "ignore": "ignored", "unresolve": "unresolved"}[action]
	for i := range m.issues {
		if m.issues[i].ID == id {
			m.issues[i].Status = to
			return nil
		}
	}
	return fmt.Errorf("%w: no issue %s", api.ErrNotFound, id)
}

type memTasks struct {
	mu     sync.Mutex // guards queues
	queues []Queue
}

func (m *memTasks) Queues(ctx context.Context, app string) ([]Queue, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.queues), nil
}

func (m *memTasks) Dead(ctx context.Context, app, queue string, limit int) ([]DeadTask, error) {
	return nil, nil
}
func (m *memTasks) Retry(ctx context.Context, app, queue, id string) error { return nil }
func (m *memTasks) Drop(ctx context.Context, app, queue, id string) error  { return nil }
func (m *memTasks) Pause(ctx context.Context, app, queue string) error     { return m.set(queue, true) }
func (m *memTasks) Resume(ctx context.Context, app, queue string) error    { return m.set(queue, false) }

func (m *memTasks) set(queue string, paused bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.queues {
		if m.queues[i].Name == queue {
			m.queues[i].Paused = paused
			return nil
		}
	}
	return fmt.Errorf("%w: no queue %s", api.ErrNotFound, queue)
}

type memMetrics struct{ sums []Summary }

func (m memMetrics) Summary() []Summary                            { return m.sums }
func (m memMetrics) Series(app string, since time.Duration) Series { return Series{} }

func float(f float64) *float64 { return &f }

// servicesFixture is newFixture's engine with the optional services.
func servicesFixture(t *testing.T) (*fixture, *memErrors, *memTasks) {
	errs := &memErrors{issues: []Issue{
		{ID: "i1", Title: "PaymentError: card declined", Status: "unresolved", Count: 3},
		{ID: "i2", Title: "KeyError: 'user'", Status: "resolved", Count: 1},
	}}
	tasks := &memTasks{queues: []Queue{{Name: "email", Ready: 2}}}
	f := newFixtureWith(t, func(o *Options) {
		o.Errors, o.Tasks = errs, tasks
		o.Metrics = memMetrics{[]Summary{{App: "blog", RPS: 12.5, P99: float(48.25), ErrorRate: float(0.025), CacheHitRatio: float(0.8)}}}
	})
	return f, errs, tasks
}

func (f *fixture) post(c *http.Client, path string, form url.Values) (int, string, string) {
	f.t.Helper()
	resp, err := c.PostForm(f.srv.URL+path, form)
	if err != nil {
		f.t.Fatal(err)
	}
	b := body(f.t, resp)
	return resp.StatusCode, resp.Header.Get("Location"), b
}

func (f *fixture) page(c *http.Client, path string) string {
	f.t.Helper()
	resp, err := c.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	b := body(f.t, resp)
	if resp.StatusCode != 200 {
		f.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

func TestActions(t *testing.T) {
	f, errs, tasks := servicesFixture(t)
	c := f.client()
	csrf := f.login(c)

	page := f.page(c, "/apps/blog")
	for _, want := range []string{
		`aria-label="Pause queue email"`, `data-paused="false"`,
		`aria-label="Resolve issue: PaymentError: card declined"`, `aria-label="Ignore issue: PaymentError: card declined"`,
		`aria-label="Unset GREETING"`, `<label for="env-name">Config var</label>`, `<label for="env-value">Value</label>`,
		`Resolved and ignored (1)`, `aria-label="Unresolve issue: KeyError: &#39;user&#39;"`,
		` · 3 events · `, ` · 1 event · `,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("app page lacks %q", want)
		}
	}
	if strings.Contains(page, "bonjour-secret") {
		t.Error("app page shows a config value before it was asked for")
	}

	for _, tc := range []struct {
		name, path string
		form       url.Values
		want       int
		location   string
	}{
		{"pause without csrf", "/apps/blog/tasks/email/pause", url.Values{}, 403, ""},
		{"pause", "/apps/blog/tasks/email/pause", url.Values{"csrf": {csrf}}, 303, "/apps/blog#queues"},
		{"unknown queue action", "/apps/blog/tasks/email/flush", url.Values{"csrf": {csrf}}, 404, ""},
		{"unknown queue", "/apps/blog/tasks/nope/resume", url.Values{"csrf": {csrf}}, 404, ""},
		{"resolve without csrf", "/apps/blog/errors/i1/resolve", url.Values{"csrf": {"0"}}, 403, ""},
		{"resolve", "/apps/blog/errors/i1/resolve", url.Values{"csrf": {csrf}}, 303, "/apps/blog#errors"},
		{"unresolve from the issue page", "/apps/blog/errors/i2/unresolve", url.Values{"csrf": {csrf}, "back": {"issue"}}, 303, "/apps/blog/errors/i2"},
		{"unknown issue action", "/apps/blog/errors/i1/delete", url.Values{"csrf": {csrf}}, 404, ""},
		{"unknown issue", "/apps/blog/errors/i9/ignore", url.Values{"csrf": {csrf}}, 404, ""},
		{"env set without csrf", "/apps/blog/env", url.Values{"name": {"A"}, "value": {"1"}}, 403, ""},
		{"env set", "/apps/blog/env", url.Values{"csrf": {csrf}, "name": {"LOG_LEVEL"}, "value": {"debug"}}, 303, "/apps/blog/deploys"},
		{"env set refused", "/apps/blog/env", url.Values{"csrf": {csrf}, "name": {"PIER_APP"}, "value": {"x"}}, 400, ""},
		{"env set without a name", "/apps/blog/env", url.Values{"csrf": {csrf}, "name": {" "}}, 400, ""},
		{"env set, unknown app", "/apps/nope/env", url.Values{"csrf": {csrf}, "name": {"A"}}, 404, ""},
		{"env unset", "/apps/blog/env/unset", url.Values{"csrf": {csrf}, "name": {"GREETING"}}, 303, "/apps/blog/deploys"},
	} {
		code, loc, b := f.post(c, tc.path, tc.form)
		if code != tc.want || loc != tc.location {
			t.Errorf("%s: got %d to %q, want %d to %q (%s)", tc.name, code, loc, tc.want, tc.location, strings.TrimSpace(b))
		}
	}

	if q, _ := tasks.Queues(t.Context(), "blog"); !q[0].Paused {
		t.Error("email is not paused after the pause")
	}
	if is, _ := errs.Issues(t.Context(), "blog"); is[0].Status != "resolved" || is[1].Status != "unresolved" {
		t.Errorf("issues after resolve/unresolve: %+v", is)
	}
	got := f.eng.envChanges()
	if len(got) != 2 || got[0].Set["LOG_LEVEL"] != "debug" || len(got[1].Unset) != 1 || got[1].Unset[0] != "GREETING" {
		t.Errorf("config changes: %+v, want set LOG_LEVEL=debug then unset GREETING", got)
	}

	page = f.page(c, "/apps/blog")
	for _, want := range []string{`aria-label="Resume queue email"`, `data-paused="true"`, `Resolved and ignored (1)`,
		`aria-label="Unresolve issue: PaymentError: card declined"`, `aria-label="Resolve issue: KeyError: &#39;user&#39;"`} {
		if !strings.Contains(page, want) {
			t.Errorf("app page after the actions lacks %q", want)
		}
	}
	// A browser's refused form gets a page with the reason and a way back.
	req, _ := http.NewRequest("POST", f.srv.URL+"/apps/blog/env", strings.NewReader(url.Values{"csrf": {csrf}, "name": {"PIER_APP"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `role="alert"`) || !strings.Contains(b, "PIER_APP is set by pier itself") || !strings.Contains(b, `<a href="/apps/blog">Back to blog</a>`) {
		t.Errorf("refused form in a browser: %d\n%s", resp.StatusCode, b)
	}
	if issue := f.page(c, "/apps/blog/errors/i2"); !strings.Contains(issue, `name="back" value="issue"`) || !strings.Contains(issue, ">Resolve</button>") {
		t.Errorf("issue page lacks its status buttons:\n%s", issue)
	}
}

func TestOverviewAtAGlance(t *testing.T) {
	f, _, _ := servicesFixture(t)
	f.eng.mu.Lock()
	f.eng.apps["idle"] = api.App{Name: "idle", Status: "idle"}
	f.eng.mu.Unlock()
	c := f.client()
	f.login(c)
	page := f.page(c, "/")
	for _, tc := range []struct{ app, glance, want string }{
		{"blog", "instances", "1/1"},
		{"blog", "rps", "12.5"},
		{"blog", "p99", "48.2 ms"},
		{"blog", "error-rate", "2.5%"},
		{"blog", "cache-hits", "80.0%"},
		{"blog", "issues", "1"},
		{"idle", "rps", "0.0"},
		{"idle", "p99", "—"},
		{"idle", "error-rate", "—"},
		{"idle", "cache-hits", "—"}, // the metrics service did not say
	} {
		row := regexp.MustCompile(`(?s)<tr data-app="` + tc.app + `">.*?</tr>`).FindString(page)
		cell := regexp.MustCompile(`data-glance="` + tc.glance + `">([^<]*)<`).FindStringSubmatch(row)
		if cell == nil || cell[1] != tc.want {
			t.Errorf("%s %s: got %v, want %q", tc.app, tc.glance, cell, tc.want)
		}
	}
}

// TestQueuedRollout: a config change that has to wait for another change
// to the app sends the browser to the deploy view without waiting for its
// turn, and is made when its turn comes.
func TestQueuedRollout(t *testing.T) {
	f := newFixtureWith(t, func(o *Options) { o.RolloutWait = 50 * time.Millisecond })
	c := f.client()
	csrf := f.login(c)
	f.eng.busy.Lock()
	code, loc, b := f.post(c, "/apps/blog/env", url.Values{"csrf": {csrf}, "name": {"QUEUED"}, "value": {"1"}})
	if code != http.StatusSeeOther || loc != "/apps/blog/deploys" {
		t.Errorf("queued change: got %d to %q (%s), want 303 to the deploy view", code, loc, b)
	}
	if got := f.eng.envChanges(); len(got) != 0 {
		t.Errorf("changes made while another held the app: %+v", got)
	}
	f.eng.busy.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.eng.envChanges()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := f.eng.envChanges(); len(got) != 1 || got[0].Set["QUEUED"] != "1" {
		t.Errorf("after its turn: changes %+v, want QUEUED=1", got)
	}
}
