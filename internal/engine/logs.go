package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"pier/internal/api"
	"pier/internal/logs"
	"pier/internal/store"
	"pier/internal/supervisor"
)

// logStore is the engine's log part (internal/logs): a stream per app,
// bounded by Config.LogRetention.
type logStore = logs.Logs

// openLogs opens the per-app log streams, moving the lines of an earlier
// engine's single LOGS stream into them first.
func openLogs(ctx context.Context, st *store.Store, retention int64, log *slog.Logger) (*logStore, error) {
	return logs.Open(ctx, logs.Options{Store: st, MaxBytes: retention, Logger: log})
}

// logSink puts every line an app process writes into its app's stream.
type logSink struct {
	l *logs.Logs
}

func (s *logSink) write(l supervisor.Line) {
	s.l.Write(toLogLine(l))
}

func toLogLine(l supervisor.Line) logs.Line {
	return logs.Line{
		Time: l.Time, App: l.App, Release: logs.ParseRelease(l.Release), Process: l.Process,
		Instance: l.Instance, Stream: l.Stream, Text: l.Text,
	}
}

// token makes s safe as one subject token.
func token(s string) string { return logs.Token(s) }

func readLogs(ctx context.Context, l *logStore, app string, q api.LogQuery, fn func(api.LogLine) error) error {
	lq := logs.Query{Process: q.Process, Lines: q.Lines, Since: q.Since, Grep: q.Grep, Follow: q.Follow}
	return l.Read(ctx, app, lq, func(l logs.Line) error {
		return fn(api.LogLine{
			Time: l.Time, App: l.App, Release: l.Release, Process: l.Process,
			Instance: l.Instance, Stream: l.Stream, Text: l.Text,
		})
	})
}

// startDrains plugs log drains into the hub: every process line goes to
// its app's drains (syslog, HTTP), configured under /v1/apps/{app}/drains
// and kept in the store's "drains" bucket; a destroyed app loses them.
func startDrains(ctx context.Context, h *hub) error {
	d, err := logs.NewDrains(logs.DrainOptions{Store: h.store, Logger: h.log.With("part", "drains")})
	if err != nil {
		return fmt.Errorf("drains: %w", err)
	}
	if err := d.Start(ctx); err != nil {
		return fmt.Errorf("drains: %w", err)
	}
	apps, err := h.store.Bucket(ctx, "apps", 5)
	if err != nil {
		return fmt.Errorf("drains: %w", err)
	}
	exists := func(r *http.Request, app string) bool {
		_, err := apps.Get(r.Context(), app)
		return err == nil
	}
	for pattern, handler := range d.Routes(exists) {
		h.api.Handle(pattern, handler)
	}
	h.output = append(h.output, func(l supervisor.Line) { d.Send(toLogLine(l)) })
	h.destroys = append(h.destroys, func(app string) {
		if err := d.RemoveApp(context.WithoutCancel(ctx), app); err != nil {
			h.log.Warn("drains of a destroyed app", "app", app, "err", err)
		}
	})
	return nil
}
