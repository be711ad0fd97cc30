// Command backlog measures pier with a large backlog of ready tasks: for
// each engine given (a pier binary with its flags), on a fresh home, it
// puts N tasks of SIZE bytes over the beanstalkd protocol and lets the
// journal drain into JetStream, then reports the engine's resident memory
// (VmRSS, and its peak VmHWM, from /proc); then it stops the engine with
// SIGTERM (or SIGKILL with -kill9), starts it again on the same home and
// reports the time from the start to the first beanstalkd answer (the index is loaded before the
// listener opens) and the memory once loaded; it reserves a few tasks to
// check that the backlog is all there. Everything listens on free
// loopback ports; each engine is stopped by its PID; -timeout bounds each
// step.
//
//	go build -o /tmp/pier ./cmd/pier
//	go run ./bench/tasks/backlog -n 1000000 -size 1024 \
//	    'bounded=/tmp/pier' 'unbounded=/tmp/pier --tasks-memory 0' 'old=/tmp/pier-old'
//
// A 2-core machine shared with other work moves these figures; compare
// engines of the same run.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"
)

func main() {
	n := flag.Int("n", 1_000_000, "tasks put")
	size := flag.Int("size", 1024, "task body bytes")
	conns := flag.Int("conns", 8, "connections putting")
	settle := flag.Duration("settle", 5*time.Second, "wait after the puts (the drain stores them; memory settles) before measuring")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound on each step (puts, stop, start)")
	app := flag.String("app", "examples/hello-static", "app deployed so that beanstalkd connections need no token")
	keep := flag.Bool("keep", false, "keep the work directory")
	kill := flag.Bool("kill9", false, "stop the engine with SIGKILL instead of SIGTERM before the restart (no clean stop: the start reads the whole stream)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: backlog [flags] 'name=/path/to/pier [pier up flags]' ...")
		os.Exit(2)
	}
	work, err := os.MkdirTemp("", "pier-bench-backlog-")
	if err != nil {
		fail(err)
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	appDir, err := filepath.Abs(*app)
	if err != nil {
		fail(err)
	}
	fmt.Printf("%d tasks of %d bytes, %d connections putting; load average %s\n", *n, *size, *conns, loadavg())
	fmt.Printf("%-12s %9s %9s %9s %8s %9s %11s %9s %10s\n", "engine", "puts/s", "RSS MiB", "peak MiB", "stop s", "start s", "start CPU s", "RSS MiB", "load avg")
	for _, arg := range flag.Args() {
		name, spec, ok := strings.Cut(arg, "=")
		if !ok {
			fail(fmt.Errorf("%q: want name=/path/to/pier [flags]", arg))
		}
		r, err := run(filepath.Join(work, name), strings.Fields(spec), appDir, *n, *size, *conns, *settle, *timeout, *kill)
		start := fmt.Sprintf("%.2f", r.start.Seconds())
		if err != nil {
			// What was measured is still shown (an engine that does not
			// start again with the backlog is a result).
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			if r.start == 0 {
				start = "failed"
			}
		}
		fmt.Printf("%-12s %9.0f %9.0f %9.0f %8.1f %9s %11.2f %9.0f %10s\n", name, r.putRate, r.rss, r.peak, r.stop.Seconds(), start, r.startCPU.Seconds(), r.rssAfter, loadavg())
	}
	fmt.Println("RSS after the puts and the drain, its peak; SIGTERM to exit; start to the first beanstalkd answer, and the engine's CPU time (user+system) by then, which a busy machine disturbs less; RSS once started")
}

type result struct {
	putRate     float64
	rss, peak   float64 // MiB
	stop, start time.Duration
	startCPU    time.Duration // user+system CPU of the engine until it answered
	rssAfter    float64
}

// engine is one pier up.
type engine struct {
	cmd      *exec.Cmd
	bin      string
	args     []string
	home     string
	api, bsd string
	exited   chan struct{}
	// cpuAtStart is the CPU time the engine had used when it first
	// answered.
	cpuAtStart time.Duration
}

