package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"pier/internal/api"
	"pier/internal/deploy"
	"pier/internal/metrics"
	"pier/internal/store"
	"pier/internal/web"
)

// startWeb mounts the dashboard (internal/web) at / on the API listener.
// The dashboard does its own authentication (the admin token, then a
// session cookie), so it is mounted with HandlePublic. It reads the
// deploy manager, the LOGS and EVENTS streams and the metrics service
// directly; errors and tasks through their API routes on apiHandler,
// called in process with the admin token, so the dashboard shows what
// `pier errors` and `pier tasks` show.
func startWeb(ctx context.Context, h *hub, mgr *deploy.Manager, p *parts, met *metrics.Metrics, apiHandler http.Handler) error {
	token, err := adminToken(h.home)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	local := &localAPI{h: apiHandler, token: token}
	srv, err := web.New(web.Options{
		Token:      token,
		Engine:     &webEngine{Manager: mgr, logs: p.logs, events: p.events},
		Metrics:    webMetrics{met},
		Errors:     webErrors{local},
		Tasks:      webTasks{local},
		Logger:     h.log.With("part", "web"),
		Background: ctx,
	})
	if err != nil {
		return err
	}
	h.api.HandlePublic("/", srv)
	return nil
}

// webEngine adapts the deploy manager and the streams to the dashboard.
type webEngine struct {
	*deploy.Manager
	logs   *logStore
	events *store.Stream
}

var _ web.Engine = (*webEngine)(nil)

func (e *webEngine) Logs(ctx context.Context, app string, q api.LogQuery, fn func(api.LogLine) error) error {
	return readLogs(ctx, e.logs, app, q, fn)
}

func (e *webEngine) Events(ctx context.Context, app string, last int, fn func(api.Event) error) error {
	return e.events.Read(ctx, "events."+app, store.ReadOptions{Last: last, Follow: true}, func(m store.Message) error {
		var ev api.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return nil // not an event this version knows: skip it
		}
		return fn(ev)
	})
}

// webMetrics adapts the metrics service to the dashboard's charts.
type webMetrics struct{ m *metrics.Metrics }

// Summary leaves latency and error rate out (nil: "—" on the overview)
// for an app that answered no request in the last minute; the cache hit
// ratio is nil when the cache had no lookup.
func (w webMetrics) Summary() []web.Summary {
	all := w.m.Summary()
	out := make([]web.Summary, len(all))
	for i, s := range all {
		out[i] = web.Summary{App: s.App, RPS: s.RPS, CacheHitRatio: s.CacheHitRatio}
		if s.RPS > 0 {
			p99, er := float64(s.P99), s.ErrorRate
			out[i].P99, out[i].ErrorRate = &p99, &er
		}
	}
	return out
}

// Series lays the app's process series on one time axis: HTTP figures
// from "web", CPU and memory summed over every process type.
func (w webMetrics) Series(app string, since time.Duration) web.Series {
	q := w.m.Query(app, since)
	var times []int64
	for _, ps := range q.Processes {
		for _, p := range ps.Points {
			times = append(times, p.Time.Unix())
		}
	}
	slices.Sort(times)
	times = slices.Compact(times)
	if times == nil {
		times = []int64{}
	}
	n := len(times)
	out := web.Series{Step: q.Step, Times: times, RPS: make([]float64, n), P50: make([]float64, n), P99: make([]float64, n), CPU: make([]float64, n), RSS: make([]float64, n)}
	for _, ps := range q.Processes {
		for _, p := range ps.Points {
			i, _ := slices.BinarySearch(times, p.Time.Unix())
			if ps.Process == "web" {
				out.RPS[i], out.P50[i], out.P99[i] = p.RPS, float64(p.P50), float64(p.P99)
			}
			out.CPU[i] += float64(p.CPU)
			out.RSS[i] += float64(p.RSS) / (1 << 20)
		}
	}
	return out
}

// localAPI calls the engine API's handler in process, as the admin.
type localAPI struct {
	h     http.Handler
	token string
}

