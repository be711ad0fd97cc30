// Command rss measures the memory the metrics store needs for 20 apps
// with 24 h of history: it feeds 8,640 windows of 10 s (traffic on each
// app's web process with cache results, a worker per app, 10 statsd series
// per app, two of them timers, two task queues per app and its error
// events) and reports the Go heap and the process's RSS.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"pier/internal/metrics"
)

func main() {
	apps := flag.Int("apps", 20, "apps")
	hours := flag.Int("hours", 24, "hours of history to simulate")
	flag.Parse()
	procs := make([]metrics.Process, 0, *apps*2)
	for i := range *apps {
		app := "app" + strconv.Itoa(i)
		procs = append(procs,
			metrics.Process{App: app, Process: "web", Instance: "web.1", PID: os.Getpid()},
			metrics.Process{App: app, Process: "worker", Instance: "worker.1", PID: os.Getpid()})
	}
	src := &sources{apps: *apps}
	m := metrics.New(metrics.Options{Processes: func() []metrics.Process { return procs }, Queues: src, Errors: src})
	before := heap()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	windows := *hours * 360
	for w := range windows {
		now = now.Add(metrics.Step)
		for i := range *apps {
			app := "app" + strconv.Itoa(i)
			for r := range 50 {
				m.Observe(app, 200+(r%7)*50, 1500, time.Duration(r+1)*time.Millisecond, [...]string{"HIT", "MISS", ""}[r%3])
			}
			for s := range 10 {
				kind := "c"
				if s < 2 {
					kind = "ms"
				}
				m.AddStatsd(app, []byte("series."+strconv.Itoa(s)+":"+strconv.Itoa(w%100)+"|"+kind+"|#env:prod"))
			}
		}
		src.window = w
		m.Collect(now)
	}
	runtime.GC()
	after := heap()
	runtime.KeepAlive(m)
	fmt.Printf("metrics store, %d apps x (web + worker + 10 statsd series + 2 task queues + error events), %d h of 10 s windows (%d):\n", *apps, *hours, windows)
	fmt.Printf("  Go heap in use: %.1f MB (%.1f MB before feeding)\n", float64(after)/(1<<20), float64(before)/(1<<20))
	fmt.Printf("  process RSS:    %s\n", rss())
	fmt.Printf("  per app:        %.0f KB\n", float64(after-before)/float64(*apps)/1024)
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func rss() string {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

// sources stands in for the tasks service and the error tracker: two
// queues per app whose figures change every window, and error events.
type sources struct {
	apps, window int
}

func (s *sources) QueueSamples(context.Context) ([]metrics.QueueSample, error) {
	out := make([]metrics.QueueSample, 0, 2*s.apps)
	for i := range s.apps {
		app := "app" + strconv.Itoa(i)
		for _, q := range []string{"mail", "reports"} {
			out = append(out, metrics.QueueSample{App: app, Queue: q, Ready: s.window % 50, Delayed: 2, Reserved: 1,
				Dead: s.window / 1000, Enqueued: float64(s.window % 7), Done: float64(s.window % 5), Failed: 0.1})
		}
	}
	return out, nil
}

func (s *sources) ErrorEvents() map[string]int64 {
	out := make(map[string]int64, s.apps)
	for i := range s.apps {
		out["app"+strconv.Itoa(i)] = int64(s.window * (i % 3))
	}
	return out
}
