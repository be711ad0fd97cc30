package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"pier/internal/store"
)

// Session is one puller's view of an app's queues — a beanstalkd
// connection: the tasks it holds reserved are its own, and go back to
// their queue when it closes.
type Session struct {
	s   *Service
	App string
	// Waiting, when set, is called (by the session's goroutine, without
	// locks) when a Reserve finds nothing ready and starts to wait: the
	// beanstalkd server gives the connection's thread back then.
	Waiting func()

	// held is what the session has reserved, each at its reservation's
	// hidx (a slice, not a map by id: a reserve and its delete cost no
	// map operation here; by id, s.jobs finds the task). Guarded by s.mu.
	held []*reservation
}

// Session starts a session on app's queues.
func (s *Service) Session(app string) *Session {
	return &Session{s: s, App: app}
}

// reservation is a task taken by a session (or by a push delivery, with a
// nil owner). It lives in memory only: a task reserved when the engine
// dies is ready again when it starts, as in beanstalkd. Guarded by s.mu.
type reservation struct {
	s        *Service
	j        *job
	owner    *Session
	deadline time.Time
	tidx     int // index in the service's TTR heap (ttr.go); -1 when off it
	hidx     int // index in owner.held; -1 when not there
}

// reserve makes j, ready, reserved by owner and puts it on the TTR clock
// from now. Caller holds s.mu.
func (s *Service) reserve(j *job, owner *Session, now time.Time) *reservation {
	s.unready(j)
	r := &reservation{s: s, j: j, owner: owner, deadline: now.Add(j.ttr), tidx: -1, hidx: -1}
	j.res = r
	j.counts.reserves++
	if owner == nil {
		j.attempt++
	} else {
		r.hidx = len(owner.held)
		owner.held = append(owner.held, r)
	}
	j.q.nreserved++
	s.startTTR(r)
	return r
}

// end forgets the reservation. Caller holds s.mu.
func (r *reservation) end() {
	if se := r.owner; se != nil && r.hidx >= 0 {
		last := len(se.held) - 1
		if r.hidx != last {
			se.held[r.hidx] = se.held[last]
			se.held[r.hidx].hidx = r.hidx
		}
		se.held[last] = nil
		se.held = se.held[:last]
		r.hidx = -1
	}
	if r.j.res != r {
		return
	}
	r.s.stopTTR(r)
	r.j.res = nil
	r.j.q.nreserved--
}

// expire runs when the TTR ends (expireDue has taken r off the clock):
// the task is ready again. Caller holds s.mu.
func (r *reservation) expire() {
	s := r.s
	if r.j.res != r {
		return
	}
	r.end()
	if r.owner != nil {
		r.j.counts.timeouts++
	}
	if !r.j.gone {
		s.makeReady(r.j)
	}
}

// Put enqueues a task on queue.
func (se *Session) Put(ctx context.Context, queue string, t NewTask) (uint64, error) {
	return se.s.Enqueue(ctx, se.App, queue, t)
}

// deadlineMargin is beanstalkd's safety margin: a reserve with nothing
// ready answers DEADLINE_SOON when a task the connection holds has less
// than this left of its TTR.
const deadlineMargin = time.Second