// call sends a request to the API and decodes its JSON answer into out
// (if not nil); a non-2xx answer is an error with the API's message.
func (l *localAPI) call(ctx context.Context, method, path string, out any) error {
	// A server's handlers may read r.Body: never nil, as net/http gives it.
	req, err := http.NewRequestWithContext(ctx, method, path, http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.RemoteAddr = "127.0.0.1:0"
	var rec recorder
	l.h.ServeHTTP(&rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status/100 != 2 {
		var e api.Error
		json.Unmarshal(rec.body.Bytes(), &e)
		if e.Error == "" {
			e.Error = http.StatusText(rec.status)
		}
		if rec.status == http.StatusNotFound {
			return fmt.Errorf("%w: %s", api.ErrNotFound, e.Error)
		}
		return fmt.Errorf("%s %s: %d %s", method, path, rec.status, e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// recorder is the in-process ResponseWriter of localAPI.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header {
	if r.header == nil {
		r.header = http.Header{}
	}
	return r.header
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

type webErrors struct{ l *localAPI }

func (w webErrors) Issues(ctx context.Context, app string) ([]web.Issue, error) {
	var out []web.Issue
	err := w.l.call(ctx, "GET", "/v1/apps/"+url.PathEscape(app)+"/errors?status=all", &out)
	return out, err
}

// OpenIssues counts the app's unresolved issues from the tracker's index
// (Issues lists only the first page).
func (w webErrors) OpenIssues(ctx context.Context, app string) (int, error) {
	var c struct {
		Unresolved int `json:"unresolved"`
	}
	err := w.l.call(ctx, "GET", "/v1/apps/"+url.PathEscape(app)+"/errors/counts", &c)
	return c.Unresolved, err
}

var _ web.IssueCounter = webErrors{}

func (w webErrors) Issue(ctx context.Context, app, id string) (web.IssueDetail, error) {
	var out web.IssueDetail
	err := w.l.call(ctx, "GET", "/v1/apps/"+url.PathEscape(app)+"/errors/"+url.PathEscape(id)+"?events=1", &out)
	return out, err
}

func (w webErrors) SetStatus(ctx context.Context, app, id, action string) error {
	return w.l.call(ctx, "POST", "/v1/apps/"+url.PathEscape(app)+"/errors/"+url.PathEscape(id)+"/"+url.PathEscape(action), nil)
}

type webTasks struct{ l *localAPI }

func (w webTasks) Queues(ctx context.Context, app string) ([]web.Queue, error) {
	var out []web.Queue
	err := w.l.call(ctx, "GET", "/v1/apps/"+url.PathEscape(app)+"/tasks", &out)
	return out, err
}

func (w webTasks) Dead(ctx context.Context, app, queue string, limit int) ([]web.DeadTask, error) {
	var out []web.DeadTask
	err := w.l.call(ctx, "GET", fmt.Sprintf("/v1/apps/%s/tasks/%s/dead?limit=%d", url.PathEscape(app), url.PathEscape(queue), limit), &out)
	return out, err
}

func (w webTasks) Retry(ctx context.Context, app, queue, id string) error {
	return w.l.call(ctx, "POST", "/v1/apps/"+url.PathEscape(app)+"/tasks/"+url.PathEscape(queue)+"/dead/"+url.PathEscape(id)+"/retry", nil)
}

func (w webTasks) Drop(ctx context.Context, app, queue, id string) error {
	return w.l.call(ctx, "DELETE", "/v1/apps/"+url.PathEscape(app)+"/tasks/"+url.PathEscape(queue)+"/dead/"+url.PathEscape(id), nil)
}

func (w webTasks) Pause(ctx context.Context, app, queue string) error {
	return w.l.call(ctx, "POST", "/v1/apps/"+url.PathEscape(app)+"/tasks/"+url.PathEscape(queue)+"/pause", nil)
}

func (w webTasks) Resume(ctx context.Context, app, queue string) error {
	return w.l.call(ctx, "POST", "/v1/apps/"+url.PathEscape(app)+"/tasks/"+url.PathEscape(queue)+"/resume", nil)
}
