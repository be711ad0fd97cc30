package engine

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"pier/internal/errortrack"
	"pier/internal/metrics"
	"pier/internal/store"
	"pier/internal/supervisor"
	"pier/internal/tasks"
)

// engineMetrics plugs metrics (issue #6) into the engine. It exists before
// the gateway, whose Observe hook it is, learns the supervisor once that
// is made, and the tasks service and error tracker in start, after the
// services started and before the collector does.
type engineMetrics struct {
	m      *metrics.Metrics
	log    *slog.Logger
	statsd string // where the statsd listener binds; "" = a free loopback port
	sup    *supervisor.Supervisor

	tasks   *tasks.Service      // nil = no queue figures
	apps    *store.Bucket       // the apps, whose queues are listed
	tracker *errortrack.Tracker // nil = no error rates
}

func newEngineMetrics(log *slog.Logger, statsdAddr string) *engineMetrics {
	e := &engineMetrics{log: log, statsd: statsdAddr}
	e.m = metrics.New(metrics.Options{Logger: log, Processes: e.processes, Queues: e, Errors: e})
	return e
}

// ErrorEvents reads the error tracker's per-app event counts.
func (e *engineMetrics) ErrorEvents() map[string]int64 {
	if e.tracker == nil {
		return nil
	}
	return e.tracker.EventCounts()
}

// QueueSamples reads every app's queues from the tasks service: a store
// round trip or three per queue, once per 10 s window.
func (e *engineMetrics) QueueSamples(ctx context.Context) ([]metrics.QueueSample, error) {
	if e.tasks == nil || e.apps == nil {
		return nil, nil
	}
	apps, err := e.apps.Keys(ctx, "*")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	var out []metrics.QueueSample
	for _, app := range apps {
		names, err := e.tasks.QueueNames(ctx, app)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			st, err := e.tasks.Stats(ctx, app, name)
			if err != nil {
				return nil, fmt.Errorf("queue %s/%s: %w", app, name, err)
			}
			out = append(out, metrics.QueueSample{App: app, Queue: name,
				Ready: st.Ready, Delayed: st.Delayed, Reserved: st.Reserved, Dead: st.Buried,
				Enqueued: st.EnqueueRate, Done: st.DoneRate, Failed: st.FailRate})
		}
	}
	return out, nil
}

// processes lists the supervisor's running instances for sampling.
func (e *engineMetrics) processes() []metrics.Process {
	if e.sup == nil {
		return nil
	}
	all := e.sup.List()
	out := make([]metrics.Process, 0, len(all))
	for _, s := range all {
		if s.PID > 0 {
			out = append(out, metrics.Process{App: s.App, Process: s.Process, Instance: s.Instance, PID: s.PID, Restarts: s.Restarts})
		}
	}
	return out
}

// start runs the collector and the statsd listener (STATSD_ADDR for every
// process), and mounts GET /v1/apps/{app}/metrics, GET /v1/metrics and the
// Prometheus exposition at /metrics (admin token as a bearer token).
func (e *engineMetrics) start(ctx context.Context, h *hub) error {
	apps, err := h.store.Bucket(ctx, "apps", 5)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	e.tasks, e.apps, e.tracker = h.tasks, apps, h.tracker
	e.m.Start(ctx)
	addr := e.statsd
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("metrics: statsd address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return fmt.Errorf("metrics: statsd listener: %w", err)
	}
	owners := metrics.NewProcOwners("", e.processes)
	srv := e.m.NewStatsdServer(owners.AppFor)
	srvCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(srvCtx, conn); err != nil {
			e.log.Error("statsd listener", "err", err)
		}
	}()
	h.stops = append(h.stops, func() { stop(); <-done })
	statsdAddr := reachable(conn.LocalAddr())
	h.env = append(h.env, func(string, string, string) map[string]string {
		return map[string]string{"STATSD_ADDR": statsdAddr}
	})

	exists := func(r *http.Request, app string) bool {
		_, err := apps.Get(r.Context(), app)
		return err == nil
	}
	for pattern, handler := range e.m.Routes(exists) {
		h.api.Handle(pattern, handler)
	}
	token, err := adminToken(h.home)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	h.api.HandlePublic("GET /metrics", e.m.PrometheusHandler(func(r *http.Request) bool {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
	}))
	h.destroys = append(h.destroys, e.m.Forget)
	e.log.Info("statsd listening", "addr", conn.LocalAddr().String())
	return nil
}
