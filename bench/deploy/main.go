// Command deploy measures what issue #2 asks of the engine core: deploy
// time of the Go and Python examples, cold (an empty build cache) and
// cached (same dependencies, changed code), the engine's idle RSS, and its
// RSS with 20 apps deployed. It starts the real pier binary on loopback
// ports with a temporary home and prints medians.
//
//	go run ./bench/deploy [-runs 5] [-apps 20]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	runs := flag.Int("runs", 5, "measurements per figure (median reported)")
	apps := flag.Int("apps", 20, "apps deployed for the RSS figure")
	flag.Parse()
	if err := run(*runs, *apps); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs, napps int) error {
	root, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "pier-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "pier")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pier").CombinedOutput(); err != nil {
		return fmt.Errorf("build pier: %v\n%s", err, out)
	}
	fmt.Printf("pier engine-core bench — %s, %d cores (noisy shared machine), runs=%d\n\n", time.Now().Format(time.RFC3339), 2, runs)

	for _, ex := range []string{"hello-go", "hello-python"} {
		var cold, cached []time.Duration
		for i := 0; i < runs; i++ {
			e, err := start(bin, filepath.Join(tmp, fmt.Sprintf("home-%s-%d", ex, i)))
			if err != nil {
				return err
			}
			src := filepath.Join(root, "examples", ex)
			d, err := e.deploy(src, ex)
			if err != nil {
				e.stop()
				return err
			}
			cold = append(cold, d)
			// Cached: same dependencies, a changed file.
			work := filepath.Join(tmp, fmt.Sprintf("src-%s-%d", ex, i))
			os.CopyFS(work, os.DirFS(src))
			os.WriteFile(filepath.Join(work, "bench-change.txt"), []byte(time.Now().String()), 0o644)
			d, err = e.deploy(work, ex)
			e.stop()
			if err != nil {
				return err
			}
			cached = append(cached, d)
		}
		fmt.Printf("deploy %-13s cold   median %7.2fs  (min %.2fs, max %.2fs)\n", ex, median(cold).Seconds(), slices.Min(cold).Seconds(), slices.Max(cold).Seconds())
		fmt.Printf("deploy %-13s cached median %7.2fs  (min %.2fs, max %.2fs)\n", ex, median(cached).Seconds(), slices.Min(cached).Seconds(), slices.Max(cached).Seconds())
	}

	e, err := start(bin, filepath.Join(tmp, "home-rss"))
	if err != nil {
		return err
	}
	defer e.stop()
	time.Sleep(2 * time.Second)
	var idle []float64
	for i := 0; i < runs; i++ {
		idle = append(idle, rssMiB(e.cmd.Process.Pid))
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("\nengine RSS idle, no apps:            median %6.1f MiB\n", medianF(idle))
	src := filepath.Join(root, "examples", "hello-python")
	t0 := time.Now()
	for i := 1; i <= napps; i++ {
		if _, err := e.deploy(src, fmt.Sprintf("bench-py-%02d", i)); err != nil {
			return err
		}
	}
	fmt.Printf("deployed %d python apps in %.1fs\n", napps, time.Since(t0).Seconds())
	time.Sleep(2 * time.Second)
	var loaded []float64
	for i := 0; i < runs; i++ {
		loaded = append(loaded, rssMiB(e.cmd.Process.Pid))
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("engine RSS with %d apps deployed:    median %6.1f MiB (engine process only; apps run as their own processes)\n", napps, medianF(loaded))
	return nil
}

type engine struct {
	cmd       *exec.Cmd
	home, api string
	bin       string
}

func start(bin, home string) (*engine, error) {
	os.MkdirAll(home, 0o755)
	httpAddr, apiAddr := freeAddr(), freeAddr()
	log, _ := os.Create(filepath.Join(home, "engine.log"))
	cmd := exec.Command(bin, "up", "--home", home, "--http", httpAddr, "--api", apiAddr)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &engine{cmd: cmd, home: home, api: apiAddr, bin: bin}
	for i := 0; i < 300; i++ {
		if resp, err := http.Get("http://" + apiAddr + "/v1/health"); err == nil {
			resp.Body.Close()
			return e, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.stop()
	return nil, fmt.Errorf("engine did not start; see %s", filepath.Join(home, "engine.log"))
}

func (e *engine) deploy(dir, app string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, "deploy", dir, "--app", app)
	cmd.Env = append(os.Environ(), "PIER_API=http://"+e.api, "PIER_HOME="+e.home)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("deploy %s: %v\n%s", app, err, out)
	}
	return time.Since(t0), nil
}

func (e *engine) stop() {
	e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		e.cmd.Process.Kill()
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func rssMiB(pid int) float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianF(f []float64) float64 {
	s := append([]float64(nil), f...)
	sort.Float64s(s)
	return s[len(s)/2]
}
