package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"pier/internal/store"
)

// ReserveJob reserves a task by id, whatever its state (ready, delayed or
// buried), for the session; a task the session holds already is returned
// as it is. A delayed or buried task is stored as ready first.
func (se *Session) ReserveJob(ctx context.Context, id uint64) (Task, error) {
	s := se.s
	s.mu.Lock()
	if j, err := se.mine(id); err == nil {
		t := j.task()
		s.mu.Unlock()
		err := s.withBody(ctx, j, &t) // before t is read for the return
		return t, err
	}
	if j := s.jobs[id]; j != nil && j.q.app == se.App {
		if j.res != nil || j.hidx < 0 {
			s.mu.Unlock()
			return Task{}, ErrNotFound // someone else's, or being moved
		}
		r := s.reserve(j, se, time.Now())
		t := j.task()
		s.mu.Unlock()
		if err := s.withBody(ctx, j, &t); err != nil {
			s.unreserve(r, err)
			return Task{}, err
		}
		return t, nil
	}
	s.mu.Unlock()
	t, err := s.Lookup(ctx, se.App, id)
	if err != nil {
		return Task{}, err
	}
	if t.State != StateDelayed && t.State != StateBuried {
		return Task{}, ErrNotFound
	}
	m, err := s.q.Get(ctx, t.seq)
	if err != nil {
		return Task{}, ErrNotFound
	}
	j, ok, err := s.toReady(ctx, m, false)
	if err != nil {
		return Task{}, fmt.Errorf("tasks: reserve-job %d: %w", id, err)
	}
	if !ok {
		return Task{}, ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.res != nil || j.hidx < 0 {
		return Task{}, ErrNotFound // taken meanwhile
	}
	s.reserve(j, se, time.Now())
	return j.task(), nil
}

// releaseHeld moves tasks that an earlier engine version left reserved by
// id (on tasks.<app>.<queue>.h.<id>) back to ready.
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
		if _, err := s.store(ctx, t, "r", 0); err != nil {
			return err
		}
		if err := s.q.Delete(ctx, m.Seq); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
}
