package errortrack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"pier/internal/store"
)

// env is a tracker on a real store behind a real HTTP server that mounts
// it the way the engine does: ingestion under /_pier/errors/ and /api/,
// the API under /v1/.
type env struct {
	t   testing.TB
	tr  *Tracker
	st  *store.Store
	srv *httptest.Server
	dir string
}

func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	return startEnv(t, dir, mod)
}

func startEnv(t testing.TB, dir string, mod func(*Options)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	opts := Options{Store: st, DSNBase: srv.URL + "/_pier/errors", Logger: testLogger(t)}
	if mod != nil {
		mod(&opts)
	}
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/_pier/errors/", tr.Ingest())
	mux.Handle("/api/{project}/envelope/", tr.Ingest())
	mux.Handle("/api/{project}/store/", tr.Ingest())
	tr.Routes(func(p string, h http.Handler) { mux.Handle(p, h) })
	e := &env{t: t, tr: tr, st: st, srv: srv, dir: dir}
	t.Cleanup(func() { e.stop(cancel) })
	return e
}

func (e *env) stop(cancel context.CancelFunc) {
	e.srv.Close()
	cancel()
	e.st.Close()
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// dsn makes app's project and returns its DSN.
func (e *env) dsn(app string) string {
	e.t.Helper()
	d := e.tr.Env(app)["SENTRY_DSN"]
	if d == "" {
		e.t.Fatalf("no SENTRY_DSN for %s", app)
	}
	return d
}

func (e *env) project(app string) Project {
	e.t.Helper()
	p, err := e.tr.Project(context.Background(), app)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// post sends body to path with headers; it returns status, headers and body.
func (e *env) post(path string, body []byte, hdr map[string]string) (int, http.Header, string) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (e *env) getJSON(path string, v any) int {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			e.t.Fatalf("GET %s: %v in %s", path, err, b)
		}
	}
	return resp.StatusCode
}

// issues lists app's issues (all statuses).
func (e *env) issues(app string) []Issue {
	e.t.Helper()
	var out []Issue
	if code := e.getJSON("/v1/apps/"+app+"/errors?status=all", &out); code != 200 {
		e.t.Fatalf("list issues of %s: %d", app, code)
	}
	return out
}

// waitIssues polls until cond holds for app's issues.
func (e *env) waitIssues(app, what string, cond func([]Issue) bool) []Issue {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.issues(app)
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			js, _ := json.MarshalIndent(got, "", "  ")
			e.t.Fatalf("timed out waiting for %s; issues now:\n%s", what, js)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func totalCount(is []Issue) int64 {
	var n int64
	for _, i := range is {
		n += i.Count
	}
	return n
}

func byTitle(is []Issue, sub string) *Issue {
	for i := range is {
		if strings.Contains(is[i].Title, sub) {
			return &is[i]
		}
	}
	return nil
}

func (e *env) show(app, id string, events int) IssueDetail {
	e.t.Helper()
	var d IssueDetail
	if code := e.getJSON(fmt.Sprintf("/v1/apps/%s/errors/%s?events=%d", app, id, events), &d); code != 200 {
		e.t.Fatalf("show %s %s: %d", app, id, code)
	}
	return d
}

// envelopePath is the envelope endpoint of app's project under the
// gateway prefix.
func (e *env) envelopePath(app string) string {
	return fmt.Sprintf("/_pier/errors/api/%d/envelope/", e.project(app).ID)
}

func (e *env) authHeader(app string) map[string]string {
	return map[string]string{"X-Sentry-Auth": "Sentry sentry_version=7, sentry_key=" + e.project(app).Key + ", sentry_client=test/1"}
}
