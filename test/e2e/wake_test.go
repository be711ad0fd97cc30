package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// minZeroApp is hello-python with scale web min 0: started on the first
// request, stopped when idle.
func minZeroApp(t *testing.T) string {
	t.Helper()
	dir := example(t, "hello-python")
	yaml, err := os.ReadFile(filepath.Join(dir, "pier.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pier.yaml"), append(yaml, "scale: {web: {min: 0, max: 2}}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestWake: an app with web min 0 stops after the idle timeout and starts
// on the next request, which waits for it; concurrent first requests all
// get answers; an app asleep at a kill -9 stays asleep after the restart;
// pier scale web=0 stops it for real.
func TestWake(t *testing.T) {
	flags := []string{"--idle-timeout", "2s", "--wake-timeout", "30s"}
	e := startEngine(t, flags...)
	dir := minZeroApp(t)
	app := "hello-python"
	e.must(dir, "deploy") // the deploy starts it, to check its health

	asleep := func(what string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() bool {
			var a struct{ Status string }
			e.apiGet("/v1/apps/"+app, &a)
			return len(e.ps(app)) == 0 && a.Status == "asleep"
		})
	}
	asleep("the idle app stopped after the deploy")
	if out := e.must(dir, "ps"); strings.Contains(out, "web.1") {
		t.Fatalf("pier ps shows instances of a sleeping app:\n%s", out)
	}

	// The first request starts it and gets its answer.
	if code, body := e.get(app, "/"); code != 200 || !strings.Contains(body, "v1") {
		t.Fatalf("first request to a sleeping app: %d %q", code, body)
	}
	if ps := e.ps(app); len(ps) != 1 || !ps[0].Ready {
		t.Fatalf("after the first request: instances %+v, want 1 ready", ps)
	}
	asleep("the app stopped again once idle")

	// Twenty concurrent first requests wait for the same start.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, body := e.get(app, "/"); code != 200 || !strings.Contains(body, "v1") {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%d %q", code, body))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of 20 concurrent first requests failed: %v", len(failures), failures[:min(3, len(failures))])
	}
	if ps := e.ps(app); len(ps) != 1 {
		t.Fatalf("concurrent first requests started %d instances, want 1", len(ps))
	}
	asleep("asleep before the kill -9")

	// Asleep is desired state: a restarted engine does not start it.
	e.kill9()
	e.start()
	time.Sleep(2 * time.Second) // restore runs in the background
	if ps := e.ps(app); len(ps) != 0 {
		t.Fatalf("the restored engine started a sleeping app: %+v", ps)
	}
	if code, body := e.get(app, "/"); code != 200 || !strings.Contains(body, "v1") {
		t.Fatalf("first request after the restart: %d %q", code, body)
	}

	// pier scale web=0 stops it for good: requests no longer start it.
	e.must(dir, "scale", "web=0")
	waitFor(t, 30*time.Second, "no instances after scale web=0", func() bool { return len(e.ps(app)) == 0 })
	if code, _ := e.get(app, "/"); code != 503 {
		t.Fatalf("request to an app scaled to 0: %d, want 503", code)
	}
	if len(e.ps(app)) != 0 {
		t.Fatal("a request started an app scaled to 0")
	}
}