// Reserve takes the most urgent ready task of queues (lowest priority
// number, then oldest), waiting up to timeout for one (forever when
// negative; not at all when zero).
func (se *Session) Reserve(ctx context.Context, queues []string, timeout time.Duration) (Task, error) {
	s := se.s
	qs := make([]*queue, 0, len(queues))
	for _, n := range queues {
		q, err := s.queue(ctx, se.App, n)
		if err != nil {
			return Task{}, err
		}
		qs = append(qs, q)
	}
	now := time.Now()
	var deadline time.Time
	if timeout >= 0 {
		deadline = now.Add(timeout)
	}
	var w *waiter
	defer func() {
		if w != nil {
			s.mu.Lock()
			for _, q := range qs {
				delete(q.waiters, w)
			}
			s.mu.Unlock()
		}
	}()
	live := make([]*queue, 0, len(qs))
	for first := true; ; first = false {
		if !first {
			now = time.Now()
		}
		live = live[:0]
		wait := 5 * time.Second
		for _, q := range qs {
			if left := q.config().PausedUntil.Sub(now); left > 0 {
				wait = min(wait, left)
			} else {
				live = append(live, q)
			}
		}
		s.mu.Lock()
		if j := best(live); j != nil {
			r := s.reserve(j, se, now)
			t := j.task()
			s.mu.Unlock()
			if t.bodyOut {
				if err := s.withBody(ctx, j, &t); err != nil {
					if s.unreserve(r, err) {
						continue
					}
					return Task{}, err
				}
			}
			return t, nil
		}
		// Nothing ready: DEADLINE_SOON if a task held is about to time out.
		soon, holding := time.Duration(0), false
		for _, r := range se.held {
			left := r.deadline.Sub(now) - deadlineMargin
			if !holding || left < soon {
				soon, holding = left, true
			}
		}
		if holding && soon <= 0 {
			s.mu.Unlock()
			return Task{}, ErrDeadlineSoon
		}
		if holding {
			wait = min(wait, max(soon, 10*time.Millisecond))
		}
		if !deadline.IsZero() {
			wait = min(wait, deadline.Sub(now))
		}
		if wait <= 0 {
			s.mu.Unlock()
			return Task{}, ErrTimeout
		}
		starts := w == nil
		if starts {
			w = &waiter{ch: make(chan struct{}, 1)}
			for _, q := range qs {
				q.waiters[w] = struct{}{}
			}
		}
		s.mu.Unlock()
		if starts && se.Waiting != nil {
			se.Waiting()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Task{}, ctx.Err()
		case <-w.ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// Delete removes a task: one this session reserved, or one nobody has
// reserved.
func (se *Session) Delete(ctx context.Context, id uint64) error {
	return se.s.deleteTask(ctx, se.App, id, func(r *reservation) bool { return r.owner == se })
}

// deleteTask deletes app's task id: a ready one, a reserved one whose
// reservation mayHold accepts (nil: none), or a delayed or buried one from
// the stream. A journaled delete is durable when this returns; the drain
// removes the message.
func (s *Service) deleteTask(ctx context.Context, app string, id uint64, mayHold func(*reservation) bool) error {
	s.mu.Lock()
	j := s.jobs[id]
	if j == nil || j.q.app != app {
		s.mu.Unlock()
		return s.deleteStored(ctx, app, id)
	}
	if j.res != nil && (mayHold == nil || !mayHold(j.res)) {
		s.mu.Unlock()
		return ErrNotFound
	}
	if j.res == nil && j.hidx < 0 {
		s.mu.Unlock()
		return ErrNotFound // being moved (bury, release with a delay)
	}
	wasReserved := j.res != nil
	s.drop(j)
	// A task whose put the drain has not sent has no message to remove
	// and none that could be read back meanwhile: no tomb (the usual case
	// of a worker that keeps up; the drain skips the put, j being gone).
	tombed := j.seq != 0 || j.sent
	if tombed {
		s.tomb[id] = struct{}{}
	}
	seq := j.seq
	s.mu.Unlock()
	err := s.jl.append(record{kind: recDelete, id: id, seq: seq, app: app, queue: j.q.name, j: j, tombed: tombed})
	if err != nil {
		// Not deleted: the task is ready again.
		s.mu.Lock()
		if tombed {
			delete(s.tomb, id)
		}
		j.gone = false
		s.index(j)
		s.mu.Unlock()
		return fmt.Errorf("tasks: delete %d: %w", id, err)
	}
	if wasReserved {
		j.q.rates.done.add(time.Now(), 1)
	}
	j.q.deletes.Add(1)
	return nil
}

// mine returns the session's reserved task id. Caller holds s.mu.
func (se *Session) mine(id uint64) (*job, error) {
	if j := se.s.jobs[id]; j != nil && j.res != nil && j.res.owner == se {
		return j, nil
	}
	return nil, ErrNotFound
}

// Release hands a reserved task back with priority pri, ready again after
// delay. Without a delay it stays in memory (with a new priority, stored
// again so the priority survives a restart); with one it is stored as
// delayed (a message schedule, like a delayed put).
func (se *Session) Release(ctx context.Context, id uint64, pri uint32, delay time.Duration) error {
	s := se.s
	s.mu.Lock()
	j, err := se.mine(id)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	j.counts.releases++
	if delay <= 0 && pri == j.pri {
		j.res.end()
		s.makeReady(j)
		s.mu.Unlock()
		s.flushCounts() // the counters are journaled before the answer
		return nil
	}
	j.res.end()
	s.mu.Unlock()
	if delay > 0 {
		return s.move(ctx, j, "d", delay, func(t *Task) { t.Priority = pri })
	}
	return s.move(ctx, j, "r", 0, func(t *Task) { t.Priority = pri })
}

// Bury moves a reserved task to its queue's buried (dead) set.
func (se *Session) Bury(ctx context.Context, id uint64, pri uint32) error {
	s := se.s
	s.mu.Lock()
	j, err := se.mine(id)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	j.counts.buries++
	j.res.end()
	s.mu.Unlock()
	return s.move(ctx, j, "x", 0, func(t *Task) { t.Priority = pri })
}

// Touch gives a reserved task a fresh TTR.
func (se *Session) Touch(ctx context.Context, id uint64) error {
	s := se.s
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := se.mine(id)
	if err != nil {
		return err
	}
	s.touchTTR(j.res)
	return nil
}

// Reserved returns the session's reservation of id with its time left.
func (se *Session) Reserved(id uint64) (Task, time.Duration, bool) {
	s := se.s
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := se.mine(id)
	if err != nil {
		return Task{}, 0, false
	}
	return j.task(), max(time.Until(j.res.deadline), 0), true
}

// TimeLeft returns how long a reserved task (by any session) has left.
func (s *Service) TimeLeft(id uint64) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil || j.res == nil {
		return 0, false
	}
	return max(time.Until(j.res.deadline), 0), true
}

// Close hands every task the session holds back to its queue.
func (se *Session) Close() {
	s := se.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(se.held) > 0 {
		r := se.held[len(se.held)-1]
		mine := r.j.res == r
		r.end() // takes it off held
		if mine && !r.j.gone {
			s.makeReady(r.j)
		}
	}
}

// move stores a task that has left the index's ready and reserved sets
// (the caller ended its reservation) in another state — "x" buried, "d"
// delayed by delay, "r" ready again (a new priority) — with its counters,
// then removes its old message. The task must be in the stream first, so
// move waits for the drain when its put is still journaled only.
func (s *Service) move(ctx context.Context, j *job, code string, delay time.Duration, edit func(t *Task)) error {
	s.mu.Lock()
	seq := j.seq
	s.mu.Unlock()
	if seq == 0 {
		if err := s.drainWait(ctx); err != nil {
			s.putBack(j)
			return err
		}
		s.mu.Lock()
		seq = j.seq
		s.mu.Unlock()
	}
	s.mu.Lock()
	t := j.task()
	s.mu.Unlock()
	if err := s.withBody(ctx, j, &t); err != nil {
		s.putBack(j)
		return fmt.Errorf("tasks: move %d: %w", j.id, err)
	}
	edit(&t)
	if code == "r" {
		s.beginStore()
	}
	newSeq, err := s.store(ctx, t, code, delay)
	if err != nil {
		if code == "r" {
			s.endStore()
		}
		s.putBack(j)
		return fmt.Errorf("tasks: move %d: %w", j.id, err)
	}
	if seq != 0 {
		if err := s.q.Delete(ctx, seq); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("remove a moved task's old message", "id", j.id, "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "r" {
		s.storing--
	}
	if code == "r" && !j.gone {
		j.pri = t.Priority
		s.setSeq(j, newSeq)
		s.makeReady(j)
		return nil
	}
	s.drop(j)
	return nil
}

// putBack makes a task whose move failed ready again.
func (s *Service) putBack(j *job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !j.gone && j.res == nil && j.hidx < 0 {
		s.makeReady(j)
	}
}
