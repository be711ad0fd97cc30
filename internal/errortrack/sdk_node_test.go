package errortrack

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// nodeDir is test/node, where scripts/test-deps.sh installs @sentry/node.
func nodeDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "test", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@sentry", "node")); err != nil {
		t.Fatalf("@sentry/node is not installed in %s: run scripts/test-deps.sh (npm ci there)", dir)
	}
	return dir
}

// TestSentryNode drives the real @sentry/node (test/node/sentry-send.js)
// against the tracker: query-string auth, no Content-Type, items without
// length, exception as {values}, float timestamps, session envelopes, gzip
// above 32 KB.
func TestSentryNode(t *testing.T) {
	dir := nodeDir(t)
	e := newEnv(t, nil)
	dsn := e.dsn("web")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "sentry-send.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SENTRY_DSN="+dsn)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node sentry-send.js: %v\n%s", err, out)
	}
	issues := e.waitIssues("web", "9 events in 4 issues", func(is []Issue) bool {
		return len(is) == 4 && totalCount(is) == 9
	})
	cart := byTitle(issues, "TypeError")
	if cart == nil || cart.Count != 4 || cart.GroupedBy != "exception" || cart.Users != 2 {
		t.Fatalf("cart issue: %+v", cart)
	}
	if cart.LastRelease != "web@2.0.0" || cart.Tags["shard"]["b"] != 4 || cart.Platform != "node" {
		t.Errorf("cart issue release %q tags %v platform %q", cart.LastRelease, cart.Tags, cart.Platform)
	}
	if q := byTitle(issues, "queue depth"); q == nil || q.Count != 2 || q.GroupedBy != "message" {
		t.Errorf("message issue: %+v", q)
	}
	bill := byTitle(issues, "billing")
	if bill == nil || bill.Count != 2 || bill.GroupedBy != "fingerprint" {
		t.Errorf("fingerprint issue: %+v", bill)
	}
	if big := byTitle(issues, "large payload"); big == nil {
		t.Errorf("the gzipped large event is missing")
	}

	d := e.show("web", cart.ID, 1)
	ev := d.Events[0]
	ex := ev.Exceptions[len(ev.Exceptions)-1]
	if ex.Type != "TypeError" || !strings.HasPrefix(ex.Value, "cart ") {
		t.Errorf("exception: %s %q", ex.Type, ex.Value)
	}
	top := ex.Frames[len(ex.Frames)-1]
	if top.Function != "loadCart" || !strings.Contains(top.ContextLine, "throw new TypeError") {
		t.Errorf("innermost frame: got %+v, want loadCart with its source line", top)
	}
	if len(ev.Breadcrumbs) == 0 || ev.User == nil {
		t.Errorf("breadcrumbs %v user %v", ev.Breadcrumbs, ev.User)
	}
	if ev.Timestamp.IsZero() || time.Since(ev.Timestamp) > time.Hour {
		t.Errorf("timestamp %v", ev.Timestamp)
	}
}
