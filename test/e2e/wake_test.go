package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startEngineWith starts pier up like startEngine, with extra flags.
func startEngineWith(t *testing.T, extra ...string) *engine {
	t.Helper()
	e := &engine{
		t:        t,
		home:     t.TempDir(),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		apiAddr:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		bsAddr:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		statsd:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	startWith(e, extra...)
	t.Cleanup(e.stop)
	return e
}

// startWith is engine.start with extra flags, to restart an engine
// started by startEngineWith.
func startWith(e *engine, extra ...string) {
	t := e.t
	t.Helper()
	e.logPath = filepath.Join(e.home, "engine.log")
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"up", "--home", e.home, "--http", e.httpAddr, "--api", e.apiAddr, "--domain", "localhost",
		"--beanstalkd", e.bsAddr, "--statsd", e.statsd}, extra...)
	e.cmd = exec.Command(pierBin, args...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: false}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	e.exited = make(chan struct{})
	go func() { e.cmd.Wait(); close(e.exited) }()
	waitFor(t, 30*time.Second, "engine answers", func() bool {
		resp, err := http.Get("http://" + e.apiAddr + "/v1/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

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
	e := startEngineWith(t, flags...)
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
	startWith(e, flags...)
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
