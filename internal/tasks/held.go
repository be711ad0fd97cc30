package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"pier/internal/store"
)

// held is a task taken out of its queue by id (beanstalkd reserve-job):
// a JetStream consumer hands out tasks in order only, so the task moves to
// tasks.<app>.<queue>.h.<id>, which no consumer reads, for as long as it
// is reserved. Start moves tasks left there by an engine that died back
// to ready (this assumes one engine per store, as today).
type held struct {
	s   *Service
	t   Task
	seq uint64 // of the h.<id> message
}

// Ack deletes the held task: it is done.
func (h *held) Ack(ctx context.Context) error {
	if err := h.s.q.Delete(ctx, h.seq); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// Nak puts the task back on its queue, ready after delay.
func (h *held) Nak(delay time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.s.ctx), 10*time.Second)
	defer cancel()
	if _, err := h.s.requeue(ctx, h.t, delay); err != nil {
		return fmt.Errorf("tasks: release %d: %w", h.t.ID, err)
	}
	return h.Ack(ctx)
}

// InProgress has nothing to tell: no consumer waits for a held task.
func (h *held) InProgress() error { return nil }

// ReserveJob reserves a task by id, whatever its state (ready, delayed or
// buried), for the session; a task the session holds already is returned
// as it is.
func (se *Session) ReserveJob(ctx context.Context, id uint64) (Task, error) {
	if t, _, ok := se.Reserved(id); ok {
		return t, nil
	}
	t, err := se.s.Lookup(ctx, se.App, id)
	if err != nil {
		return Task{}, err
	}
	if t.State == StateReserved {
		return Task{}, ErrNotFound // someone else's
	}
	seq, err := se.s.q.Put(ctx, subject(t.App, t.Queue, "h", t.ID), t.Body, t.header(), store.PutOptions{})
	if err != nil {
		return Task{}, fmt.Errorf("tasks: reserve-job %d: %w", id, err)
	}
	if t.State == StateReady {
		se.s.mu.Lock()
		q := se.s.queues[queueKey(t.App, t.Queue)]
		se.s.mu.Unlock()
		if q != nil {
			se.s.unstash(q, t.seq)
		}
	}
	if err := se.s.q.Delete(ctx, t.seq); err != nil {
		// Taken (or fired) meanwhile: give up the copy.
		se.s.q.Delete(ctx, seq)
		if errors.Is(err, store.ErrNotFound) {
			return Task{}, ErrNotFound
		}
		return Task{}, err
	}
	r := se.s.hold(t, &held{s: se.s, t: t, seq: seq}, se)
	return r.task, nil
}

// releaseHeld moves tasks left held by an engine that died back to ready.
func (s *Service) releaseHeld(ctx context.Context) error {
	var seq uint64 = 1
	for {
		m, err := s.q.Next(ctx, "tasks.*.*.h.*", seq)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		seq = m.Seq + 1
		t := taskFrom(m)
		if err := (&held{s: s, t: t, seq: m.Seq}).Nak(0); err != nil {
			return err
		}
	}
}
