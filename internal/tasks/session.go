package tasks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"pier/internal/store"
)

// Session is one puller's view of an app's queues — a beanstalkd
// connection: the tasks it holds reserved are its own, and go back to
// their queue when it closes.
type Session struct {
	s   *Service
	App string

	mu       sync.Mutex // guards reserved, closed
	reserved map[uint64]*reservation
	closed   bool
}

// Session starts a session on app's queues.
func (s *Service) Session(app string) *Session {
	return &Session{s: s, App: app, reserved: map[uint64]*reservation{}}
}

// reservation is a task taken by a session (or by a push delivery, with a
// nil owner). Its timer enforces the TTR and sends heartbeats that keep
// the consumer from delivering the task again meanwhile.
type reservation struct {
	s     *Service
	task  Task
	d     claim
	owner *Session

	mu       sync.Mutex // guards deadline, timer, done
	deadline time.Time
	timer    *time.Timer
	done     bool
}

// heartbeat is how often a long reservation restarts the ack wait.
func (s *Service) heartbeat() time.Duration { return s.opts.AckWait / 3 }

// claim is how a reservation holds its task: a consumer's delivery
// (*store.Delivery), or a task taken out of its queue by id (*held).
type claim interface {
	Ack(ctx context.Context) error // the task is done
	Nak(delay time.Duration) error // the task goes back, ready after delay
	InProgress() error             // the holder is still at it
}

var (
	_ claim = (*store.Delivery)(nil)
	_ claim = (*held)(nil)
)

// take registers a delivery as reserved by owner and starts its timer.
func (s *Service) take(d *store.Delivery, owner *Session) *reservation {
	t := taskFrom(d.Message)
	t.Attempt = d.Attempt
	return s.hold(t, d, owner)
}

// hold registers t, held through c, as reserved by owner.
func (s *Service) hold(t Task, c claim, owner *Session) *reservation {
	d := c
	t.State = StateReserved
	r := &reservation{s: s, task: t, d: d, owner: owner, deadline: time.Now().Add(time.Duration(t.TTR))}
	s.mu.Lock()
	s.reserved[t.ID] = r
	s.mu.Unlock()
	if owner != nil {
		owner.mu.Lock()
		owner.reserved[t.ID] = r
		owner.mu.Unlock()
	}
	r.mu.Lock()
	r.timer = time.AfterFunc(min(time.Duration(t.TTR), s.heartbeat()), r.tick)
	r.mu.Unlock()
	return r
}

// tick runs at a heartbeat or the deadline: past the TTR the task goes
// back to ready; before it, the consumer's ack wait restarts.
func (r *reservation) tick() {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	left := time.Until(r.deadline)
	if left > 0 {
		r.timer.Reset(min(left, r.s.heartbeat()))
		r.mu.Unlock()
		if err := r.d.InProgress(); err != nil {
			r.s.log.Debug("task heartbeat", "id", r.task.ID, "err", err)
		}
		return
	}
	r.mu.Unlock()
	if r.finish() {
		if r.owner != nil {
			r.s.countJob(r.task, func(c *jobCounts) { c.timeouts++ })
		}
		if err := r.d.Nak(0); err != nil {
			r.s.log.Warn("task ttr expired; hand back", "id", r.task.ID, "err", err)
		}
	}
}

// finish ends the reservation's bookkeeping once; false if already ended.
func (r *reservation) finish() bool {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return false
	}
	r.done = true
	r.timer.Stop()
	r.mu.Unlock()
	r.s.mu.Lock()
	if r.s.reserved[r.task.ID] == r {
		delete(r.s.reserved, r.task.ID)
	}
	r.s.mu.Unlock()
	if r.owner != nil {
		r.owner.mu.Lock()
		if r.owner.reserved[r.task.ID] == r {
			delete(r.owner.reserved, r.task.ID)
		}
		r.owner.mu.Unlock()
	}
	return true
}

// TimeLeft is how long until the reservation's TTR runs out.
func (r *reservation) timeLeft() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return max(time.Until(r.deadline), 0)
}

// Put enqueues a task on queue.
func (se *Session) Put(ctx context.Context, queue string, t NewTask) (uint64, error) {
	return se.s.Enqueue(ctx, se.App, queue, t)
}

