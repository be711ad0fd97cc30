package errortrack

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
)

func envelope(eventJSON string) []byte {
	return []byte(`{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","sent_at":"2026-01-01T00:00:00Z"}` + "\n" +
		`{"type":"event","length":` + strconv.Itoa(len(eventJSON)) + `}` + "\n" + eventJSON + "\n")
}

const sampleEvent = `{"exception":[{"type":"KeyError","value":"'user'","stacktrace":{"frames":[{"filename":"app.py","function":"handler","lineno":12,"in_app":true}]}}],"timestamp":"2026-01-01T00:00:00Z"}`

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zl(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func br(b []byte) []byte {
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestIngestAnswers checks what SDKs see for good and bad requests.
func TestIngestAnswers(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxBodyBytes = 64 << 10 })
	e.dsn("blog")
	e.dsn("other")
	p := e.project("blog")
	env := envelope(sampleEvent)
	auth := e.authHeader("blog")
	query := fmt.Sprintf("?sentry_key=%s&sentry_version=7", p.Key)
	big := envelope(`{"message":"` + strings.Repeat("x", 70<<10) + `"}`)
	bomb := gz(bytes.Repeat([]byte(" "), 1<<20)) // small compressed, too big inflated

	for _, tc := range []struct {
		name    string
		path    string
		body    []byte
		hdr     map[string]string
		status  int
		inReply string
	}{
		{"envelope, header auth", e.envelopePath("blog"), env, auth, 200, `"id":"9ec79c33ec9942ab8353589fcb2e04dc"`},
		{"envelope, query auth", e.envelopePath("blog") + query, env, nil, 200, `"id"`},
		{"envelope on the API path", fmt.Sprintf("/api/%d/envelope/", p.ID), env, auth, 200, `"id"`},
		{"store endpoint", fmt.Sprintf("/api/%d/store/", p.ID), []byte(sampleEvent), auth, 200, `"id"`},
		{"gzip", e.envelopePath("blog"), gz(env), merge(auth, "Content-Encoding", "gzip"), 200, `"id"`},
		{"deflate", e.envelopePath("blog"), zl(env), merge(auth, "Content-Encoding", "deflate"), 200, `"id"`},
		{"br", e.envelopePath("blog"), br(env), merge(auth, "Content-Encoding", "br"), 200, `"id"`},
		{"session only", e.envelopePath("blog"), []byte("{}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n"), auth, 200, `{}`},
		{"no auth", e.envelopePath("blog"), env, nil, 401, "sentry_key"},
		{"wrong key", e.envelopePath("blog"), env, e.authHeader("other"), 403, "not project"},
		{"unknown project", "/_pier/errors/api/999/envelope/", env, auth, 404, "no project 999"},
		{"project not a number", "/_pier/errors/api/blog/envelope/", env, auth, 400, "not a positive number"},
		{"unknown endpoint", fmt.Sprintf("/_pier/errors/api/%d/minidump/", p.ID), env, auth, 404, "unknown endpoint"},
		{"bad gzip", e.envelopePath("blog"), env, merge(auth, "Content-Encoding", "gzip"), 400, "gzip"},
		{"unknown encoding", e.envelopePath("blog"), env, merge(auth, "Content-Encoding", "zstd"), 400, "not supported"},
		{"too big", e.envelopePath("blog"), big, auth, 413, "cap"},
		{"too big inflated", e.envelopePath("blog"), bomb, merge(auth, "Content-Encoding", "gzip"), 413, "more than"},
		{"bad header", e.envelopePath("blog"), []byte("{nope\n"), auth, 400, "header"},
		{"length past the end", e.envelopePath("blog"), []byte("{}\n{\"type\":\"event\",\"length\":500}\n{}"), auth, 400, "500 bytes"},
		{"event not JSON", e.envelopePath("blog"), envelope(`[1,2`), auth, 400, "item 1"},
		{"bad timestamp", e.envelopePath("blog"), envelope(`{"timestamp":"yesterday"}`), auth, 400, "timestamp"},
		{"exception of the wrong shape", e.envelopePath("blog"), envelope(`{"exception":"boom"}`), auth, 400, "exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := e.post(tc.path, tc.body, tc.hdr)
			if code != tc.status || !strings.Contains(body, tc.inReply) {
				t.Fatalf("got %d %s, want %d with %q", code, body, tc.status, tc.inReply)
			}
			if code >= 400 && hdr.Get("X-Sentry-Error") == "" {
				t.Errorf("refusal without X-Sentry-Error")
			}
		})
	}
	// Seven requests above carried the same KeyError event.
	e.waitIssues("blog", "7 KeyErrors in one issue", func(is []Issue) bool {
		return len(is) == 1 && is[0].Count == 7 && is[0].Title == "KeyError: 'user'"
	})
	if got := e.issues("other"); len(got) != 0 {
		t.Errorf("app other got issues: %+v", got)
	}
}

