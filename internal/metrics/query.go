package metrics

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// AppMetrics is an app's history as the API returns it.
type AppMetrics struct {
	App       string           `json:"app"`
	Step      int              `json:"step"` // seconds between points
	Processes []ProcessSeries  `json:"processes"`
	Instances []InstanceSample `json:"instances"`
	Statsd    []StatsdSeries   `json:"statsd"`
	Queues    []QueueSeries    `json:"queues"`
	Errors    []JSONErrorPoint `json:"errors"` // events the error tracker took
}

// QueueSeries is one task queue's points.
type QueueSeries struct {
	Queue  string           `json:"queue"`
	Points []JSONQueuePoint `json:"points"`
}

// JSONQueuePoint is a QueuePoint for people and scripts.
type JSONQueuePoint struct {
	Time     time.Time `json:"time"`
	Ready    uint32    `json:"ready"`
	Delayed  uint32    `json:"delayed"`
	Reserved uint32    `json:"reserved"`
	Dead     uint32    `json:"dead"`
	Enqueued float32   `json:"enqueued_per_s"`
	Done     float32   `json:"done_per_s"`
	Failed   float32   `json:"failed_per_s"`
}

// JSONErrorPoint is an ErrorPoint for people and scripts.
type JSONErrorPoint struct {
	Time   time.Time `json:"time"`
	Events uint32    `json:"events"`
	PerSec float64   `json:"per_s"`
}

// ProcessSeries is one process type's points. HTTP figures are on "web".
type ProcessSeries struct {
	Process string      `json:"process"`
	Points  []JSONPoint `json:"points"`
}

// JSONPoint is a Point for people and scripts.
type JSONPoint struct {
	Time      time.Time `json:"time"`
	RPS       float64   `json:"rps"`
	Requests  uint32    `json:"requests"`
	Status    [5]uint32 `json:"status"` // 1xx .. 5xx
	Bytes     uint64    `json:"bytes"`
	P50       float32   `json:"p50_ms"`
	P95       float32   `json:"p95_ms"`
	P99       float32   `json:"p99_ms"`
	Mean      float32   `json:"mean_ms"`
	CPU       float32   `json:"cpu"`
	RSS       uint64    `json:"rss"`
	Restarts  uint32    `json:"restarts"`
	Instances uint32    `json:"instances"`
	// Cache results (X-Cache): HIT, MISS, STALE, REVALIDATED, BYPASS.
	Cache [5]uint32 `json:"cache"`
	// CacheHitRatio is the share of cache lookups answered from the cache
	// (HIT, STALE, REVALIDATED over those and MISS); null with no lookup.
	CacheHitRatio *float64 `json:"cache_hit_ratio"`
}

// hitRatio is the share of lookups the cache answered: HIT, STALE and
// REVALIDATED over those and MISS (BYPASS was never a lookup); nil when
// there was no lookup.
func hitRatio(c [5]uint32) *float64 {
	hits := uint64(c[0]) + uint64(c[2]) + uint64(c[3])
	lookups := hits + uint64(c[1])
	if lookups == 0 {
		return nil
	}
	r := float64(hits) / float64(lookups)
	return &r
}

// InstanceSample is an instance's latest CPU and memory.
type InstanceSample struct {
	Instance string  `json:"instance"`
	Process  string  `json:"process"`
	PID      int     `json:"pid"`
	CPU      float64 `json:"cpu"`
	RSS      uint64  `json:"rss"`
	Restarts int     `json:"restarts"`
}

// StatsdSeries is one statsd metric's points: Values are counter sums per
// window, gauge values, set sizes or timer counts; timers add p50/p95/p99
// (the value's unit, normally ms).
type StatsdSeries struct {
	Name   string      `json:"name"`
	Type   string      `json:"type"`
	Tags   []string    `json:"tags,omitempty"`
	Times  []time.Time `json:"times"`
	Values []float32   `json:"values"`
	P50    []float32   `json:"p50,omitempty"`
	P95    []float32   `json:"p95,omitempty"`
	P99    []float32   `json:"p99,omitempty"`
}

