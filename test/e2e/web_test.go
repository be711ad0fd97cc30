package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDashboardInBrowser deploys three examples (hello-python, with a
// config var; crashy-python, crashed once for an error issue;
// tasks-python, with a dead task), keeps traffic flowing to hello-python,
// and runs test/browser/dashboard.mjs: Debian's chromium, driven by
// playwright-core, logs in, scales from the page, follows a CLI deploy
// live, watches a chart update, rolls back, sets and unsets a config var,
// opens a stack trace and resolves its issue, pauses and resumes a queue
// and retries a dead task, and checks at 1280 and 390 px that every
// button is in view. Screenshots land in test/artifacts/screenshots.
// Afterwards the engine's API must agree with what the pages did.
func TestDashboardInBrowser(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	// make test installs both (scripts/test-deps.sh); in CI their absence
	// is a failure, elsewhere a skip.
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	if _, err := os.Stat(chromium); err != nil {
		skip("no %s (scripts/test-deps.sh installs it)", chromium)
	}
	root := repoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "test", "node", "node_modules", "playwright-core")); err != nil {
		skip("no playwright-core in test/node (scripts/test-deps.sh installs it)")
	}
	e := startEngine(t)

	hello := example(t, "hello-python")
	e.must(hello, "deploy")
	e.must(hello, "env", "set", "DASH_SECRET=s3cret-value", "--app", "hello-python")

	crashy := example(t, "crashy-python")
	e.must(crashy, "deploy")
	if code, body := e.get("crashy-python", "/crash"); code != 500 {
		t.Fatalf("crashy-python /crash: %d %s", code, body)
	}
	waitFor(t, 30*time.Second, "crashy-python's issue", func() bool {
		var issues []struct{ ID string }
		e.apiGet("/v1/apps/crashy-python/errors", &issues)
		return len(issues) > 0
	})

	tasksApp := example(t, "tasks-python")
	e.must(tasksApp, "deploy")
	req, _ := http.NewRequest("POST", "http://"+e.apiAddr+"/v1/apps/tasks-python/tasks/email", strings.NewReader(`{"body":"please fail"}`))
	req.Header.Set("Authorization", "Bearer "+e.token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("enqueue: %d", resp.StatusCode)
	}
	waitFor(t, 30*time.Second, "a dead task in tasks-python's email queue", func() bool {
		var qs []struct {
			Name string
			Dead int `json:"dead"`
		}
		e.apiGet("/v1/apps/tasks-python/tasks", &qs)
		for _, q := range qs {
			if q.Name == "email" && q.Dead > 0 {
				return true
			}
		}
		return false
	})

	// Traffic for the charts while the browser runs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			e.get("hello-python", "/")
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	shots := filepath.Join(root, "test", "artifacts", "screenshots")
	// Last run's screenshots must not stand in for missing ones.
	os.RemoveAll(shots)
	nctx, ncancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer ncancel()
	cmd := exec.CommandContext(nctx, "node", filepath.Join(root, "test", "browser", "dashboard.mjs"))
	cmd.Env = append(os.Environ(),
		"DASH_URL=http://"+e.apiAddr,
		"DASH_TOKEN="+e.token(),
		"DASH_APP=hello-python",
		"DASH_DEPLOY_DIR="+hello,
		"DASH_ERRORS_APP=crashy-python",
		"DASH_TASKS_APP=tasks-python",
		"DASH_TASKS_QUEUE=email",
		"PIER_BIN="+pierBin,
		"PIER_API=http://"+e.apiAddr,
		"PIER_HOME="+e.home,
		"PIER_TOKEN=",
		"SCREENSHOTS="+shots,
		"CHROMIUM="+chromium,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("dashboard.mjs:\n%s", out.String())
	if err != nil {
		t.Fatalf("browser test failed: %v (screenshots in %s)", err, shots)
	}
	for _, name := range []string{"01-login", "02-overview", "02-overview-phone", "03-app", "04-app-phone", "04-app-phone-top",
		"04-app-phone-releases", "05-deploy", "06-error", "06-error-resolved", "07-queues", "07-queues-phone", "08-config-refused", "08-config-set"} {
		if _, err := os.Stat(filepath.Join(shots, name+".png")); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}

	// What the pages did, as the engine's API sees it.
	var issues []struct{ Status string }
	e.apiGet("/v1/apps/crashy-python/errors?status=all", &issues)
	resolved := 0
	for _, is := range issues {
		if is.Status == "resolved" {
			resolved++
		}
	}
	if resolved != 1 {
		t.Errorf("crashy-python's issues after Resolve on the page: %+v, want one resolved", issues)
	}
	var qs []struct {
		Name   string
		Paused bool `json:"paused"`
	}
	e.apiGet("/v1/apps/tasks-python/tasks", &qs)
	for _, q := range qs {
		if q.Name == "email" && q.Paused {
			t.Error("the email queue is still paused after Pause then Resume on the page")
		}
	}
	var rels []struct{ Cause string }
	e.apiGet("/v1/apps/hello-python/releases", &rels)
	causes := ""
	for _, r := range rels {
		causes += r.Cause + "; "
	}
	if !strings.Contains(causes, "env set DASH_COLOR") || !strings.Contains(causes, "env unset DASH_COLOR") {
		t.Errorf("hello-python's releases (%s) lack the config change made on the page", causes)
	}
	var env map[string]string
	e.apiGet("/v1/apps/hello-python/env", &env)
	if _, ok := env["DASH_COLOR"]; ok || env["DASH_SECRET"] != "s3cret-value" {
		t.Errorf("hello-python's config after set and unset on the page: %v", env)
	}
}
