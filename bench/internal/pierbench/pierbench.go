// Package pierbench starts and measures the real pier binary for the
// benchmarks under bench/: build it, run `pier up` on free loopback ports
// with a temporary home, deploy with the CLI, read the engine's RSS, stop it
// by its PID. It is for benchmarks only; the end-to-end tests have their
// own harness in test/e2e.
package pierbench

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build compiles pier from the module in the working directory into dir.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "pier")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pier").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build pier: %v\n%s", err, out)
	}
	return bin, nil
}

// Engine is one running `pier up`.
type Engine struct {
	Cmd       *exec.Cmd
	Bin, Home string
	API, HTTP string // host:port
	Token     string // the admin token
}

// Start runs `pier up` with a home of its own and free ports for every
// listener (gateway, API, beanstalkd, statsd), plus extra flags.
func Start(bin, home string, extra ...string) (*Engine, error) {
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	e := &Engine{Bin: bin, Home: home, HTTP: FreeAddr(), API: FreeAddr()}
	log, err := os.Create(filepath.Join(home, "engine.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	args := append([]string{"up", "--home", home, "--http", e.HTTP, "--api", e.API,
		"--beanstalkd", FreeAddr(), "--statsd", FreeAddr()}, extra...)
	e.Cmd = exec.Command(bin, args...)
	e.Cmd.Stdout, e.Cmd.Stderr = log, log
	if err := e.Cmd.Start(); err != nil {
		return nil, err
	}
	for i := 0; i < 300; i++ {
		if resp, err := http.Get("http://" + e.API + "/v1/health"); err == nil {
			resp.Body.Close()
			tok, _ := os.ReadFile(filepath.Join(home, "token"))
			e.Token = strings.TrimSpace(string(tok))
			return e, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.Stop()
	return nil, fmt.Errorf("engine did not start; see %s", filepath.Join(home, "engine.log"))
}

// Pier runs the CLI against the engine and returns its combined output.
func (e *Engine) Pier(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.Bin, args...)
	cmd.Env = append(os.Environ(), "PIER_API=http://"+e.API, "PIER_HOME="+e.Home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("pier %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Deploy deploys dir as app and says how long the CLI took.
func (e *Engine) Deploy(dir, app string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	if _, err := e.Pier(ctx, "deploy", dir, "--app", app); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// RSSMiB is the engine process's resident memory.
func (e *Engine) RSSMiB() float64 { return RSSMiB(e.Cmd.Process.Pid) }

// Stop ends the engine with SIGTERM, then SIGKILL after 30 s.
func (e *Engine) Stop() {
	e.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { e.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		e.Cmd.Process.Kill()
		<-done
	}
}

// FreeAddr is a loopback address with a port nobody listens on now.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// RSSMiB is a process's resident memory from /proc.
func RSSMiB(pid int) float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// Median of s (the upper one for an even count); s is not changed.
func Median[T cmp.Ordered](s []T) T {
	c := slices.Clone(s)
	slices.Sort(c)
	return c[len(c)/2]
}
