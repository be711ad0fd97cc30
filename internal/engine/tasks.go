package engine

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"pier/internal/manifest"
	"pier/internal/tasks"
	"pier/internal/tasks/beanstalk"
)

// startTasks plugs the task queues (issue #4) into the hub: the
// beanstalkd-protocol listener (BEANSTALKD_ADDR for every process), the
// queues API under /v1/apps/{app}/tasks, queue settings and cron from each
// release's manifest, and the app's tasks dropped when it is destroyed.
func startTasks(ctx context.Context, h *hub) error {
	log := h.log.With("part", "tasks")
	svc, err := tasks.New(ctx, tasks.Options{
		Store: h.store, Logger: log, GatewayURL: h.gatewayURL, Domain: h.domain,
		Dir: filepath.Join(h.home, "tasks"), Memory: h.tasksMem,
	})
	if err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	if err := svc.Start(ctx); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	// Last to stop: the journal drains into the store before it closes.
	h.stops = append(h.stops, svc.Close)
	h.tasks = svc
	apps, err := h.store.Bucket(ctx, "apps", 5)
	if err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	exists := func(ctx context.Context, app string) bool {
		_, err := apps.Get(ctx, app)
		return err == nil
	}
	for pattern, handler := range svc.Routes(exists) {
		h.api.Handle(pattern, handler)
	}

	addr := h.beanstalkd
	if addr == "" {
		addr = "127.0.0.1:0" // pier serve: beside a running engine
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tasks: beanstalkd listener: %w", err)
	}
	srv := beanstalk.New(beanstalk.Options{
		Tasks: svc, Logger: log.With("proto", "beanstalkd"), AppForToken: h.appToken,
		SoleApp: func(ctx context.Context) (string, bool) {
			keys, err := apps.Keys(ctx, "*")
			if err != nil || len(keys) != 1 {
				return "", false
			}
			return keys[0], true
		},
	})
	srvCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(srvCtx, ln); err != nil {
			log.Error("beanstalkd listener", "err", err)
		}
	}()
	h.stops = append(h.stops, func() { stop(); <-done })
	beanstalkdAddr := reachable(ln.Addr())
	h.env = append(h.env, func(string, string, string) map[string]string {
		return map[string]string{"BEANSTALKD_ADDR": beanstalkdAddr}
	})
	h.releases = append(h.releases, func(app string, _ int, m *manifest.Manifest) {
		queues := make(map[string]tasks.QueueConfig, len(m.Queues))
		for name, q := range m.Queues {
			queues[name] = tasks.QueueConfig{
				Push: q.Push, Rate: q.Rate, Concurrency: q.Concurrency, Attempts: q.Attempts,
				MinBackoff: tasks.Duration(q.MinBackoff), MaxBackoff: tasks.Duration(q.MaxBackoff),
			}
		}
		crons := make([]tasks.Cron, len(m.Cron))
		for i, c := range m.Cron {
			crons[i] = tasks.Cron{Schedule: c.Schedule, Queue: c.Queue, Path: c.Path, Body: c.Body}
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := svc.Configure(cctx, app, queues, crons); err != nil {
			log.Error("apply the manifest's queues", "app", app, "err", err)
		}
	})
	h.destroys = append(h.destroys, func(app string) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := svc.DropApp(cctx, app); err != nil {
			log.Error("drop the app's tasks", "app", app, "err", err)
		}
	})
	log.Info("beanstalkd protocol listening", "addr", ln.Addr().String())
	return nil
}
