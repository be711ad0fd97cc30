// Package e2e drives the real pier binary: it starts `pier up` on free
// loopback ports with a home in a temporary directory, deploys real apps
// with the real CLI and talks to them through the gateway.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pierBin is the binary under test, built once by TestMain.
var pierBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pier-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pierBin = filepath.Join(dir, "pier")
	build := exec.Command("go", "build", "-o", pierBin, "pier/cmd/pier")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build pier:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// engine is one running `pier up`.
type engine struct {
	t        *testing.T
	home     string
	httpAddr string
	apiAddr  string
	bsAddr   string // beanstalkd protocol
	statsd   string // statsd (UDP)
	https    string // the HTTPS gateway; "" without one
	cmd      *exec.Cmd
	logPath  string
	exited   chan struct{}
	extra    []string // more pier up flags
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEngine starts pier up with a fresh home and fresh ports, with extra
// flags if any.
func startEngine(t *testing.T, extra ...string) *engine {
	t.Helper()
	return startOn(t, false, extra)
}

// startEngineTLS is startEngine with the HTTPS gateway on a fresh port
// (engine.https) and the certificates in tlsDir.
func startEngineTLS(t *testing.T, tlsDir string, extra ...string) *engine {
	t.Helper()
	return startOn(t, true, append([]string{"--tls-dir", tlsDir}, extra...))
}

func startOn(t *testing.T, https bool, extra []string) *engine {
	t.Helper()
	e := &engine{t: t, home: t.TempDir(), extra: extra}
	// Registered first, so that an engine that never answers is still
	// stopped and its log shown.
	t.Cleanup(e.stop)
	for try := 1; ; try++ {
		e.httpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		e.apiAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		e.bsAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		e.statsd = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		if https {
			e.https = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		}
		// freePort's port is free when it returns, not when the engine
		// binds it: another test's process may take it in between.
		if err := e.launch(); err == nil || try == 3 || !strings.Contains(err.Error(), "address already in use") {
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
	}
}

// start starts pier up again on the same home, ports and flags, as a
// restart after stop or kill9.
func (e *engine) start() {
	e.t.Helper()
	if err := e.launch(); err != nil {
		e.t.Fatal(err)
	}
}

// launch starts pier up and waits until its API answers; if it exits or
// does not answer in 30s, the error carries the end of its log.
func (e *engine) launch() error {
	e.logPath = filepath.Join(e.home, "engine.log")
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"up", "--home", e.home, "--http", e.httpAddr, "--api", e.apiAddr, "--domain", "localhost",
		"--beanstalkd", e.bsAddr, "--statsd", e.statsd}
	if e.https != "" {
		args = append(args, "--https", e.https)
	}
	e.cmd = exec.Command(pierBin, append(args, e.extra...)...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		return err
	}
	e.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { cmd.Wait(); close(ch) }(e.cmd, e.exited)
	logTail := func() string {
		data, _ := os.ReadFile(e.logPath)
		return lastLines(string(data), 40)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-e.exited:
			return fmt.Errorf("pier up exited (%v) before its API answered; engine log:\n%s", e.cmd.ProcessState, logTail())
		default:
		}
		resp, err := http.Get("http://" + e.apiAddr + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pier up did not answer on %s in 30s (last: %v); engine log:\n%s", e.apiAddr, err, logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the engine with SIGTERM, as an operator would.
func (e *engine) stop() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	select {
	case <-e.exited:
		return
	default:
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(30 * time.Second):
		e.cmd.Process.Kill()
		<-e.exited
	}
	if e.t.Failed() {
		data, _ := os.ReadFile(e.logPath)
		e.t.Logf("engine log:\n%s", lastLines(string(data), 40))
	}
}

// kill9 kills the engine the hard way; its app processes are left to the
// next engine's sweep.
func (e *engine) kill9() {
	e.t.Helper()
	e.cmd.Process.Signal(syscall.SIGKILL)
	<-e.exited
}

// pier runs the CLI against this engine.
func (e *engine) pier(dir string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pierBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PIER_API=http://"+e.apiAddr, "PIER_HOME="+e.home, "PIER_TOKEN=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return out.String(), errb.String(), code
}

// must runs the CLI and fails the test unless it exits 0.
func (e *engine) must(dir string, args ...string) string {
	e.t.Helper()
	out, errs, code := e.pier(dir, args...)
	if code != 0 {
		e.t.Fatalf("pier %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// get fetches path from app through the gateway.
func (e *engine) get(app, path string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.httpAddr+path, nil)
	req.Host = app + ".localhost"
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// apiGet decodes an API answer.
func (e *engine) apiGet(path string, v any) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.apiAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token())
	resp, err := httpClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		e.t.Fatal(err)
	}
}

func (e *engine) token() string {
	data, err := os.ReadFile(filepath.Join(e.home, "token"))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// instance is the part of `pier ps --json` the tests look at.
type instance struct {
	Instance string `json:"instance"`
	Release  int    `json:"release"`
	State    string `json:"state"`
	Ready    bool   `json:"ready"`
	PID      int    `json:"pid"`
	Port     int    `json:"port"`
	Restarts int    `json:"restarts"`
}

func (e *engine) ps(app string) []instance {
	e.t.Helper()
	var out []instance
	e.apiGet("/v1/apps/"+app+"/ps", &out)
	return out
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// repoRoot is the checkout this test runs in.
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// example copies examples/name into a temporary directory the test may
// change.
func example(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join(repoRoot(t), "examples", name)
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeApp writes files (name -> content) into a new directory.
func writeApp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