// Query returns app's points of the last `since` (10 s points up to an
// hour, 1 min points beyond, up to 24 h).
func (m *Metrics) Query(app string, since time.Duration) AppMetrics {
	since = min(max(since, Step), Retention)
	out := AppMetrics{App: app, Processes: []ProcessSeries{}, Instances: []InstanceSample{}, Statsd: []StatsdSeries{},
		Queues: []QueueSeries{}, Errors: []JSONErrorPoint{}}
	m.histMu.RLock()
	now := m.lastTick.Unix()
	from := m.lastTick.Add(-since).Unix()
	for _, k := range slices.SortedFunc(maps.Keys(m.series), func(a, b seriesKey) int {
		return strings.Compare(a.app+"\x00"+a.process, b.app+"\x00"+b.process)
	}) {
		if k.app != app {
			continue
		}
		pts, step := m.series[k].points(from, now)
		out.Step = int(step / time.Second)
		ps := ProcessSeries{Process: k.process, Points: make([]JSONPoint, len(pts))}
		for i, p := range pts {
			ps.Points[i] = JSONPoint{
				Time: time.Unix(p.T, 0).UTC(), RPS: float64(p.Requests) / step.Seconds(), Requests: p.Requests,
				Status: p.Status, Bytes: p.Bytes, P50: p.P50, P95: p.P95, P99: p.P99, Mean: p.Mean,
				CPU: p.CPU, RSS: p.RSS, Restarts: p.Restarts, Instances: p.Instances,
				Cache: p.Cache, CacheHitRatio: hitRatio(p.Cache),
			}
		}
		out.Processes = append(out.Processes, ps)
	}
	step := Step
	if now-from > int64(FineSpan/time.Second) {
		step = CoarseStep
	}
	for _, k := range slices.SortedFunc(maps.Keys(m.src.queues), func(a, b queueKey) int {
		return strings.Compare(a.app+"\x00"+a.queue, b.app+"\x00"+b.queue)
	}) {
		if k.app != app {
			continue
		}
		pts := m.src.queues[k].points(from, now)
		qs := QueueSeries{Queue: k.queue, Points: make([]JSONQueuePoint, len(pts))}
		for i, p := range pts {
			qs.Points[i] = JSONQueuePoint{Time: time.Unix(p.T, 0).UTC(), Ready: p.Ready, Delayed: p.Delayed,
				Reserved: p.Reserved, Dead: p.Dead, Enqueued: p.Enqueued, Done: p.Done, Failed: p.Failed}
		}
		out.Queues = append(out.Queues, qs)
	}
	if r := m.src.errors[app]; r != nil {
		for _, p := range r.points(from, now) {
			out.Errors = append(out.Errors, JSONErrorPoint{Time: time.Unix(p.T, 0).UTC(), Events: p.Events,
				PerSec: float64(p.Events) / step.Seconds()})
		}
	}
	for _, st := range m.instances {
		if st.p.App == app {
			out.Instances = append(out.Instances, InstanceSample{
				Instance: st.p.Instance, Process: st.p.Process, PID: st.p.PID,
				CPU: finite(st.cpu), RSS: st.rss, Restarts: st.restarts,
			})
		}
	}
	m.histMu.RUnlock()
	slices.SortFunc(out.Instances, func(a, b InstanceSample) int { return strings.Compare(a.Instance, b.Instance) })
	if out.Step == 0 {
		out.Step = int(Step / time.Second)
		if since > FineSpan {
			out.Step = int(CoarseStep / time.Second)
		}
	}
	out.Statsd = m.statsd.query(app, since)
	return out
}

func (st *statsdStore) query(app string, since time.Duration) []StatsdSeries {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := []StatsdSeries{}
	for _, ss := range st.apps[app] {
		h := &ss.hist
		r, step, last := &h.fine, Step, h.fineT
		if since > FineSpan {
			r, step, last = &h.coarse, CoarseStep, h.coarseT
		}
		pts := r.newest(int(since/step), h.width)
		s := StatsdSeries{Name: ss.name, Type: kindName(ss.kind), Tags: ss.tags}
		for i, v := range pts {
			s.Times = append(s.Times, time.Unix(last, 0).Add(-time.Duration(len(pts)-1-i)*step).UTC())
			s.Values = append(s.Values, v[0])
			if h.width == 4 {
				s.P50, s.P95, s.P99 = append(s.P50, v[1]), append(s.P95, v[2]), append(s.P99, v[3])
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b StatsdSeries) int {
		return strings.Compare(a.Name+"|"+strings.Join(a.Tags, ","), b.Name+"|"+strings.Join(b.Tags, ","))
	})
	return out
}

func kindName(k byte) string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindTimer:
		return "timer"
	}
	return "set"
}

