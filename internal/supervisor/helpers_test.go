package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a tiny web app: with SUPERVISOR_TEST_HELPER=http
// it serves on 127.0.0.1:$PORT. /healthz answers 200 once $HEALTH_FILE
// exists (or always when it is unset), 503 before; / answers $GREETING.
func TestMain(m *testing.M) {
	switch os.Getenv("SUPERVISOR_TEST_HELPER") {
	case "http":
		helperHTTP()
		return
	case "engine":
		helperEngine()
		return
	}
	os.Exit(m.Run())
}

func helperHTTP() {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if f := os.Getenv("HEALTH_FILE"); f != "" {
			if _, err := os.Stat(f); err != nil {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv("GREETING"))
	})
	addr := net.JoinHostPort("127.0.0.1", os.Getenv("PORT"))
	fmt.Println("listening on", addr)
	fmt.Fprintln(os.Stderr, "helper stderr line")
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// helperEngine plays an engine that gets killed: it starts $COMMAND as an
// instance with pid files in $RUN_DIR, prints "leader <pid>" and every
// output line, and waits to be killed.
func helperEngine() {
	var mu sync.Mutex
	s := New(Options{
		RunDir: os.Getenv("RUN_DIR"),
		Output: func(l Line) {
			mu.Lock()
			fmt.Println(l.Text)
			mu.Unlock()
		},
	})
	i, err := s.Start(context.Background(), Spec{ID: "orphan.1", Command: os.Getenv("COMMAND"), Env: baseEnv()})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	mu.Lock()
	fmt.Println("leader", i.Status().PID)
	mu.Unlock()
	select {}
}

// helperCommand is a Spec.Command running the test binary as the web app.
func helperCommand(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return shellQuote(exe)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// script writes a shell script and returns a Spec.Command running it.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(path, []byte("set -u\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return "/bin/sh " + shellQuote(path)
}

func baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}, extra...)
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recorder collects what a Supervisor reports.
type recorder struct {
	mu      sync.Mutex
	lines   []Line
	changes []Status
}

func (r *recorder) output(l Line) {
	r.mu.Lock()
	r.lines = append(r.lines, l)
	r.mu.Unlock()
}

func (r *recorder) change(s Status) {
	r.mu.Lock()
	r.changes = append(r.changes, s)
	r.mu.Unlock()
}

func (r *recorder) hasLine(stream, text string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if l.Stream == stream && l.Text == text {
			return true
		}
	}
	return false
}

func (r *recorder) countLines(text string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if l.Text == text {
			n++
		}
	}
	return n
}

func (r *recorder) sawState(id string, st State) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.changes {
		if c.ID == id && c.State == st {
			return true
		}
	}
	return false
}

// newTestSupervisor returns a Supervisor reporting to a recorder, with every
// instance stopped at the end of the test.
func newTestSupervisor(t *testing.T) (*Supervisor, *recorder) {
	t.Helper()
	rec := &recorder{}
	var logs bytes.Buffer
	var logMu sync.Mutex
	s := New(Options{
		Logger:   slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RunDir:   filepath.Join(t.TempDir(), "run"),
		Output:   rec.output,
		OnChange: rec.change,
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.StopAll(ctx); err != nil {
			t.Errorf("StopAll: %v", err)
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("supervisor log:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	return s, rec
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := NewPorts().Next()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// alive reports whether pid runs (a zombie counts as dead).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := readProcStat(pid)
	return err == nil && st.state != 'Z'
}

func startOrFatal(t *testing.T, s *Supervisor, spec Spec) *Instance {
	t.Helper()
	i, err := s.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return i
}

func stopOrFatal(t *testing.T, i *Instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := i.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