func merge(h map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range h {
		out[a] = b
	}
	return out
}

// TestRateLimit: past its burst an app gets 429 with Retry-After and
// X-Sentry-Rate-Limits; other apps are not affected.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RatePerSecond, o.Burst = 0.01, 5 })
	e.dsn("noisy")
	e.dsn("quiet")
	env := envelope(sampleEvent)
	var codes []int
	var limited http.Header
	for range 8 {
		code, hdr, _ := e.post(e.envelopePath("noisy"), env, e.authHeader("noisy"))
		codes = append(codes, code)
		if code == 429 {
			limited = hdr
		}
	}
	if fmt.Sprint(codes) != "[200 200 200 200 200 429 429 429]" {
		t.Fatalf("codes: %v", codes)
	}
	ra, _ := strconv.Atoi(limited.Get("Retry-After"))
	if ra < 1 {
		t.Errorf("Retry-After %q", limited.Get("Retry-After"))
	}
	if rl := limited.Get("X-Sentry-Rate-Limits"); !strings.HasPrefix(rl, limited.Get("Retry-After")+":error") {
		t.Errorf("X-Sentry-Rate-Limits %q", rl)
	}
	if code, _, _ := e.post(e.envelopePath("quiet"), env, e.authHeader("quiet")); code != 200 {
		t.Errorf("another app: got %d, want 200", code)
	}
	// Sessions are not events: not limited.
	if code, _, _ := e.post(e.envelopePath("noisy"), []byte("{}\n{\"type\":\"session\"}\n{}\n"), e.authHeader("noisy")); code != 200 {
		t.Errorf("session while limited: got %d, want 200", code)
	}
	// An app's config raises its rate.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/apps/noisy/errors/config", strings.NewReader(`{"rate_per_second":1000,"burst":1000}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("put config: %v %v", resp, err)
	}
	if code, _, _ := e.post(e.envelopePath("noisy"), env, e.authHeader("noisy")); code != 200 {
		t.Errorf("after raising the rate: got %d, want 200", code)
	}
}

