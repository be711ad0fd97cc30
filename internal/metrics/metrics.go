// Package metrics measures pier's apps: what the gateway answered for each
// app (requests, status classes, latency histogram, bytes), what each
// instance costs (CPU and RSS read from /proc, restarts), and what app code
// sends itself over statsd (counters, gauges, timers, sets, with sample
// rates and DogStatsD tags).
//
// The gateway's hook, Observe, is lock-free and allocation-free: per-app
// counters and a log-linear histogram of atomics, found through a map that
// is replaced (copy on write) only when an app appears. Everything else
// runs in one collector goroutine every 10 s: it takes deltas of the
// counters, samples /proc, and appends a Point per app and process type to
// an in-memory history of 10 s points for the last hour and 1 min points
// for 24 h, so memory is bounded by the number of apps, not by traffic or
// time. The same counters are exposed in the Prometheus text format
// (WritePrometheus) for long-term storage elsewhere.
package metrics

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Process is one running instance, as the collector samples it.
type Process struct {
	App, Process, Instance string
	PID                    int // also its process group
	Restarts               int // since the instance was created
}

// Options configure a Metrics. The zero value works: no process sampling.
type Options struct {
	// Logger receives the collector's logs. If nil, they are discarded.
	Logger *slog.Logger
	// Processes lists the running instances to sample every 10 s. If nil,
	// no CPU, memory or restart figures are kept.
	Processes func() []Process
	// ProcRoot is where /proc is mounted. If "", /proc.
	ProcRoot string
	// Queues, when set, gives every task queue's depth and rates each
	// window. nil = no queue figures.
	Queues QueueSource
	// Errors, when set, gives each app's error event count each window.
	// nil = no error rates.
	Errors ErrorSource
	// MaxStatsdSeries bounds the statsd series kept per app; further new
	// series are dropped and counted. If 0, 200.
	MaxStatsdSeries int
}

// Metrics holds every app's live counters and history. Create it with New;
// its methods are safe for concurrent use.
type Metrics struct {
	log       *slog.Logger
	processes func() []Process
	procRoot  string
	queueSrc  QueueSource // nil = none
	errorSrc  ErrorSource // nil = none

	// apps maps an app to its gateway counters; replaced, never changed,
	// under appsMu, so Observe reads it without a lock.
	apps   atomic.Pointer[map[string]*httpStats]
	appsMu sync.Mutex // serializes replacements of apps

	statsd *statsdStore

	// histMu guards the fields below, written by Collect only.
	histMu    sync.RWMutex
	series    map[seriesKey]*series
	instances map[string]*instState // by app/instance
	src       sources               // queue and error history
	lastTick  time.Time

	// forgets counts Forget calls; forgotten maps an app to the count at
	// its Forget (under histMu). A Collect that read its figures before an
	// app's Forget drops that app's, so a destroyed app does not come back.
	forgets   atomic.Uint64
	forgotten map[string]uint64
}

type seriesKey struct{ app, process string }

// httpStats are one app's gateway counters. The atomics only grow; the
// collector keeps the values it last read (prev*) to take deltas.
type httpStats struct {
	// answers counts requests by status class (0: outside 100-599; 1..5:
	// 1xx..5xx) and cache result (by cacheIndex): one atomic add per
	// request for both, the totals of each are sums at read time.
	answers [6][numCache]atomic.Uint64
	bytes   atomic.Uint64
	lat     Histogram
	prom    [len(promBounds) + 1]atomic.Uint64 // per classic bucket, last = +Inf

	// owned by Collect (under histMu)
	prev       Dist
	cur        Dist
	delta      Dist
	prevStatus [6]uint64
	prevCache  [numCache]uint64
	prevBytes  uint64
}

// instState is what Collect keeps per instance between two samples.
type instState struct {
	p        Process
	ticks    uint64
	at       time.Time
	cpu      float64 // cores, last sample
	rss      uint64
	restarts int
	seen     bool // sampled at least once
	tick     time.Time
}

