package metrics

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHitRatio(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache [5]uint32 // HIT, MISS, STALE, REVALIDATED, BYPASS
		want  float64   // -1: no lookup
	}{
		{"nothing", [5]uint32{}, -1},
		{"only bypass", [5]uint32{0, 0, 0, 0, 9}, -1},
		{"all hits", [5]uint32{4, 0, 0, 0, 0}, 1},
		{"all misses", [5]uint32{0, 4, 0, 0, 3}, 0},
		{"stale and revalidated are hits", [5]uint32{1, 2, 1, 0, 5}, 0.5},
		{"revalidated", [5]uint32{0, 3, 0, 1, 0}, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hitRatio(tc.cache)
			switch {
			case tc.want < 0 && got != nil:
				t.Errorf("got %v, want none", *got)
			case tc.want >= 0 && (got == nil || *got != tc.want):
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestObserveCountsCacheResults(t *testing.T) {
	m := New(Options{})
	for _, v := range []string{"HIT", "HIT", "MISS", "STALE", "REVALIDATED", "BYPASS", "", "hit", "HIT from upstream"} {
		m.Observe("blog", 200, 1, time.Millisecond, v)
	}
	m.Collect(time.Now())
	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	for _, want := range []string{
		`pier_http_cache_requests_total{app="blog",result="hit"} 2`,
		`pier_http_cache_requests_total{app="blog",result="miss"} 1`,
		`pier_http_cache_requests_total{app="blog",result="stale"} 1`,
		`pier_http_cache_requests_total{app="blog",result="revalidated"} 1`,
		`pier_http_cache_requests_total{app="blog",result="bypass"} 1`,
		`pier_http_cache_requests_total{app="blog",result="none"} 3`, // unknown values are not results
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	p := m.Query("blog", time.Hour).Processes[0].Points[0]
	if p.Cache != [5]uint32{2, 1, 1, 1, 1} || p.CacheHitRatio == nil || *p.CacheHitRatio != 0.8 {
		t.Errorf("point cache %v ratio %v, want [2 1 1 1 1] and 0.8", p.Cache, p.CacheHitRatio)
	}
	if t.Failed() {
		t.Log(buf.String())
	}
}

// scriptedSources replays queue and error figures window by window, as the
// tasks service and the error tracker would report them.
type scriptedSources struct {
	mu     sync.Mutex
	queues []QueueSample
	qerr   error
	errors map[string]int64
}

func (s *scriptedSources) QueueSamples(ctx context.Context) ([]QueueSample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]QueueSample(nil), s.queues...), s.qerr
}

func (s *scriptedSources) ErrorEvents() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.errors))
	for k, v := range s.errors {
		out[k] = v
	}
	return out
}