func run(dir string, spec []string, appDir string, n, size, conns int, settle, timeout time.Duration, kill9 bool) (result, error) {
	var r result
	e := &engine{bin: spec[0], home: filepath.Join(dir, "home")}
	e.api, e.bsd = freeAddr(), freeAddr()
	e.args = append([]string{"up", "--home", e.home, "--http", freeAddr(), "--api", e.api, "--beanstalkd", e.bsd,
		"--statsd", "127.0.0.1:0", "--log-level", "warn"}, spec[1:]...)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	if _, err := e.start(dir, timeout); err != nil {
		return r, err
	}
	defer e.kill()
	deploy := exec.Command(e.bin, "deploy")
	deploy.Dir = appDir
	deploy.Env = append(os.Environ(), "PIER_API=http://"+e.api, "PIER_HOME="+e.home)
	if out, err := deploy.CombinedOutput(); err != nil {
		return r, fmt.Errorf("deploy: %v: %s", err, out)
	}
	rate, err := putAll(e.bsd, n, size, conns, timeout)
	if err != nil {
		return r, err
	}
	r.putRate = rate
	time.Sleep(settle)
	r.rss, r.peak = memory(e.cmd.Process.Pid)

	t0 := time.Now()
	if kill9 {
		e.kill()
	} else if err := e.stop(timeout); err != nil {
		return r, err
	}
	r.stop = time.Since(t0)
	if r.start, err = e.start(dir, timeout); err != nil {
		return r, err
	}
	r.startCPU = e.cpuAtStart
	time.Sleep(settle)
	r.rssAfter, _ = memory(e.cmd.Process.Pid)
	if err := check(e.bsd, n); err != nil {
		return r, err
	}
	return r, e.stop(timeout)
}

// start runs pier up and returns the time until its beanstalkd listener
// answers a command.
func (e *engine) start(dir string, timeout time.Duration) (time.Duration, error) {
	logf, err := os.OpenFile(filepath.Join(dir, "pier.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	e.cmd = exec.Command(e.bin, e.args...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	t0 := time.Now()
	if err := e.cmd.Start(); err != nil {
		return 0, err
	}
	e.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { c.Wait(); close(ch) }(e.cmd, e.exited)
	deadline := t0.Add(timeout)
	for {
		if answers(e.bsd) {
			break
		}
		select {
		case <-e.exited:
			return 0, fmt.Errorf("pier up exited; see %s", logf.Name())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no beanstalkd answer within %v", timeout)
		}
	}
	took := time.Since(t0)
	e.cpuAtStart = cpuTime(e.cmd.Process.Pid)
	// The CLI needs the API too (it opens after the beanstalkd listener).
	for !apiUp(e.api) {
		select {
		case <-e.exited:
			return 0, fmt.Errorf("pier up exited; see %s", logf.Name())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no API answer within %v", timeout)
		}
	}
	return took, nil
}

// answers reports whether a beanstalkd server at addr answers a command
// (any answer: before an app is deployed it is UNAUTHORIZED).
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("list-tube-used\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line != ""
}

func apiUp(addr string) bool {
	resp, err := http.Get("http://" + addr + "/v1/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (e *engine) stop(timeout time.Duration) error {
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
		return nil
	case <-time.After(timeout):
		e.kill()
		return fmt.Errorf("pier up did not stop within %v of SIGTERM", timeout)
	}
}

func (e *engine) kill() {
	select {
	case <-e.exited:
	default:
		e.cmd.Process.Kill()
		<-e.exited
	}
}

// putAll puts n tasks over conns connections and returns tasks/s.
func putAll(addr string, n, size, conns int, timeout time.Duration) (float64, error) {
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var (
		left  atomic.Int64
		wg    sync.WaitGroup
		first atomic.Value
	)
	left.Store(int64(n))
	start := time.Now()
	for range conns {
		c, err := bs.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				if _, err := c.Put(body, 0, 0, time.Minute); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return 0, fmt.Errorf("put: %w", err)
	}
	if ctx.Err() != nil {
		return 0, errors.New("the puts took longer than -timeout")
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// check makes sure the restarted engine has the whole backlog ready, and
// reserves a few tasks of it (their bodies come from wherever they are).
func check(addr string, n int) error {
	c, err := bs.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Tube.Stats()
	if err != nil {
		return err
	}
	if got, _ := strconv.Atoi(st["current-jobs-ready"]); got != n {
		return fmt.Errorf("after the restart: %d tasks ready, want %d", got, n)
	}
	for range 100 {
		id, body, err := c.Reserve(10 * time.Second)
		if err != nil {
			return fmt.Errorf("reserve after the restart: %w", err)
		}
		if len(body) == 0 {
			return fmt.Errorf("task %d reserved without its body", id)
		}
		if err := c.Release(id, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// memory returns a process's resident memory and its peak, in MiB.
func memory(pid int) (rss, peak float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return rss, peak
}

// cpuTime is the user+system CPU time process pid has used (from
// /proc/<pid>/stat, in ticks of 10 ms).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(f[11], 10, 64)
	sys, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(user+sys) * 10 * time.Millisecond
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "backlog:", err)
	os.Exit(1)
}
