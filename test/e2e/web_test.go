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
// live, watches a chart update, rolls back, opens a stack trace and
// retries a dead task. Screenshots land in test/artifacts/screenshots.
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
	for _, name := range []string{"01-login", "02-overview", "03-app", "04-app-phone", "05-deploy", "06-error", "07-queues"} {
		if _, err := os.Stat(filepath.Join(shots, name+".png")); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
}
