package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
)

// errIssue is the part of an issue the tests read.
type errIssue struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Status      string `json:"status"`
	Count       int64  `json:"count"`
	LastRelease string `json:"last_release"`
	GroupedBy   string `json:"grouped_by"`
}

func (e *engine) errorIssues(app string) []errIssue {
	e.t.Helper()
	var out []errIssue
	e.apiGet("/v1/apps/"+app+"/errors?status=all", &out)
	return out
}

func (e *engine) waitIssue(app, title string, cond func(errIssue) bool) errIssue {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		issues := e.errorIssues(app)
		for _, is := range issues {
			if strings.Contains(is.Title, title) && cond(is) {
				return is
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for issue %q of %s; issues: %+v", title, app, issues)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestErrors: a Python app with no SDK crashes and the crash is an issue
// with its release; sentry-go and @sentry/node send to the SENTRY_DSN pier
// gives the app (through the gateway's /_pier/errors/ prefix); the CLI
// lists, shows and resolves; acknowledged events survive kill -9.
func TestErrors(t *testing.T) {
	e := startEngine(t)
	dir := example(t, "crashy-python")
	e.must(dir, "deploy")
	app := "crashy-python"
	if code, body := e.get(app, "/"); code != 200 || !strings.Contains(body, "SENTRY_DSN set") {
		t.Fatalf("GET /: %d %q", code, body)
	}

	// A crash without an SDK.
	e.get(app, "/crash")
	crash := e.waitIssue(app, "PaymentError: card declined for order 42", func(is errIssue) bool { return is.Count >= 1 })
	if crash.LastRelease != "v1" || crash.GroupedBy != "exception" {
		t.Errorf("crash issue: %+v", crash)
	}
	out := e.must(dir, "errors")
	if !strings.Contains(out, crash.ID) || !strings.Contains(out, "PaymentError") {
		t.Errorf("pier errors:\n%s", out)
	}
	show := e.must("", "errors", "show", crash.ID)
	for _, want := range []string{"PaymentError: card declined for order 42", "charge in", "app.py", "raise PaymentError", "release v1", "from crash"} {
		if !strings.Contains(show, want) {
			t.Errorf("pier errors show lacks %q:\n%s", want, show)
		}
	}

	// The real SDKs, through the gateway, with the DSN the app gets.
	dsn := strings.TrimSpace(e.must(dir, "errors", "dsn"))
	if !strings.Contains(dsn, "@"+e.httpAddr+"/_pier/errors/") {
		t.Fatalf("DSN %q does not point at the gateway %s", dsn, e.httpAddr)
	}
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: dsn, Release: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	client.CaptureException(errors.New("go side failed"), nil, sentry.NewScope())
	if !client.Flush(10 * time.Second) {
		t.Fatal("sentry-go did not flush")
	}
	e.waitIssue(app, "go side failed", func(is errIssue) bool { return is.Count == 1 })

	nodeDir := filepath.Join(repoRoot(t), "test", "node")
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "@sentry", "node")); err != nil {
		t.Fatalf("@sentry/node missing in %s: run scripts/test-deps.sh", nodeDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "sentry-send.js")
	node.Dir = nodeDir
	node.Env = append(os.Environ(), "SENTRY_DSN="+dsn)
	if out, err := node.CombinedOutput(); err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	e.waitIssue(app, "TypeError: cart", func(is errIssue) bool { return is.Count == 4 })

	// Resolve from the CLI.
	e.must("", "errors", "resolve", crash.ID)
	e.waitIssue(app, "PaymentError", func(is errIssue) bool { return is.Status == "resolved" })
	if out := e.must(dir, "errors"); strings.Contains(out, crash.ID) {
		t.Errorf("a resolved issue is listed by default:\n%s", out)
	}

	// Acknowledged events survive kill -9, even those not yet counted.
	// (Its own fingerprint: the same error type from the same function
	// would otherwise join the "go side failed" issue.)
	scope := sentry.NewScope()
	scope.SetFingerprint([]string{"before-kill"})
	for range 5 {
		client.CaptureException(errors.New("right before the kill"), nil, scope)
	}
	if !client.Flush(10 * time.Second) {
		t.Fatal("sentry-go did not flush")
	}
	e.kill9()
	e.start()
	e.waitIssue(app, "right before the kill", func(is errIssue) bool { return is.Count == 5 })
	if is := e.waitIssue(app, "go side failed", func(errIssue) bool { return true }); is.Count != 1 {
		t.Errorf("after restart: %+v", is)
	}
}

// errcapApp is a web process that answers with its SENTRY_DSN, so the test
// sends events as the app's SDK would.
var errcapApp = map[string]string{
	"pier.yaml": "name: errcap\nprocesses:\n  web: python3 app.py\n",
	"app.py": `import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("SENTRY_DSN", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
}

// TestErrorsNodeCapAndPages: pier up --errors-node-rate caps the events
// the node takes from all apps (429, Retry-After and X-Sentry-Rate-Limits
// as Sentry sends them, while the app is far under its own rate), and
// pier errors shows a page at a time with the command for the next one.
func TestErrorsNodeCapAndPages(t *testing.T) {
	// A bad flag stops pier up before it starts anything (and should it
	// start, the deadline ends it).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	up := exec.CommandContext(ctx, pierBin, "up", "--home", t.TempDir(), "--http", "127.0.0.1:0", "--api", "127.0.0.1:0",
		"--beanstalkd", "127.0.0.1:0", "--statsd", "127.0.0.1:0", "--errors-retention", "30x")
	if out, err := up.CombinedOutput(); err == nil || !strings.Contains(string(out), "--errors-retention \"30x\"") {
		t.Errorf("pier up --errors-retention 30x: %v\n%s", err, out)
	}

	// 1 event/s over the node: a burst of 5 (five seconds' worth).
	e := startEngine(t, "--errors-node-rate", "1")
	dir := writeApp(t, errcapApp)
	e.must(dir, "deploy")
	_, dsn := e.get("errcap", "/")
	key, rest, ok := strings.Cut(strings.TrimPrefix(dsn, "http://"), "@")
	if !ok {
		t.Fatalf("SENTRY_DSN %q", dsn)
	}
	host, project, _ := strings.Cut(rest, "/_pier/errors/")
	url := "http://" + host + "/_pier/errors/api/" + project + "/envelope/"
	var codes []int
	var limited http.Header
	for i := range 8 {
		ev := fmt.Sprintf(`{"message":"capped %d","fingerprint":["f%d"]}`, i, i)
		body := `{}` + "\n" + `{"type":"event","length":` + strconv.Itoa(len(ev)) + "}\n" + ev + "\n"
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_version=7, sentry_key="+key)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 {
			limited = resp.Header
		}
	}
	// The sixth may pass if a second went by since the first.
	if codes[0] != 200 || codes[4] != 200 || codes[7] != 429 || limited == nil {
		t.Fatalf("statuses %v, want 5 (or 6) accepted then 429", codes)
	}
	ra := limited.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n < 1 {
		t.Errorf("Retry-After %q", ra)
	}
	if rl := limited.Get("X-Sentry-Rate-Limits"); rl != ra+":error;default;security:organization" {
		t.Errorf("X-Sentry-Rate-Limits %q", rl)
	}
	accepted := 0
	for _, c := range codes {
		if c == 200 {
			accepted++
		}
	}

	// One issue per accepted event (own fingerprints): two pages of
	// --limit 3, the first ending with the command for the second.
	e.waitIssue("errcap", "capped 0", func(errIssue) bool { return len(e.errorIssues("errcap")) == accepted })
	first := e.must(dir, "errors", "--limit", "3")
	i := strings.Index(first, "More: pier errors errcap --status unresolved --cursor ")
	if i < 0 || strings.Count(first, "capped ") != 3 {
		t.Fatalf("pier errors --limit 3:\n%s", first)
	}
	next := strings.Fields(first[i+len("More: pier "):])
	second := e.must(dir, append(next, "--limit", "3")...)
	if got := strings.Count(second, "capped "); got != accepted-3 {
		t.Errorf("second page has %d issues, want %d:\n%s", got, accepted-3, second)
	}
	for n := range accepted {
		if c := strings.Count(first+second, fmt.Sprintf("capped %d", n)); c != 1 {
			t.Errorf("issue %q listed %d times over the two pages", fmt.Sprintf("capped %d", n), c)
		}
	}
	var counts struct {
		Issues, Unresolved int
		Events             int64
	}
	e.apiGet("/v1/apps/errcap/errors/counts", &counts)
	if counts.Issues != accepted || counts.Unresolved != accepted || counts.Events != int64(accepted) {
		t.Errorf("counts %+v, want %d issues and events", counts, accepted)
	}
}