// AppSummary is an app at a glance: its last minute. The dashboard's
// overview shows rps, p99_ms, error_rate and cache_hit_ratio.
type AppSummary struct {
	App string  `json:"app"`
	RPS float64 `json:"rps"`
	// P99 is the worst 10 s window of the minute.
	P99 float32 `json:"p99_ms"`
	// ErrorRate is the share of answers that were 5xx.
	ErrorRate float64 `json:"error_rate"`
	// CacheHitRatio is the share of cache lookups the gateway's cache
	// answered (HIT, STALE, REVALIDATED over those and MISS); null when
	// there was no lookup (no cache rule, only BYPASS).
	CacheHitRatio *float64 `json:"cache_hit_ratio"`
	// ErrorEvents is the events per second the error tracker took for the
	// app (exceptions sent by its SDK, crashes).
	ErrorEvents float64 `json:"error_events_per_s"`
	// Tasks per second over every queue of the app, and its tasks waiting
	// (ready, delayed, reserved) and dead, at the minute's end.
	TasksEnqueued float64 `json:"tasks_enqueued_per_s"`
	TasksDone     float64 `json:"tasks_done_per_s"`
	TasksFailed   float64 `json:"tasks_failed_per_s"`
	Queued        uint64  `json:"queued"`
	DeadTasks     uint64  `json:"dead_tasks"`

	CPU       float32 `json:"cpu"`
	RSS       uint64  `json:"rss"`
	Instances uint32  `json:"instances"`
	Restarts  uint32  `json:"restarts"`
}

// Summary returns every app's last minute, sorted by app.
func (m *Metrics) Summary() []AppSummary {
	m.histMu.RLock()
	defer m.histMu.RUnlock()
	from := m.lastTick.Add(-time.Minute).Unix()
	byApp := map[string]*AppSummary{}
	get := func(app string) *AppSummary {
		a := byApp[app]
		if a == nil {
			a = &AppSummary{App: app}
			byApp[app] = a
		}
		return a
	}
	errs := map[string]uint32{}
	reqs := map[string]uint32{}
	cache := map[string]*[5]uint32{}
	for k, s := range m.series {
		a := get(k.app)
		pts := s.fine.since(from, nil)
		for _, p := range pts {
			reqs[k.app] += p.Requests
			errs[k.app] += p.Status[4]
			a.P99 = max(a.P99, p.P99)
			a.Restarts += p.Restarts
			c := cache[k.app]
			if c == nil {
				c = new([5]uint32)
				cache[k.app] = c
			}
			for i := range c {
				c[i] += p.Cache[i]
			}
		}
		if len(pts) > 0 {
			last := pts[len(pts)-1]
			a.CPU += last.CPU
			a.RSS += last.RSS
			a.Instances += last.Instances
		}
	}
	for k, r := range m.src.queues {
		// The rates are the tasks service's own, over its last minute:
		// the newest point has them.
		if p, ok := r.fine.last(); ok && p.T > from {
			a := get(k.app)
			a.TasksEnqueued += float64(p.Enqueued)
			a.TasksDone += float64(p.Done)
			a.TasksFailed += float64(p.Failed)
			a.Queued += uint64(p.Ready) + uint64(p.Delayed) + uint64(p.Reserved)
			a.DeadTasks += uint64(p.Dead)
		}
	}
	for app, r := range m.src.errors {
		var n uint64
		for _, p := range r.fine.since(from, nil) {
			n += uint64(p.Events)
		}
		get(app).ErrorEvents = float64(n) / time.Minute.Seconds()
	}
	out := make([]AppSummary, 0, len(byApp))
	for app, a := range byApp {
		a.RPS = float64(reqs[app]) / time.Minute.Seconds()
		if reqs[app] > 0 {
			a.ErrorRate = float64(errs[app]) / float64(reqs[app])
		}
		if c := cache[app]; c != nil {
			a.CacheHitRatio = hitRatio(*c)
		}
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b AppSummary) int { return strings.Compare(a.App, b.App) })
	return out
}

// Routes returns the API routes: GET /v1/apps/{app}/metrics?since=1h and
// GET /v1/metrics (every app's last minute). exists says whether an app
// is known, for a 404.
func (m *Metrics) Routes(exists func(r *http.Request, app string) bool) map[string]http.Handler {
	return map[string]http.Handler{
		"GET /v1/apps/{app}/metrics": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			app := r.PathValue("app")
			if !exists(r, app) {
				sendJSON(w, http.StatusNotFound, map[string]string{"error": "no app named " + app})
				return
			}
			since := time.Hour
			if v := r.FormValue("since"); v != "" {
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					sendJSON(w, http.StatusBadRequest, map[string]string{"error": "since: want a duration such as 10m or 24h"})
					return
				}
				since = d
			}
			sendJSON(w, http.StatusOK, m.Query(app, since))
		}),
		"GET /v1/metrics": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sendJSON(w, http.StatusOK, m.Summary())
		}),
	}
}

// PrometheusHandler serves the exposition; when token is set, only to
// requests with "Authorization: Bearer <token>".
func (m *Metrics) PrometheusHandler(token func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != nil && !token(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pier"`)
			http.Error(w, "pier: /metrics wants the admin token (Authorization: Bearer <token>)", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		m.WritePrometheus(w)
	})
}

func sendJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
