package cli

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// metricsPoint is the part of a metrics point the CLI prints.
type metricsPoint struct {
	Time      time.Time `json:"time"`
	RPS       float64   `json:"rps"`
	Requests  uint32    `json:"requests"`
	Status    [5]uint32 `json:"status"`
	Bytes     uint64    `json:"bytes"`
	P50       float32   `json:"p50_ms"`
	P95       float32   `json:"p95_ms"`
	P99       float32   `json:"p99_ms"`
	CPU       float32   `json:"cpu"`
	RSS       uint64    `json:"rss"`
	Restarts  uint32    `json:"restarts"`
	Instances uint32    `json:"instances"`
	Cache     [5]uint32 `json:"cache"` // HIT, MISS, STALE, REVALIDATED, BYPASS
}

type appMetrics struct {
	App       string `json:"app"`
	Step      int    `json:"step"`
	Processes []struct {
		Process string         `json:"process"`
		Points  []metricsPoint `json:"points"`
	} `json:"processes"`
	Instances []struct {
		Instance string  `json:"instance"`
		PID      int     `json:"pid"`
		CPU      float64 `json:"cpu"`
		RSS      uint64  `json:"rss"`
		Restarts int     `json:"restarts"`
	} `json:"instances"`
	Statsd []struct {
		Name   string    `json:"name"`
		Type   string    `json:"type"`
		Tags   []string  `json:"tags"`
		Values []float32 `json:"values"`
		P99    []float32 `json:"p99"`
	} `json:"statsd"`
	Queues []struct {
		Queue  string `json:"queue"`
		Points []struct {
			Ready    uint32  `json:"ready"`
			Delayed  uint32  `json:"delayed"`
			Reserved uint32  `json:"reserved"`
			Dead     uint32  `json:"dead"`
			Enqueued float32 `json:"enqueued_per_s"`
			Done     float32 `json:"done_per_s"`
			Failed   float32 `json:"failed_per_s"`
		} `json:"points"`
	} `json:"queues"`
	Errors []struct {
		Events uint32 `json:"events"`
	} `json:"errors"`
}

type appSummary struct {
	App           string   `json:"app"`
	RPS           float64  `json:"rps"`
	P99           float32  `json:"p99_ms"`
	ErrorRate     float64  `json:"error_rate"`
	CacheHitRatio *float64 `json:"cache_hit_ratio"`
	ErrorEvents   float64  `json:"error_events_per_s"`
	TasksDone     float64  `json:"tasks_done_per_s"`
	Queued        uint64   `json:"queued"`
	DeadTasks     uint64   `json:"dead_tasks"`
	CPU           float32  `json:"cpu"`
	RSS           uint64   `json:"rss"`
	Instances     uint32   `json:"instances"`
	Restarts      uint32   `json:"restarts"`
}

func (a *cli) metricsCmd() *cobra.Command {
	var (
		app    string
		since  time.Duration
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "metrics",
		Short: "Print an app's metrics: traffic, latency, CPU, memory, statsd",
		Long: `Metrics sums an app's figures over --since (default 10m) per process type:
requests/s, 5xx share, latency p50/p95/p99 (the worst window), cache hit
ratio (HIT, STALE, REVALIDATED over those and MISS), CPU and memory,
restarts; then each instance's current CPU and memory, each task queue's
depth and rates, the error events per second, and the app's own statsd
metrics. The engine keeps 10 s points for an hour and 1 min points for
24 h; --json prints every point.`,
		Example: "  pier metrics\n  pier metrics --app blog --since 1h\n  pier metrics --since 24h --json",
		Args:    maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name, err := a.appName(app)
			if err != nil {
				return err
			}
			var m appMetrics
			q := url.Values{"since": {since.String()}}
			if err := a.metricsGet(cmd.Context(), "/v1/apps/"+url.PathEscape(name)+"/metrics?"+q.Encode(), &m); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(m)
			}
			a.printMetrics(m, since)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&app, "app", "", "app name (default: the name in ./pier.yaml)")
	f.DurationVar(&since, "since", 10*time.Minute, "how far back (up to 24h)")
	f.BoolVar(&asJSON, "json", false, "print JSON, with every point")
	return cmd
}