// New returns a Metrics; Start runs its collector.
func New(opts Options) *Metrics {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root := opts.ProcRoot
	if root == "" {
		root = "/proc"
	}
	maxSeries := opts.MaxStatsdSeries
	if maxSeries <= 0 {
		maxSeries = 200
	}
	m := &Metrics{
		log:       log,
		processes: opts.Processes,
		procRoot:  root,
		queueSrc:  opts.Queues,
		errorSrc:  opts.Errors,
		src:       newSources(),
		statsd:    newStatsdStore(maxSeries),
		series:    make(map[seriesKey]*series),
		instances: make(map[string]*instState),
		forgotten: make(map[string]uint64),
	}
	empty := map[string]*httpStats{}
	m.apps.Store(&empty)
	return m
}

// Start runs the collector every 10 s, on the wall clock's multiples of
// 10 s, until ctx ends. It first reads the error counts as a baseline, so
// the first window counts the events since Start and none from before.
func (m *Metrics) Start(ctx context.Context) {
	if m.errorSrc != nil {
		errs := m.errorSrc.ErrorEvents()
		m.histMu.Lock()
		m.src.baseline(errs)
		m.histMu.Unlock()
	}
	go func() {
		defer func() {
			if r := recover(); r != nil {
				m.log.Error("metrics collector panicked", "panic", r, "stack", string(debug.Stack()))
			}
		}()
		for {
			now := time.Now()
			next := now.Truncate(Step).Add(Step)
			t := time.NewTimer(next.Sub(now))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case at := <-t.C:
				m.Collect(at.Truncate(Step))
			}
		}
	}()
}

// Observe records one request the gateway answered for app: its status,
// the response bytes, how long it took and the cache's result (X-Cache:
// HIT, MISS, STALE, REVALIDATED, BYPASS, or "" when no cache answered). It
// is the gateway's hook: no lock, no allocation once the app has been seen.
func (m *Metrics) Observe(app string, status int, bytes int64, d time.Duration, cache string) {
	s := (*m.apps.Load())[app]
	if s == nil {
		s = m.addApp(app)
	}
	class := 0
	if status >= 100 && status < 600 {
		class = status / 100
	}
	s.answers[class][cacheIndex(cache)].Add(1)
	if bytes > 0 {
		s.bytes.Add(uint64(bytes))
	}
	s.lat.Observe(d)
	s.prom[promBucket(d)].Add(1)
}

// totals sums the answers by status class and by cache result.
func (s *httpStats) totals() (status [6]uint64, cache [numCache]uint64) {
	for i := range s.answers {
		for j := range s.answers[i] {
			v := s.answers[i][j].Load()
			status[i] += v
			cache[j] += v
		}
	}
	return status, cache
}

