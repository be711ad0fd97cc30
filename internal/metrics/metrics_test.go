package metrics

import (
	"bytes"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHistoryDownsamples feeds 25 hours of 10 s windows and checks what is
// kept: an hour of 10 s points, 24 h of 1 min points with the minute's sums
// and quantiles, and nothing more.
func TestHistoryDownsamples(t *testing.T) {
	m := New(Options{})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	for i := 0; i < 25*360; i++ {
		now = now.Add(Step)
		// 6 requests a window: one at 100 ms, five at 10 ms; one 500.
		m.Observe("blog", 500, 100, 100*time.Millisecond, "MISS")
		for range 5 {
			m.Observe("blog", 200, 100, 10*time.Millisecond, "HIT")
		}
		m.Collect(now)
	}
	q := m.Query("blog", time.Hour)
	if q.Step != 10 || len(q.Processes) != 1 || len(q.Processes[0].Points) != 360 {
		t.Fatalf("last hour: step %d, %d series, want 10 s and 360 points", q.Step, len(q.Processes))
	}
	p := q.Processes[0].Points[359]
	if p.Requests != 6 || p.Status[4] != 1 || p.Status[1] != 5 || p.Bytes != 600 || p.RPS != 0.6 {
		t.Fatalf("last point %+v", p)
	}
	if p.P50 < 9.9 || p.P50 > 10.1 || p.P99 < 99 || p.P99 > 101 {
		t.Fatalf("last point quantiles p50 %v p99 %v", p.P50, p.P99)
	}
	if p.Cache != [5]uint32{5, 1, 0, 0, 0} || p.CacheHitRatio == nil || *p.CacheHitRatio != 5.0/6 {
		t.Fatalf("last point cache %v, hit ratio %v; want 5 HIT, 1 MISS, 5/6", p.Cache, p.CacheHitRatio)
	}
	if !p.Time.Equal(now) {
		t.Fatalf("last point at %v, want %v", p.Time, now)
	}
	day := m.Query("blog", 24*time.Hour)
	pts := day.Processes[0].Points
	if day.Step != 60 || len(pts) < 1439 || len(pts) > 1440 {
		t.Fatalf("24 h: step %d, %d points, want 60 s and 1440", day.Step, len(pts))
	}
	for _, p := range pts {
		if p.Requests != 36 || p.Status[4] != 6 || p.Cache != [5]uint32{30, 6, 0, 0, 0} {
			t.Fatalf("minute point %+v, want 36 requests, 30 HIT, 6 MISS", p)
		}
		// 6 of 36 at 100 ms: p95 and p99 are 100 ms, p50 10 ms.
		if p.P50 < 9.9 || p.P50 > 10.1 || p.P95 < 99 || p.P95 > 101 {
			t.Fatalf("minute quantiles %+v", p)
		}
	}
	if first := pts[0].Time; first.Before(now.Add(-24 * time.Hour)) {
		t.Fatalf("oldest minute %v is beyond 24 h of %v", first, now)
	}
	if s := m.Summary(); len(s) != 1 || s[0].RPS != 0.6 || s[0].ErrorRate < 0.16 || s[0].ErrorRate > 0.17 ||
		s[0].CacheHitRatio == nil || *s[0].CacheHitRatio != 5.0/6 {
		t.Fatalf("summary %+v", s)
	}
}

// TestProcessSampling samples a real busy process and its child.
func TestProcessSampling(t *testing.T) {
	cmd := exec.Command("sh", "-c", "python3 -c 'x=bytearray(64<<20)\nwhile True: pass' & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	restarts := 0
	m := New(Options{Processes: func() []Process {
		return []Process{{App: "busy", Process: "worker", Instance: "worker.1", PID: cmd.Process.Pid, Restarts: restarts}}
	}})
	now := time.Now()
	m.Collect(now)
	var q AppMetrics
	waitUntil(t, "CPU and memory of the child", func() bool {
		time.Sleep(300 * time.Millisecond)
		now = time.Now()
		restarts = 2
		m.Collect(now)
		q = m.Query("busy", time.Hour)
		return len(q.Instances) == 1 && q.Instances[0].CPU > 0.05 && q.Instances[0].RSS > 60<<20
	})
	pts := q.Processes[0].Points
	last := pts[len(pts)-1]
	if last.Instances != 1 || last.CPU <= 0 || last.RSS < 60<<20 {
		t.Fatalf("point %+v", last)
	}
	var sum uint32
	for _, p := range pts {
		sum += p.Restarts
	}
	if sum != 2 {
		t.Fatalf("restarts %d, want 2", sum)
	}
	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	for _, want := range []string{
		`pier_process_resident_memory_bytes{app="busy",process="worker",instance="worker.1"} `,
		`pier_process_restarts_total{app="busy",process="worker",instance="worker.1"} 2`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("exposition lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("4242 (my (odd) app) S 1 4240 4240 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 1 0 100 12345678 512 18446744073709551615")
	pgrp, ticks, rss, ok := parseStat(line)
	if !ok || pgrp != 4240 || ticks != 300 || rss != 512 {
		t.Fatalf("got %d %d %d %v", pgrp, ticks, rss, ok)
	}
}
