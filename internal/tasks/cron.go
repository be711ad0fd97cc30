package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"pier/internal/store"
)

// Cron is one scheduled task: a task on Queue with Body, or (Path set) a
// POST of Body to Path, delivered through the queue "pier-cron".
type Cron struct {
	// Schedule: 5-field cron, 6-field cron with seconds first, @every
	// <duration>, or @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly.
	Schedule string
	Queue    string
	Path     string
	Body     string
}

// CronQueue carries cron entries that call a path.
const CronQueue = "pier-cron"

// hdrPath overrides the queue's push path for one task.
const hdrPath = "Pier-Path"

// natsSchedule turns a manifest schedule into the server's syntax.
func natsSchedule(s string) (string, error) {
	t := strings.TrimSpace(s)
	switch t {
	case "@annually":
		return "@yearly", nil
	case "@midnight":
		return "@daily", nil
	}
	if strings.HasPrefix(t, "@") {
		return t, nil
	}
	switch f := strings.Fields(t); len(f) {
	case 5:
		return "0 " + strings.Join(f, " "), nil
	case 6:
		return strings.Join(f, " "), nil
	}
	return "", fmt.Errorf("tasks: cron schedule %q: want 5 or 6 fields", s)
}

// configureCron makes app's stored schedules match crons: the server
// runs them, so each tick enqueues exactly one task, engine restarts
// included. Unchanged entries are left alone.
func (s *Service) configureCron(ctx context.Context, app string, crons []Cron) error {
	want := map[string]bool{}
	for _, c := range crons {
		queue, hdr := c.Queue, map[string]string{}
		if c.Path != "" {
			queue, hdr[hdrPath] = CronQueue, c.Path
			if _, err := s.setConfig(ctx, app, CronQueue, func(qc *QueueConfig) {
				if qc.Push == "" {
					qc.Push = "/"
				}
			}); err != nil {
				return err
			}
			s.startPusher(ctx, app, CronQueue, QueueConfig{Push: "/"})
		}
		expr, err := natsSchedule(c.Schedule)
		if err != nil {
			return err
		}
		if _, err := s.queue(ctx, app, queue); err != nil {
			return err
		}
		// The entry's name hashes what it does and where its copies go
		// ("f": schedule copies; entries of earlier engines, which copied
		// to r.*, are replaced by the sweep below).
		sum := sha256.Sum256([]byte("f\x00" + expr + "\x00" + queue + "\x00" + c.Path + "\x00" + c.Body))
		h := hex.EncodeToString(sum[:6])
		subj := "tasks." + app + "." + queue + ".c." + h
		target := "tasks." + app + "." + queue + ".f.c" + h
		want[subj] = true
		if _, err := s.q.Last(ctx, subj); err == nil {
			continue // same entry, already scheduled
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := s.q.Put(ctx, subj, []byte(c.Body), hdr, store.PutOptions{Cron: expr, Target: target}); err != nil {
			return fmt.Errorf("tasks: cron %q: %w", c.Schedule, err)
		}
	}
	// Drop schedules no longer in the manifest.
	var seq uint64 = 1
	for {
		m, err := s.q.Next(ctx, "tasks."+app+".*.c.*", seq)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		seq = m.Seq + 1
		if !want[m.Subject] {
			if err := s.q.Purge(ctx, m.Subject); err != nil {
				return err
			}
		}
	}
}