// TestResolveRegressionAlerts: resolving, an event from the same release
// (stays resolved), one from a newer release (regression), and the webhook
// alerts for new issues and regressions under the app's cap.
func TestResolveRegressionAlerts(t *testing.T) {
	var mu sync.Mutex
	var alerts []Alert
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a Alert
		json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		alerts = append(alerts, a)
		mu.Unlock()
	}))
	defer hook.Close()
	e := newEnv(t, nil)
	e.dsn("api")
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/apps/api/errors/config", strings.NewReader(`{"webhook":"`+hook.URL+`","alerts_per_hour":2}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("put config: %v %v", resp, err)
	}
	send := func(release, typ string) {
		t.Helper()
		ev := fmt.Sprintf(`{"release":%q,"exception":{"values":[{"type":%q,"value":"x"}]}}`, release, typ)
		if code, _, body := e.post(e.envelopePath("api"), envelope(ev), e.authHeader("api")); code != 200 {
			t.Fatalf("send: %d %s", code, body)
		}
	}
	send("v1", "Boom")
	is := e.waitIssues("api", "one issue", func(is []Issue) bool { return len(is) == 1 })[0]
	resp, err := http.Post(e.srv.URL+"/v1/apps/api/errors/"+is.ID+"/resolve", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("resolve: %v %v", resp, err)
	}
	send("v1", "Boom")
	e.waitIssues("api", "count 2, still resolved", func(is []Issue) bool {
		return is[0].Count == 2 && is[0].Status == Resolved && !is[0].Regression
	})
	send("v2", "Boom")
	e.waitIssues("api", "regression", func(is []Issue) bool {
		return is[0].Count == 3 && is[0].Status == Unresolved && is[0].Regression
	})
	send("v2", "Other") // a new issue: third alert, over the cap of 2
	e.waitIssues("api", "second issue", func(is []Issue) bool { return len(is) == 2 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(alerts)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	for _, a := range alerts {
		kinds = append(kinds, a.Type)
	}
	if fmt.Sprint(kinds) != "[new_issue regression]" {
		t.Fatalf("alerts: %v", kinds)
	}
	if alerts[0].Issue.ID != is.ID || alerts[0].App != "api" {
		t.Errorf("alert: %+v", alerts[0])
	}
	// Ignored issues stay ignored.
	http.Post(e.srv.URL+"/v1/apps/api/errors/"+is.ID+"/ignore", "", nil)
	send("v3", "Boom")
	e.waitIssues("api", "ignored issue counts", func(is []Issue) bool {
		i := byTitle(is, "Boom")
		return i != nil && i.Count == 4 && i.Status == Ignored
	})
	var unresolved []Issue
	e.getJSON("/v1/apps/api/errors", &unresolved)
	if len(unresolved) != 1 || unresolved[0].Title != "Other: x" {
		t.Errorf("default listing (unresolved): %+v", unresolved)
	}
}

// TestDurable: acknowledged events and issues survive a restart of the
// store (the engine's kill -9 is in test/e2e).
func TestDurable(t *testing.T) {
	dir := t.TempDir()
	e := startEnv(t, dir, nil)
	e.dsn("app")
	for range 3 {
		if code, _, _ := e.post(e.envelopePath("app"), envelope(sampleEvent), e.authHeader("app")); code != 200 {
			t.Fatal(code)
		}
	}
	e.waitIssues("app", "3 events", func(is []Issue) bool { return totalCount(is) == 3 })
	e.srv.Close()
	e.st.Close()

	e2 := startEnv(t, dir, nil)
	is := e2.waitIssues("app", "3 events after restart", func(is []Issue) bool { return totalCount(is) == 3 })
	if d := e2.show("app", is[0].ID, 10); len(d.Events) != 3 {
		t.Errorf("events after restart: %d", len(d.Events))
	}
	if code, _, _ := e2.post(e2.envelopePath("app"), envelope(sampleEvent), e2.authHeader("app")); code != 200 {
		t.Fatalf("same DSN after restart: %d", code)
	}
	e2.waitIssues("app", "4 events", func(is []Issue) bool { return totalCount(is) == 4 })
}

// TestRetention: the issue cap drops the least recently seen issues with
// their events; destroy drops everything.
func TestRetention(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxIssues = 2 })
	e.dsn("app")
	for i := range 4 {
		ev := fmt.Sprintf(`{"exception":[{"type":"E%d","value":"x"}]}`, i)
		if code, _, _ := e.post(e.envelopePath("app"), envelope(ev), e.authHeader("app")); code != 200 {
			t.Fatal(code)
		}
		e.waitIssues("app", "issue", func(is []Issue) bool { return len(is) == i+1 })
	}
	if err := e.tr.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := e.issues("app")
	if len(got) != 2 || byTitle(got, "E3") == nil || byTitle(got, "E2") == nil {
		t.Fatalf("after sweep: %+v", got)
	}
	e.tr.Destroy("app")
	if code := e.getJSON("/v1/apps/app/errors", nil); code != 404 {
		t.Errorf("after destroy: %d, want 404", code)
	}
	if code, _, _ := e.post("/_pier/errors/api/1/envelope/", envelope(sampleEvent), nil); code != 404 {
		t.Errorf("old DSN after destroy: %d, want 404", code)
	}
}