func (m *Metrics) addApp(app string) *httpStats {
	m.appsMu.Lock()
	defer m.appsMu.Unlock()
	old := *m.apps.Load()
	if s := old[app]; s != nil {
		return s
	}
	next := make(map[string]*httpStats, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	s := &httpStats{}
	next[app] = s
	m.apps.Store(&next)
	return s
}

// Forget drops an app's counters and history (the app was destroyed).
func (m *Metrics) Forget(app string) {
	m.appsMu.Lock()
	old := *m.apps.Load()
	if _, ok := old[app]; ok {
		next := make(map[string]*httpStats, len(old))
		for k, v := range old {
			if k != app {
				next[k] = v
			}
		}
		m.apps.Store(&next)
	}
	m.appsMu.Unlock()
	m.histMu.Lock()
	m.forgotten[app] = m.forgets.Add(1)
	for k := range m.series {
		if k.app == app {
			delete(m.series, k)
		}
	}
	m.src.forget(app)
	m.histMu.Unlock()
	m.statsd.forget(app)
}

// Collect closes the window ending at now: it reads every counter, samples
// the processes and appends a point to each series. Start calls it every
// 10 s; tests and benchmarks call it to simulate time.
func (m *Metrics) Collect(now time.Time) {
	gen := m.forgets.Load() // before any reading
	var procs []Process
	if m.processes != nil {
		procs = m.processes()
	}
	want := make(map[int]bool, len(procs))
	for _, p := range procs {
		if p.PID > 0 {
			want[p.PID] = true
		}
	}
	usage := readProcGroups(m.procRoot, want)
	queues, queuesOK, errEvents := m.readSources()
	apps := *m.apps.Load()

	m.histMu.Lock()
	defer m.histMu.Unlock()
	stale := func(app string) bool { g, ok := m.forgotten[app]; return ok && g > gen }
	defer func() {
		for app, g := range m.forgotten {
			if g <= gen { // later Collects read after this Forget
				delete(m.forgotten, app)
			}
		}
	}()
	m.lastTick = now
	points := make(map[seriesKey]*Point)
	point := func(k seriesKey) *Point {
		p := points[k]
		if p == nil {
			p = &Point{T: now.Unix()}
			points[k] = p
		}
		return p
	}
	lats := make(map[seriesKey]*Dist)
	for app, s := range apps {
		if stale(app) {
			continue
		}
		s.lat.Load(&s.cur)
		s.delta.Delta(&s.cur, &s.prev)
		s.prev, s.cur = s.cur, s.prev
		k := seriesKey{app, "web"}
		p := point(k)
		status, cache := s.totals()
		for i, v := range status {
			d := uint32(v - s.prevStatus[i])
			s.prevStatus[i] = v
			p.Requests += d
			if i > 0 {
				p.Status[i-1] = d
			}
		}
		for i := 1; i < numCache; i++ { // cacheNone is not kept per point
			v := cache[i]
			p.Cache[i-1] = uint32(v - s.prevCache[i])
			s.prevCache[i] = v
		}
		b := s.bytes.Load()
		p.Bytes = b - s.prevBytes
		s.prevBytes = b
		p.P50, p.P95, p.P99, p.Mean = quantilesMS(&s.delta)
		lats[k] = &s.delta
	}
	for _, pr := range procs {
		if stale(pr.App) {
			continue
		}
		id := pr.App + "/" + pr.Instance
		st := m.instances[id]
		if st == nil {
			st = &instState{p: pr}
			m.instances[id] = st
		}
		if st.p.PID != pr.PID {
			st.seen = false // a new process: no CPU baseline yet
		}
		u, alive := usage[pr.PID]
		if alive {
			if st.seen && u.ticks >= st.ticks {
				secs := now.Sub(st.at).Seconds()
				if secs > 0 {
					st.cpu = float64(u.ticks-st.ticks) / clockTicks / secs
				}
			}
			st.ticks, st.at, st.rss, st.seen = u.ticks, now, u.rss, true
		} else {
			st.cpu, st.rss = 0, 0
		}
		p := point(seriesKey{pr.App, pr.Process})
		if pr.Restarts > st.restarts {
			p.Restarts += uint32(pr.Restarts - st.restarts)
		}
		st.p, st.restarts, st.tick = pr, pr.Restarts, now
		p.CPU += float32(st.cpu)
		p.RSS += st.rss
		p.Instances++
	}
	for id, st := range m.instances {
		if !st.tick.Equal(now) {
			delete(m.instances, id)
		}
	}
	for k, p := range points {
		s := m.series[k]
		if s == nil {
			s = newSeries()
			m.series[k] = s
		}
		s.add(*p, lats[k])
	}
	// Series with no point this window (a process type scaled to zero,
	// an app gone) still get an empty one, so gaps read as zero.
	for k, s := range m.series {
		if points[k] == nil {
			s.add(Point{T: now.Unix()}, nil)
		}
	}
	m.src.collect(now.Unix(), queues, queuesOK, errEvents, stale)
	m.statsd.collect(now)
}
