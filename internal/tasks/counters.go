package tasks

import (
	"context"
	"errors"
	"time"

	"pier/internal/store"
)

// jobCounts are a task's beanstalkd event counters (stats-job timeouts,
// releases, buries, kicks). They are this engine's own, counted since it
// started: a task gets an entry at its first event, and loses it when it
// is deleted, pushed with success, or dropped.
type jobCounts struct {
	app, queue                        string
	timeouts, releases, buries, kicks int
	buried                            bool // in the dead set: DropDead forgets it
}

// countJob applies fn to t's counters, making them on first use.
func (s *Service) countJob(t Task, fn func(c *jobCounts)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts[t.ID]
	if c == nil {
		c = &jobCounts{app: t.App, queue: t.Queue}
		s.counts[t.ID] = c
	}
	fn(c)
}

// forgetJob drops the counters of a task that is gone.
func (s *Service) forgetJob(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.counts, id)
}

// forgetJobs drops the counters of app's tasks for which drop says so.
func (s *Service) forgetJobs(app string, drop func(c *jobCounts) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.counts {
		if c.app == app && drop(c) {
			delete(s.counts, id)
		}
	}
}

// withCounts fills t's event counters.
func (s *Service) withCounts(t Task) Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.counts[t.ID]; c != nil && c.app == t.App {
		t.Timeouts, t.Releases, t.Buries, t.Kicks = c.timeouts, c.releases, c.buries, c.kicks
	}
	return t
}

// urgentPri is beanstalkd's bound for an urgent job: priority below 1024.
const urgentPri = 1024

// urgentScan bounds the walk Urgent makes over a queue's ready tasks.
const urgentScan = 10_000

// Urgent counts a queue's ready tasks with a priority under 1024 (stats-tube
// current-jobs-urgent). It walks the ready tasks, at most the first 10,000
// of them: a figure for stats, not for hot paths.
func (s *Service) Urgent(ctx context.Context, app, name string) (int, error) {
	if err := ValidQueue(name); err != nil {
		return 0, err
	}
	subj := "tasks." + app + "." + name + ".r.*"
	n := 0
	var seq uint64 = 1
	for range urgentScan {
		m, err := s.q.Next(ctx, subj, seq)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return n, err
		}
		seq = m.Seq + 1
		t := taskFrom(m)
		if t.Priority < urgentPri && !s.isReserved(t.ID) {
			n++
		}
	}
	return n, nil
}

// requeue stores t again as ready, or as delayed when delay > 0, and
// returns the new message's sequence. The caller ends t's old message.
func (s *Service) requeue(ctx context.Context, t Task, delay time.Duration) (uint64, error) {
	hdr := t.header()
	po := store.PutOptions{}
	subj := subject(t.App, t.Queue, "r", t.ID)
	if delay > 0 {
		now := time.Now()
		po.At, po.Target = now.Add(delay), subj
		hdr[hdrETA] = itoa(now.Add(delay).UnixNano())
		hdr[hdrDelay] = itoa(delay.Milliseconds())
		subj = subject(t.App, t.Queue, "d", t.ID)
	}
	seq, err := s.q.Put(ctx, subj, t.Body, hdr, po)
	if err != nil {
		return 0, err
	}
	return seq, nil
}