// Reserve takes the next ready task of any of queues, waiting up to
// timeout for one (forever when negative; not at all when zero).
func (se *Session) Reserve(ctx context.Context, queues []string, timeout time.Duration) (Task, error) {
	qs := make([]*queue, 0, len(queues))
	for _, n := range queues {
		q, err := se.s.queue(ctx, se.App, n)
		if err != nil {
			return Task{}, err
		}
		qs = append(qs, q)
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		now := time.Now()
		wait := 5 * time.Second
		if !deadline.IsZero() {
			wait = min(wait, deadline.Sub(now))
		}
		soon, holding := se.soon()
		if holding && soon > 0 {
			wait = min(wait, max(soon, 10*time.Millisecond))
		}
		live := qs[:0:0]
		for _, q := range qs {
			if !q.paused(now) {
				live = append(live, q)
			}
		}
		if holding && soon <= 0 {
			// As beanstalkd: a ready task still wins over the warning.
			if len(live) > 0 {
				d, err := se.s.fetchAny(live, 0)
				if err != nil {
					return Task{}, err
				}
				if d != nil {
					return se.hold(d), nil
				}
			}
			return Task{}, ErrDeadlineSoon
		}
		if len(live) == 0 {
			if wait <= 0 {
				return Task{}, ErrTimeout
			}
			select {
			case <-ctx.Done():
				return Task{}, ctx.Err()
			case <-time.After(min(wait, 100*time.Millisecond)):
			}
			continue
		}
		d, err := se.s.fetchAny(live, max(wait, 0))
		if err != nil {
			return Task{}, err
		}
		if d != nil {
			return se.hold(d), nil
		}
		if ctx.Err() != nil {
			return Task{}, ctx.Err()
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return Task{}, ErrTimeout
		}
	}
}

// deadlineMargin is beanstalkd's safety margin: a reserve with nothing
// ready answers DEADLINE_SOON when a task the connection holds has less
// than this left of its TTR.
const deadlineMargin = time.Second

// soon returns how long until one of the session's reservations comes
// within deadlineMargin of its deadline (zero or less: it has), and false
// when the session holds none.
func (se *Session) soon() (time.Duration, bool) {
	se.mu.Lock()
	held := make([]*reservation, 0, len(se.reserved))
	for _, r := range se.reserved {
		held = append(held, r)
	}
	se.mu.Unlock()
	if len(held) == 0 {
		return 0, false
	}
	first := time.Duration(1<<63 - 1)
	for _, r := range held {
		first = min(first, r.timeLeft()-deadlineMargin)
	}
	return first, true
}

// hold records a delivery as this session's reservation.
func (se *Session) hold(d *store.Delivery) Task {
	r := se.s.take(d, se)
	se.mu.Lock()
	closed := se.closed
	se.mu.Unlock()
	if closed {
		se.Close()
	}
	return r.task
}

// fetchAny takes one message from the first of qs that has one, waiting
// up to wait. Several queues are waited on at once; any surplus goes
// straight back.
func (s *Service) fetchAny(qs []*queue, wait time.Duration) (*store.Delivery, error) {
	for _, q := range qs {
		w := time.Duration(0)
		if len(qs) == 1 {
			w = wait
		}
		d, err := s.next(q, w)
		if d != nil || err != nil {
			return d, err
		}
	}
	if len(qs) == 1 || wait == 0 {
		return nil, nil
	}
	type result struct {
		d   *store.Delivery
		err error
	}
	results := make(chan result, len(qs))
	for _, q := range qs {
		go func() {
			d, err := s.next(q, wait)
			results <- result{d, err}
		}()
	}
	var (
		first *store.Delivery
		ferr  error
	)
	for range qs {
		r := <-results
		switch {
		case r.err != nil:
			ferr = r.err
		case r.d != nil && first == nil:
			first = r.d
		case r.d != nil:
			r.d.Nak(0)
		}
	}
	if first != nil {
		return first, nil
	}
	return nil, ferr
}

// mine returns the session's reservation of id, or ErrNotFound.
func (se *Session) mine(id uint64) (*reservation, error) {
	se.mu.Lock()
	defer se.mu.Unlock()
	if r := se.reserved[id]; r != nil {
		return r, nil
	}
	return nil, ErrNotFound
}

