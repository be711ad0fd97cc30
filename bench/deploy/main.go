// Command deploy measures what issue #2 asks of the engine core: deploy
// time of the Go and Python examples, cold (an empty build cache) and
// cached (same dependencies, changed code), the engine's idle RSS, and its
// RSS with 20 apps deployed. It starts the real pier binary on loopback
// ports with a temporary home and prints medians.
//
//	go run ./bench/deploy [-runs 5] [-apps 20]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"pier/bench/internal/pierbench"
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
	bin, err := pierbench.Build(tmp)
	if err != nil {
		return err
	}
	fmt.Printf("pier engine-core bench — %s, %d cores (noisy shared machine), runs=%d\n\n", time.Now().Format(time.RFC3339), 2, runs)

	for _, ex := range []string{"hello-go", "hello-python"} {
		var cold, cached []time.Duration
		for i := 0; i < runs; i++ {
			e, err := pierbench.Start(bin, filepath.Join(tmp, fmt.Sprintf("home-%s-%d", ex, i)))
			if err != nil {
				return err
			}
			src := filepath.Join(root, "examples", ex)
			d, err := e.Deploy(src, ex)
			if err != nil {
				e.Stop()
				return err
			}
			cold = append(cold, d)
			// Cached: same dependencies, a changed file.
			work := filepath.Join(tmp, fmt.Sprintf("src-%s-%d", ex, i))
			os.CopyFS(work, os.DirFS(src))
			os.WriteFile(filepath.Join(work, "bench-change.txt"), []byte(time.Now().String()), 0o644)
			d, err = e.Deploy(work, ex)
			e.Stop()
			if err != nil {
				return err
			}
			cached = append(cached, d)
		}
		fmt.Printf("deploy %-13s cold   median %7.2fs  (min %.2fs, max %.2fs)\n", ex, pierbench.Median(cold).Seconds(), slices.Min(cold).Seconds(), slices.Max(cold).Seconds())
		fmt.Printf("deploy %-13s cached median %7.2fs  (min %.2fs, max %.2fs)\n", ex, pierbench.Median(cached).Seconds(), slices.Min(cached).Seconds(), slices.Max(cached).Seconds())
	}

	e, err := pierbench.Start(bin, filepath.Join(tmp, "home-rss"))
	if err != nil {
		return err
	}
	defer e.Stop()
	time.Sleep(2 * time.Second)
	var idle []float64
	for i := 0; i < runs; i++ {
		idle = append(idle, e.RSSMiB())
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("\nengine RSS idle, no apps:            median %6.1f MiB\n", pierbench.Median(idle))
	src := filepath.Join(root, "examples", "hello-python")
	t0 := time.Now()
	for i := 1; i <= napps; i++ {
		if _, err := e.Deploy(src, fmt.Sprintf("bench-py-%02d", i)); err != nil {
			return err
		}
	}
	fmt.Printf("deployed %d python apps in %.1fs\n", napps, time.Since(t0).Seconds())
	time.Sleep(2 * time.Second)
	var loaded []float64
	for i := 0; i < runs; i++ {
		loaded = append(loaded, e.RSSMiB())
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("engine RSS with %d apps deployed:    median %6.1f MiB (engine process only; apps run as their own processes)\n", napps, pierbench.Median(loaded))
	return nil
}
