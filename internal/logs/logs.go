// Package logs keeps every line every app process writes, in the store's
// LOGS stream, and reads them back: the last lines, lines since a time,
// lines matching a pattern (filtered here, on the engine, not by the
// client), and new lines as they come.
//
// Each line is one message on subject logs.<app>.<process>.<n> carrying a
// Line as JSON: time, app, release, process, instance, stream, text.
package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"pier/internal/store"
)

// Line is one line a process wrote.
type Line struct {
	Time     time.Time `json:"time"`
	App      string    `json:"app"`
	Release  int       `json:"release,omitempty"`
	Process  string    `json:"process"`
	Instance string    `json:"instance"`
	Stream   string    `json:"stream"` // stdout, stderr, or "pier" for the engine's own notes
	Text     string    `json:"text"`
}

// Query selects lines.
type Query struct {
	Process string    // only this process type ("" = all)
	Lines   int       // the last N stored lines (after filtering); 0 = none, only new ones when following
	Since   time.Time // only lines stored from then on (zero = any)
	Grep    string    // only lines whose text matches this regular expression (RE2)
	Follow  bool      // then keep delivering new lines until ctx ends
}

// Logs writes and reads app log lines. Create it with New.
type Logs struct {
	stream *store.Stream
	log    *slog.Logger
}

// New returns Logs over the LOGS stream.
func New(stream *store.Stream, log *slog.Logger) *Logs {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Logs{stream: stream, log: log}
}

// Write stores a line without waiting for the store's acknowledgement: a
// process must never block on its logs.
func (l *Logs) Write(line Line) {
	data, err := json.Marshal(line)
	if err != nil {
		return
	}
	_, n, _ := strings.Cut(line.Instance, ".")
	subject := "logs." + Token(line.App) + "." + Token(line.Process) + "." + Token(n)
	if err := l.stream.AppendNoWait(subject, data, nil); err != nil {
		l.log.Debug("log line dropped", "app", line.App, "err", err)
	}
}

// ParseRelease turns "v3" into 3 (0 when it is not a release).
func ParseRelease(s string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(s, "v"))
	return n
}

// Read calls fn with the lines q selects, oldest first. It returns when
// the stored lines are done (or when ctx ends, with Follow), or when fn
// returns an error.
func (l *Logs) Read(ctx context.Context, app string, q Query, fn func(Line) error) error {
	var re *regexp.Regexp
	if q.Grep != "" {
		var err error
		if re, err = regexp.Compile(q.Grep); err != nil {
			return fmt.Errorf("logs: grep %q: %w", q.Grep, err)
		}
	}
	subject := "logs." + Token(app) + ".>"
	if q.Process != "" {
		subject = "logs." + Token(app) + "." + Token(q.Process) + ".*"
	}
	opts := store.ReadOptions{Last: q.Lines, Since: q.Since, Follow: q.Follow}
	if q.Lines == 0 {
		if !q.Follow {
			return nil
		}
		opts.Since = time.Now()
	}
	if re == nil {
		return l.stream.Read(ctx, subject, opts, func(m store.Message) error {
			var line Line
			if json.Unmarshal(m.Data, &line) != nil {
				return nil
			}
			return fn(line)
		})
	}
	// With a pattern, the last N matching lines: read the stored lines
	// (bounded by the stream's retention) keeping a ring of matches, hand
	// it over, then follow from where the stored lines ended.
	t0 := time.Now()
	var ring []Line
	var lastSeq uint64
	backlog := opts
	backlog.Last, backlog.Follow = 0, false
	if q.Lines == 0 {
		backlog.Since = t0
	}
	err := l.stream.Read(ctx, subject, backlog, func(m store.Message) error {
		lastSeq = max(lastSeq, m.Seq)
		if line, ok := match(m, re); ok && q.Lines > 0 {
			ring = append(ring, line)
			if len(ring) > q.Lines {
				ring = ring[len(ring)-q.Lines:]
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, line := range ring {
		if err := fn(line); err != nil {
			return err
		}
	}
	if !q.Follow {
		return nil
	}
	return l.stream.Read(ctx, subject, store.ReadOptions{Since: t0, Follow: true}, func(m store.Message) error {
		if m.Seq <= lastSeq {
			return nil // already seen in the stored lines
		}
		if line, ok := match(m, re); ok {
			return fn(line)
		}
		return nil
	})
}

func match(m store.Message, re *regexp.Regexp) (Line, bool) {
	var line Line
	if json.Unmarshal(m.Data, &line) != nil || !re.MatchString(line.Text) {
		return Line{}, false
	}
	return line, true
}

// Purge drops every stored line of app.
func (l *Logs) Purge(ctx context.Context, app string) error {
	return l.stream.Purge(ctx, "logs."+Token(app)+".>")
}

// Token makes s safe as one subject token.
func Token(s string) string {
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
