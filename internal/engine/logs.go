package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"pier/internal/api"
	"pier/internal/store"
	"pier/internal/supervisor"
)

// logSink puts every line an app process writes into the LOGS stream, on
// subject logs.<app>.<process>.<n> so a reader can pick a process type.
type logSink struct {
	stream *store.Stream
	log    *slog.Logger
}

func (s *logSink) write(l supervisor.Line) {
	rel, _ := strconv.Atoi(strings.TrimPrefix(l.Release, "v"))
	data, err := json.Marshal(api.LogLine{
		Time: l.Time, App: l.App, Release: rel, Process: l.Process,
		Instance: l.Instance, Stream: l.Stream, Text: l.Text,
	})
	if err != nil {
		return
	}
	_, n, _ := strings.Cut(l.Instance, ".")
	subject := "logs." + token(l.App) + "." + token(l.Process) + "." + token(n)
	if err := s.stream.AppendNoWait(subject, data, nil); err != nil {
		s.log.Debug("log line dropped", "app", l.App, "err", err)
	}
}

// token makes s safe as one subject token.
func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}

func readLogs(ctx context.Context, st *store.Stream, app string, q api.LogQuery, fn func(api.LogLine) error) error {
	subject := "logs." + token(app) + ".>"
	if q.Process != "" {
		subject = "logs." + token(app) + "." + token(q.Process) + ".*"
	}
	opts := store.ReadOptions{Last: q.Lines, Since: q.Since, Follow: q.Follow}
	if q.Lines == 0 {
		if !q.Follow {
			return nil
		}
		opts.Since = time.Now()
	}
	return st.Read(ctx, subject, opts, func(m store.Message) error {
		var l api.LogLine
		if err := json.Unmarshal(m.Data, &l); err != nil {
			return nil
		}
		return fn(l)
	})
}
