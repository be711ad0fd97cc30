package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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

// TestDeployExamples deploys each bundled example and fetches it through
// the gateway.
func TestDeployExamples(t *testing.T) {
	e := startEngine(t)
	for _, tc := range []struct {
		example, want string
	}{
		{"hello-python", "hello-python"},
		{"hello-node", "hello-node"},
		{"hello-go", "hello-go"},
		{"hello-static", "hello-static"},
	} {
		t.Run(tc.example, func(t *testing.T) {
			dir := example(t, tc.example)
			out := e.must(dir, "deploy")
			if !strings.Contains(out, "v1") {
				t.Errorf("deploy output does not name v1:\n%s", out)
			}
			code, body := e.get(tc.example, "/")
			if code != 200 || !strings.Contains(body, tc.want) {
				t.Fatalf("GET /: %d %q, want 200 with %q", code, body, tc.want)
			}
			if tc.example != "hello-static" && !strings.Contains(body, "v1") {
				t.Errorf("GET / does not show PIER_RELEASE v1: %q", body)
			}
		})
	}
	out := e.must("", "apps")
	for _, name := range []string{"hello-python", "hello-node", "hello-go", "hello-static"} {
		if !strings.Contains(out, name) {
			t.Errorf("pier apps does not list %s:\n%s", name, out)
		}
	}
}

// TestBuildCache: a second deploy with the same dependencies reuses them.
func TestBuildCache(t *testing.T) {
	e := startEngine(t)
	dir := example(t, "hello-node")
	first := e.must(dir, "deploy")
	if strings.Contains(first, "reused from cache") {
		t.Fatalf("first deploy claims a cache hit:\n%s", first)
	}
	os.WriteFile(filepath.Join(dir, "extra.txt"), []byte("change the bundle, not the deps"), 0o644)
	second := e.must(dir, "deploy")
	if !strings.Contains(second, "reused from cache") {
		t.Fatalf("second deploy with the same lockfile did not reuse dependencies:\n%s", second)
	}
	if code, body := e.get("hello-node", "/"); code != 200 || !strings.Contains(body, "v2") {
		t.Fatalf("after the second deploy: %d %q", code, body)
	}
}

// TestLifecycle: scale, config change, rollback, one-off run, logs.
func TestLifecycle(t *testing.T) {
	e := startEngine(t)
	dir := example(t, "hello-python")
	e.must(dir, "deploy")
	app := "hello-python"

	e.must(dir, "scale", "web=2")
	if ps := e.ps(app); len(ps) != 2 {
		t.Fatalf("after scale web=2: %d instances: %+v", len(ps), ps)
	}
	out := e.must(dir, "ps")
	if !strings.Contains(out, "web.2") {
		t.Errorf("pier ps does not show web.2:\n%s", out)
	}

	e.must(dir, "env", "set", "GREETING=bonjour")
	if code, body := e.get(app, "/"); code != 200 || !strings.Contains(body, "bonjour") || !strings.Contains(body, "v2") {
		t.Fatalf("after env set: %d %q, want bonjour from v2", code, body)
	}
	if ps := e.ps(app); len(ps) != 2 {
		t.Errorf("the config change lost the scale: %d instances", len(ps))
	}
	if out := e.must(dir, "env", "list"); !strings.Contains(out, "GREETING") {
		t.Errorf("env list: %q", out)
	}

	e.must(dir, "rollback")
	if code, body := e.get(app, "/"); code != 200 || strings.Contains(body, "bonjour") || !strings.Contains(body, "v3") {
		t.Fatalf("after rollback: %d %q, want v3 without bonjour", code, body)
	}
	rels := e.must(dir, "releases")
	if !strings.Contains(rels, "rollback to v1") {
		t.Errorf("releases do not record the rollback:\n%s", rels)
	}
	e.must(dir, "rollback", "v2")
	if _, body := e.get(app, "/"); !strings.Contains(body, "bonjour") {
		t.Errorf("rollback v2 did not bring its config back: %q", body)
	}

	out, _, code := e.pier(dir, "run", app, "--", "sh", "-c", "echo run:$PIER_APP:$GREETING:$PIER_RELEASE:$SENTRY_RELEASE:$PORT; exit 7")
	if code != 7 || !strings.Contains(out, "run:hello-python:bonjour:v4:v4:") {
		t.Errorf("pier run: exit %d, output %q; want 7 and the app's environment (release v4 for pier and Sentry)", code, out)
	}

	// Logs follow: a request made after `pier logs -f` started shows up.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pierBin, "logs", "-f", "--app", app, "-n", "0")
	cmd.Env = append(os.Environ(), "PIER_API=http://"+e.apiAddr, "PIER_HOME="+e.home)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Sent again until it shows: a request made before the follow has
	// subscribed is not followed (-n 0), and under load that can take a
	// while.
	marker := "/logs-follow-marker"
	resend := time.NewTicker(500 * time.Millisecond)
	defer resend.Stop()
	e.get(app, marker)
	for {
		select {
		case <-resend.C:
			e.get(app, marker)
		case l, ok := <-lines:
			if !ok {
				t.Fatal("pier logs -f ended")
			}
			if strings.Contains(l, marker) {
				if !strings.Contains(l, "web.") {
					t.Errorf("log line without its instance label: %q", l)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("the request never showed up in pier logs -f")
		}
	}
}

// TestDestroy removes an app and its route.
func TestDestroy(t *testing.T) {
	e := startEngine(t)
	dir := example(t, "hello-static")
	e.must(dir, "deploy")
	if _, _, code := e.pier(dir, "destroy", "hello-static"); code == 0 {
		t.Fatal("destroy without --yes and without a terminal succeeded")
	}
	e.must(dir, "destroy", "hello-static", "--yes")
	if code, _ := e.get("hello-static", "/"); code != 404 {
		t.Fatalf("after destroy: %d, want 404", code)
	}
	if out := e.must("", "apps"); strings.Contains(out, "hello-static") {
		t.Fatalf("destroyed app still listed:\n%s", out)
	}
}

// TestNewAndServe: `pier new` writes an app that deploys, and `pier serve`
// runs it locally and picks up a saved change.
func TestNewAndServe(t *testing.T) {
	e := startEngine(t)
	for _, lang := range []string{"python", "node", "go", "static"} {
		t.Run("new "+lang, func(t *testing.T) {
			name := "new-" + lang
			dir := filepath.Join(t.TempDir(), name)
			e.must(filepath.Dir(dir), "new", name, "--lang", lang)
			e.must(dir, "deploy")
			if code, body := e.get(name, "/"); code != 200 {
				t.Fatalf("GET / of a new %s app: %d %q", lang, code, body)
			}
		})
	}

	t.Run("serve", func(t *testing.T) {
		dir := example(t, "hello-python")
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, pierBin, "serve", "--http", addr)
		cmd.Dir = dir
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		get := func() string {
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Host = "hello-python.localhost"
			resp, err := httpClient.Do(req)
			if err != nil {
				return ""
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		waitFor(t, 60*time.Second, "pier serve answers", func() bool { return strings.Contains(get(), "hello-python") })
		yaml, _ := os.ReadFile(filepath.Join(dir, "pier.yaml"))
		os.WriteFile(filepath.Join(dir, "pier.yaml"), []byte(strings.Replace(string(yaml), "GREETING: hello", "GREETING: changed-on-disk", 1)), 0o644)
		waitFor(t, 60*time.Second, "pier serve picks up the change", func() bool { return strings.Contains(get(), "changed-on-disk") })
		if t.Failed() {
			t.Logf("serve output:\n%s", out.String())
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