// TestQueuesAndErrors feeds two hours of queue and error figures and reads
// them back through Query, Summary and the Prometheus exposition.
func TestQueuesAndErrors(t *testing.T) {
	src := &scriptedSources{errors: map[string]int64{"blog": 1000}} // events from before the engine started
	m := New(Options{Queues: src, Errors: src})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	for i := range 2 * 360 {
		now = now.Add(Step)
		src.mu.Lock()
		// Depth grows by one a window; rates alternate 1 and 3 per second.
		rate := float64(1 + 2*(i%2))
		src.queues = []QueueSample{
			{App: "blog", Queue: "mail", Ready: i, Delayed: 2, Reserved: 1, Dead: 4, Enqueued: rate, Done: rate / 2, Failed: 0.5},
			{App: "shop", Queue: "orders", Ready: 7},
		}
		if i > 0 {
			src.errors["blog"] += 20 // 2 events a second
		}
		src.mu.Unlock()
		m.Collect(now)
	}
	q := m.Query("blog", 10*time.Minute)
	if len(q.Queues) != 1 || q.Queues[0].Queue != "mail" || len(q.Queues[0].Points) != 60 {
		t.Fatalf("queues %+v, want mail with 60 points", q.Queues)
	}
	last := q.Queues[0].Points[59]
	want := JSONQueuePoint{Time: now, Ready: 719, Delayed: 2, Reserved: 1, Dead: 4, Enqueued: 3, Done: 1.5, Failed: 0.5}
	if last != want {
		t.Errorf("last queue point %+v, want %+v", last, want)
	}
	if len(q.Errors) != 60 || q.Errors[59].Events != 20 || q.Errors[59].PerSec != 2 {
		t.Errorf("error points: %d, last %+v; want 60, 20 events, 2/s", len(q.Errors), q.Errors[len(q.Errors)-1])
	}
	day := m.Query("blog", 2*time.Hour)
	minutes := day.Queues[0].Points
	if day.Step != 60 || len(minutes) < 60 {
		t.Fatalf("2 h: step %d, %d queue points", day.Step, len(minutes))
	}
	mp := minutes[len(minutes)-1]
	// A minute is 6 windows: the last window's depth, the mean rate. The
	// minute being built is not among them.
	if mp.Ready != 713 || mp.Enqueued != 2 || mp.Done != 1 || mp.Failed != 0.5 || !mp.Time.Equal(now.Add(-time.Minute)) {
		t.Errorf("minute queue point %+v, want ready 713, 2 enqueued/s, 1 done/s at %v", mp, now.Add(-time.Minute))
	}
	if ep := day.Errors[len(day.Errors)-1]; ep.Events != 120 || ep.PerSec != 2 {
		t.Errorf("minute error point %+v, want 120 events, 2/s", ep)
	}
	if first := day.Errors[0]; first.Events != 100 {
		t.Errorf("first minute %+v, want 100 events: the count from before the engine started is a baseline", first)
	}

	sums := m.Summary()
	if len(sums) != 2 || sums[0].App != "blog" || sums[1].App != "shop" {
		t.Fatalf("summary %+v", sums)
	}
	b := sums[0]
	if b.ErrorEvents != 2 || b.TasksEnqueued != 3 || b.TasksDone != 1.5 || b.TasksFailed != 0.5 ||
		b.Queued != 719+2+1 || b.DeadTasks != 4 || b.CacheHitRatio != nil || b.RPS != 0 {
		t.Errorf("blog summary %+v", b)
	}
	if sums[1].Queued != 7 || sums[1].ErrorEvents != 0 {
		t.Errorf("shop summary %+v", sums[1])
	}

	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	for _, w := range []string{
		`pier_task_queue_tasks{app="blog",queue="mail",state="ready"} 719`,
		`pier_task_queue_tasks{app="blog",queue="mail",state="dead"} 4`,
		`pier_task_queue_tasks{app="shop",queue="orders",state="ready"} 7`,
		`pier_task_events_per_second{app="blog",queue="mail",event="done"} 1.5`,
		`pier_error_events_total{app="blog"} 14380`, // 719 windows of 20
	} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("exposition lacks %s", w)
		}
	}

	// A queue source that fails leaves a gap, not a zero; an error count
	// that falls (issues gone by retention) is a new baseline.
	src.mu.Lock()
	src.qerr = errors.New("store unavailable")
	src.errors["blog"] = 5
	src.mu.Unlock()
	now = now.Add(Step)
	m.Collect(now)
	src.mu.Lock()
	src.qerr = nil
	src.errors["blog"] = 8
	src.errors["shop"] = 4      // its first events: all new
	src.queues = src.queues[:1] // shop's queue is gone
	src.mu.Unlock()
	now = now.Add(Step)
	m.Collect(now)
	q = m.Query("blog", time.Minute)
	pts := q.Queues[0].Points
	if n := len(pts); n != 5 || !pts[n-1].Time.Equal(now) || pts[n-2].Time.Equal(now.Add(-Step)) {
		t.Errorf("queue points around a failed read: %+v", pts)
	}
	if n := len(q.Errors); q.Errors[n-2].Events != 0 || q.Errors[n-1].Events != 3 {
		t.Errorf("error points around a falling count: %+v", q.Errors[n-2:])
	}
	s := m.Query("shop", time.Hour)
	if len(s.Queues) != 0 {
		t.Errorf("shop's queue is gone but still has points: %+v", s.Queues)
	}
	if len(s.Errors) != 1 || s.Errors[0].Events != 4 {
		t.Errorf("shop's first error points %+v, want one with 4 events", s.Errors)
	}

	m.Forget("blog")
	if q := m.Query("blog", time.Hour); len(q.Queues) != 0 || len(q.Errors) != 0 {
		t.Errorf("after Forget: %+v %+v", q.Queues, q.Errors)
	}
	buf.Reset()
	m.WritePrometheus(&buf)
	if strings.Contains(buf.String(), `app="blog"`) {
		t.Errorf("after Forget the exposition still has blog:\n%s", buf.String())
	}
}

