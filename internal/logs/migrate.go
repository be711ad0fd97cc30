package logs

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"pier/internal/store"
)

// legacyStream is the single stream earlier engines kept every app's lines
// in, on subjects logs.>; legacySubjects is where migrate moves its
// subjects so that per-app streams may take logs.<app>.> over.
const (
	legacyStream   = "LOGS"
	legacySubjects = "logs-legacy.>"
)

// migrate moves the lines of the legacy LOGS stream into per-app streams,
// in order, then deletes it. It runs before the engine writes any line.
// If an earlier attempt was cut short (the legacy stream is still there),
// the per-app streams hold only copies from that attempt: they are
// emptied and the copy starts over, so no line is stored twice. Copied
// lines keep their own time (Line.Time) but are stored at the time of the
// copy, which is what --since compares with.
func (l *Logs) migrate(ctx context.Context) error {
	legacy, err := l.st.OpenStream(ctx, legacyStream)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logs: migrate: %w", err)
	}
	names, err := l.st.StreamNames(ctx, "LOGS_")
	if err != nil {
		return fmt.Errorf("logs: migrate: %w", err)
	}
	for _, n := range names {
		if err := l.st.DeleteStream(ctx, n); err != nil {
			return fmt.Errorf("logs: migrate: %w", err)
		}
	}
	if err := legacy.SetSubjects(ctx, []string{legacySubjects}); err != nil {
		return fmt.Errorf("logs: migrate: %w", err)
	}
	const batch = 1000
	pending := map[string][]store.Message{} // by app
	n := 0
	flush := func(app string) error {
		s, err := l.stream(ctx, app)
		if err != nil {
			return err
		}
		if err := s.AppendAll(ctx, pending[app]); err != nil {
			return err
		}
		n += len(pending[app])
		delete(pending, app)
		return nil
	}
	err = legacy.Each(ctx, func(m store.Message) error {
		parts := strings.SplitN(m.Subject, ".", 3)
		if len(parts) < 3 || parts[0] != "logs" {
			return nil
		}
		app := parts[1]
		pending[app] = append(pending[app], store.Message{Subject: m.Subject, Data: m.Data, Header: m.Header})
		if len(pending[app]) >= batch {
			return flush(app)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("logs: migrate: %w", err)
	}
	for app := range pending {
		if err := flush(app); err != nil {
			return fmt.Errorf("logs: migrate: %w", err)
		}
	}
	if err := l.st.DeleteStream(ctx, legacyStream); err != nil {
		return fmt.Errorf("logs: migrate: %w", err)
	}
	l.log.Info("moved stored log lines to per-app streams", "lines", n, "apps", len(l.streams))
	return nil
}