func (a *cli) printMetrics(m appMetrics, since time.Duration) {
	fmt.Fprintf(a.stdout, "%s, last %s (%d s points)\n\n", m.App, since, m.Step)
	tw := table(a.stdout)
	fmt.Fprintln(tw, "PROCESS\tREQ/S\t5XX\tP50\tP95\tP99\tCACHE\tCPU\tMEMORY\tRESTARTS")
	for _, p := range m.Processes {
		var reqs, errs, restarts, hits, lookups uint32
		var p50, p95, p99, cpu float32
		var rss uint64
		for _, pt := range p.Points {
			reqs += pt.Requests
			errs += pt.Status[4]
			restarts += pt.Restarts
			p50, p95, p99 = max(p50, pt.P50), max(p95, pt.P95), max(p99, pt.P99)
			h := pt.Cache[0] + pt.Cache[2] + pt.Cache[3]
			hits, lookups = hits+h, lookups+h+pt.Cache[1]
		}
		if n := len(p.Points); n > 0 {
			cpu, rss = p.Points[n-1].CPU, p.Points[n-1].RSS
		}
		rps := float64(reqs) / math.Max(1, float64(len(p.Points)*m.Step))
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%.0f%%\t%s\t%d\n", p.Process, rps, percent(errs, reqs),
			ms(p50), ms(p95), ms(p99), percent(hits, lookups), cpu*100, bytesHuman(rss), restarts)
	}
	tw.Flush()
	if len(m.Queues) > 0 {
		fmt.Fprintln(a.stdout)
		tw = table(a.stdout)
		fmt.Fprintln(tw, "QUEUE\tREADY\tDELAYED\tRESERVED\tDEAD\tENQUEUED/S\tDONE/S\tFAILED/S")
		for _, q := range m.Queues {
			if n := len(q.Points); n > 0 {
				p := q.Points[n-1]
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\n", q.Queue, p.Ready, p.Delayed, p.Reserved, p.Dead,
					p.Enqueued, p.Done, p.Failed)
			}
		}
		tw.Flush()
	}
	if len(m.Errors) > 0 {
		var events uint64
		for _, p := range m.Errors {
			events += uint64(p.Events)
		}
		fmt.Fprintf(a.stdout, "\nError events: %d (%.2f/s)\n", events, float64(events)/math.Max(1, float64(len(m.Errors)*m.Step)))
	}
	if len(m.Instances) > 0 {
		fmt.Fprintln(a.stdout)
		tw = table(a.stdout)
		fmt.Fprintln(tw, "INSTANCE\tPID\tCPU\tMEMORY\tRESTARTS")
		for _, in := range m.Instances {
			fmt.Fprintf(tw, "%s\t%d\t%.0f%%\t%s\t%d\n", in.Instance, in.PID, in.CPU*100, bytesHuman(in.RSS), in.Restarts)
		}
		tw.Flush()
	}
	if len(m.Statsd) > 0 {
		fmt.Fprintln(a.stdout)
		tw = table(a.stdout)
		fmt.Fprintln(tw, "STATSD\tTYPE\tTAGS\tLAST")
		for _, s := range m.Statsd {
			last := "-"
			if n := len(s.Values); n > 0 {
				last = fmt.Sprintf("%g", s.Values[n-1])
				if s.Type == "timer" && len(s.P99) == n {
					last += fmt.Sprintf(" (p99 %g)", s.P99[n-1])
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Type, orDash(strings.Join(s.Tags, ",")), last)
		}
		tw.Flush()
	}
}

func (a *cli) topCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "top",
		Short:   "Every app's last minute: requests/s, p99, 5xx, cache hits, error events, tasks, CPU, memory",
		Example: "  pier top\n  pier top --json",
		Args:    maxArgs(0),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			var s []appSummary
			if err := a.metricsGet(cmd.Context(), "/v1/metrics", &s); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(s)
			}
			if len(s) == 0 {
				fmt.Fprintln(a.stdout, "No metrics yet: the engine closes a window every 10 s.")
				return nil
			}
			tw := table(a.stdout)
			fmt.Fprintln(tw, "APP\tREQ/S\tP99\t5XX\tCACHE\tERRORS/S\tTASKS/S\tQUEUED\tDEAD\tCPU\tMEMORY\tINSTANCES\tRESTARTS")
			for _, x := range s {
				cache := "-"
				if x.CacheHitRatio != nil {
					cache = fmt.Sprintf("%.1f%%", *x.CacheHitRatio*100)
				}
				fmt.Fprintf(tw, "%s\t%.2f\t%s\t%.1f%%\t%s\t%.2f\t%.2f\t%d\t%d\t%.0f%%\t%s\t%d\t%d\n", x.App, x.RPS, ms(x.P99),
					x.ErrorRate*100, cache, x.ErrorEvents, x.TasksDone, x.Queued, x.DeadTasks,
					x.CPU*100, bytesHuman(x.RSS), x.Instances, x.Restarts)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func ms(v float32) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", v)
}

func percent(part, whole uint32) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

func bytesHuman(b uint64) string {
	switch {
	case b == 0:
		return "-"
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.0fK", float64(b)/(1<<10))
}

// metricsGet decodes a GET of path (with its query) on the engine API.
func (a *cli) metricsGet(ctx context.Context, path string, out any) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	return c.Call(ctx, http.MethodGet, path, nil, "", out)
}