// TestErrorBaselineAtStart checks that Start reads the counts from before
// it as a baseline, and that the first window counts what came after.
func TestErrorBaselineAtStart(t *testing.T) {
	src := &scriptedSources{errors: map[string]int64{"blog": 1000}}
	m := New(Options{Errors: src})
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	cancel() // the baseline is taken; this test collects by itself
	src.mu.Lock()
	src.errors["blog"] = 1002
	src.errors["shop"] = 3
	src.mu.Unlock()
	m.Collect(time.Now())
	for app, want := range map[string]uint32{"blog": 2, "shop": 3} {
		if q := m.Query(app, time.Hour); len(q.Errors) != 1 || q.Errors[0].Events != want {
			t.Errorf("%s: error points %+v, want one with %d events", app, q.Errors, want)
		}
	}
}

// forgetting is a queue source that destroys an app while the collector
// reads: the engine's destroy can run at any point of a window.
type forgetting struct {
	m   *Metrics
	app string
}

func (f *forgetting) QueueSamples(context.Context) ([]QueueSample, error) {
	f.m.Forget(f.app)
	return []QueueSample{{App: f.app, Queue: "mail", Ready: 1}, {App: "shop", Queue: "orders", Ready: 2}}, nil
}

func (f *forgetting) ErrorEvents() map[string]int64 { return map[string]int64{f.app: 5, "shop": 1} }

// TestForgetDuringCollect destroys an app after the collector read its
// figures: they must not bring it back.
func TestForgetDuringCollect(t *testing.T) {
	f := &forgetting{app: "blog"}
	m := New(Options{Queues: f, Errors: f, Processes: func() []Process {
		return []Process{{App: "blog", Process: "web", Instance: "web.1"}, {App: "shop", Process: "web", Instance: "web.1"}}
	}})
	f.m = m
	m.Observe("blog", 200, 1, time.Millisecond, "HIT")
	m.Observe("shop", 200, 1, time.Millisecond, "HIT")
	m.Collect(time.Now())
	if q := m.Query("blog", time.Hour); len(q.Processes) != 0 || len(q.Queues) != 0 || len(q.Errors) != 0 || len(q.Instances) != 0 {
		t.Errorf("the forgotten app came back: %+v", q)
	}
	if s := m.Summary(); len(s) != 1 || s[0].App != "shop" {
		t.Errorf("summary %+v, want shop only", s)
	}
	// The app may come back for real: a new app of the same name.
	f.app = "other"
	m.Observe("blog", 200, 1, time.Millisecond, "MISS")
	m.Collect(time.Now().Add(Step))
	if q := m.Query("blog", time.Hour); len(q.Processes) != 1 || len(q.Processes[0].Points) != 1 || len(q.Instances) != 1 {
		t.Errorf("the new app of the same name: %+v", q)
	}
	if q := m.Query("other", time.Hour); len(q.Queues) != 0 || len(q.Errors) != 0 {
		t.Errorf("the app forgotten during the second window came back: %+v", q)
	}
}