// Delete removes a task: one this session reserved, or one nobody has
// reserved.
func (se *Session) Delete(ctx context.Context, id uint64) error {
	r, err := se.mine(id)
	if err != nil {
		return se.s.DeleteStored(ctx, se.App, id)
	}
	if !r.finish() {
		return ErrNotFound
	}
	if err := r.d.Ack(ctx); err != nil {
		return err
	}
	se.s.count(r.task, true)
	se.s.deleted(r.task)
	return nil
}

// count adds a finished task to its queue's rates.
func (s *Service) count(t Task, ok bool) {
	s.mu.Lock()
	q := s.queues[queueKey(t.App, t.Queue)]
	s.mu.Unlock()
	if q == nil {
		return
	}
	if ok {
		q.rates.done.add(time.Now(), 1)
	} else {
		q.rates.failed.add(time.Now(), 1)
	}
}

// Release hands a reserved task back with priority pri, ready again after
// delay. Without a delay or a new priority it is a nak; otherwise the task
// is stored again (delayed: a message schedule, like a delayed put), so
// it counts, peeks and kicks as delayed, and the delivery is acknowledged.
func (se *Session) Release(ctx context.Context, id uint64, pri uint32, delay time.Duration) error {
	r, err := se.mine(id)
	if err != nil {
		return err
	}
	if !r.finish() {
		return ErrNotFound
	}
	se.s.countJob(r.task, func(c *jobCounts) { c.releases++ })
	if delay <= 0 && pri == r.task.Priority {
		return r.d.Nak(0)
	}
	t := r.task
	t.Priority = pri
	if _, err := se.s.requeue(ctx, t, delay); err != nil {
		r.d.Nak(delay)
		return fmt.Errorf("tasks: release %d: %w", id, err)
	}
	return r.d.Ack(ctx)
}

// Bury moves a reserved task to its queue's buried (dead) set.
func (se *Session) Bury(ctx context.Context, id uint64, pri uint32) error {
	r, err := se.mine(id)
	if err != nil {
		return err
	}
	if !r.finish() {
		return ErrNotFound
	}
	t := r.task
	t.Priority = pri
	if err := se.s.bury(ctx, t, r.d); err != nil {
		return err
	}
	se.s.countJob(t, func(c *jobCounts) { c.buries++; c.buried = true })
	return nil
}

// bury stores t in its queue's dead set, then acknowledges its delivery.
func (s *Service) bury(ctx context.Context, t Task, d claim) error {
	if _, err := s.q.Put(ctx, subject(t.App, t.Queue, "x", t.ID), t.Body, t.header(), store.PutOptions{}); err != nil {
		d.Nak(0)
		return fmt.Errorf("tasks: bury %d: %w", t.ID, err)
	}
	return d.Ack(ctx)
}

// Touch gives a reserved task a fresh TTR.
func (se *Session) Touch(ctx context.Context, id uint64) error {
	r, err := se.mine(id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return ErrNotFound
	}
	r.deadline = time.Now().Add(time.Duration(r.task.TTR))
	r.mu.Unlock()
	return r.d.InProgress()
}

// Reserved returns the session's reservation of id with its time left.
func (se *Session) Reserved(id uint64) (Task, time.Duration, bool) {
	r, err := se.mine(id)
	if err != nil {
		return Task{}, 0, false
	}
	return r.task, r.timeLeft(), true
}

// TimeLeft returns how long a reserved task (by any session) has left.
func (s *Service) TimeLeft(id uint64) (time.Duration, bool) {
	s.mu.Lock()
	r := s.reserved[id]
	s.mu.Unlock()
	if r == nil {
		return 0, false
	}
	return r.timeLeft(), true
}

// Close hands every task the session holds back to its queue.
func (se *Session) Close() {
	se.mu.Lock()
	se.closed = true
	held := make([]*reservation, 0, len(se.reserved))
	for _, r := range se.reserved {
		held = append(held, r)
	}
	se.mu.Unlock()
	for _, r := range held {
		if r.finish() {
			if err := r.d.Nak(0); err != nil && !errors.Is(err, context.Canceled) {
				se.s.log.Debug("hand back task", "id", r.task.ID, "err", err)
			}
		}
	}
}
