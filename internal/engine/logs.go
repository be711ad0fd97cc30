package engine

import (
	"context"
	"log/slog"
	"sync"

	"pier/internal/api"
	"pier/internal/logs"
	"pier/internal/store"
	"pier/internal/supervisor"
)

// logSink puts every line an app process writes into the LOGS stream
// through internal/logs.
type logSink struct {
	stream *store.Stream
	log    *slog.Logger

	once sync.Once
	l    *logs.Logs
}

func (s *logSink) write(l supervisor.Line) {
	s.once.Do(func() { s.l = logs.New(s.stream, s.log) })
	s.l.Write(logs.Line{
		Time: l.Time, App: l.App, Release: logs.ParseRelease(l.Release), Process: l.Process,
		Instance: l.Instance, Stream: l.Stream, Text: l.Text,
	})
}

// token makes s safe as one subject token.
func token(s string) string { return logs.Token(s) }

func readLogs(ctx context.Context, st *store.Stream, app string, q api.LogQuery, fn func(api.LogLine) error) error {
	lq := logs.Query{Process: q.Process, Lines: q.Lines, Since: q.Since, Grep: q.Grep, Follow: q.Follow}
	return logs.New(st, nil).Read(ctx, app, lq, func(l logs.Line) error {
		return fn(api.LogLine{
			Time: l.Time, App: l.App, Release: l.Release, Process: l.Process,
			Instance: l.Instance, Stream: l.Stream, Text: l.Text,
		})
	})
}
