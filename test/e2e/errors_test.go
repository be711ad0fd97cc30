package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
