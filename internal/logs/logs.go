// Package logs keeps every line every app process writes, reads them back
// (the last lines, lines since a time, lines matching a pattern, filtered
// here on the engine, and new lines as they come), and sends them on to
// drains: syslog servers and HTTP endpoints (drains.go).
//
// Each app has its own stream, LOGS_<app>, bounded in bytes (Options.
// MaxBytes, pier up --log-retention): when an app writes more, its oldest
// lines go, and no other app's. Each line is one message on subject
// logs.<app>.<process>.<n> carrying a Line as JSON: time, app, release,
// process, instance, stream, text. Engines before per-app streams kept one
// LOGS stream for every app; Open moves its lines over (migrate.go).
package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"pier/internal/store"
)

// DefaultMaxBytes is an app's log retention when Options.MaxBytes is zero.
const DefaultMaxBytes = 64 << 20

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

// Options configure Open.
type Options struct {
	// Store holds the streams. Required.
	Store *store.Store
	// MaxBytes bounds each app's stored lines; its oldest lines are dropped
	// beyond it. Zero means DefaultMaxBytes. Changing it applies to an
	// app's stream the next time the engine writes or reads it.
	MaxBytes int64
	// Logger receives the part's own logs. Nil discards them.
	Logger *slog.Logger
}

// Logs writes and reads app log lines. Create it with Open.
type Logs struct {
	st       *store.Store
	maxBytes int64
	log      *slog.Logger

	mu      sync.Mutex               // guards streams
	streams map[string]*store.Stream // by app, opened by this engine
}

// Open returns Logs over the per-app streams, first moving the lines of
// the single LOGS stream of earlier engines, if there is one, into them.
func Open(ctx context.Context, opts Options) (*Logs, error) {
	if opts.Store == nil {
		return nil, errors.New("logs: no store")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Logs{st: opts.Store, maxBytes: opts.MaxBytes, log: opts.Logger, streams: map[string]*store.Stream{}}
	if err := l.migrate(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// streamName is the name of app's stream.
func streamName(app string) string {
	return "LOGS_" + strings.NewReplacer("/", "_", "\\", "_").Replace(Token(app))
}

// stream returns app's stream, creating it (or updating its bound) the
// first time this engine uses it.
func (l *Logs) stream(ctx context.Context, app string) (*store.Stream, error) {
	l.mu.Lock()
	s := l.streams[app]
	l.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := l.st.Stream(ctx, store.StreamConfig{
		Name:     streamName(app),
		Subjects: []string{"logs." + Token(app) + ".>"},
		MaxBytes: l.maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	l.mu.Lock()
	l.streams[app] = s
	l.mu.Unlock()
	return s, nil
}

// Write stores a line without waiting for the store's acknowledgement: a
// process must never block on its logs. Only an app's first line in an
// engine's life waits, for its stream to be opened.
func (l *Logs) Write(line Line) {
	data, err := json.Marshal(line)
	if err != nil {
		return
	}
	l.mu.Lock()
	s := l.streams[line.App]
	l.mu.Unlock()
	if s == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err = l.stream(ctx, line.App)
		cancel()
	}
	if err != nil {
		l.log.Debug("log line dropped", "app", line.App, "err", err)
		return
	}
	if err := s.AppendNoWait(subject(line), data, nil); err != nil {
		l.log.Debug("log line dropped", "app", line.App, "err", err)
	}
}

func subject(line Line) string {
	_, n, _ := strings.Cut(line.Instance, ".")
	return "logs." + Token(line.App) + "." + Token(line.Process) + "." + Token(n)
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
	st, err := l.stream(ctx, app)
	if err != nil {
		return err
	}
	opts := store.ReadOptions{Last: q.Lines, Since: q.Since, Follow: q.Follow}
	if q.Lines == 0 {
		if !q.Follow {
			return nil
		}
		opts.Since = time.Now()
	}
	if re == nil {
		return st.Read(ctx, subject, opts, func(m store.Message) error {
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
	err = st.Read(ctx, subject, backlog, func(m store.Message) error {
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
	return st.Read(ctx, subject, store.ReadOptions{Since: t0, Follow: true}, func(m store.Message) error {
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

// Purge drops every stored line of app, and its stream.
func (l *Logs) Purge(ctx context.Context, app string) error {
	l.mu.Lock()
	delete(l.streams, app)
	l.mu.Unlock()
	if err := l.st.DeleteStream(ctx, streamName(app)); err != nil {
		return fmt.Errorf("logs: purge %s: %w", app, err)
	}
	return nil
}

// Size returns how many lines and bytes app's stream holds.
func (l *Logs) Size(ctx context.Context, app string) (lines, bytes uint64, err error) {
	s, err := l.stream(ctx, app)
	if err != nil {
		return 0, 0, err
	}
	return s.Size(ctx)
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
