package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pier/internal/store"
)

// QueueConfig is a queue's stored settings: from the manifest's queues:
// entry, or defaults for a queue created on first use.
type QueueConfig struct {
	Push        string    `json:"push,omitempty"`        // path tasks are POSTed to; "" = pull only
	Rate        float64   `json:"rate,omitempty"`        // push deliveries started per second; 0 = no limit
	Concurrency int       `json:"concurrency,omitempty"` // push deliveries at once; 0 = 10
	Attempts    int       `json:"attempts,omitempty"`    // push tries before the dead set; 0 = 5
	MinBackoff  Duration  `json:"min_backoff,omitempty"` // first retry delay; 0 = 1s
	MaxBackoff  Duration  `json:"max_backoff,omitempty"` // longest retry delay; 0 = 10m
	PausedUntil time.Time `json:"paused_until,omitzero"` // no delivery before this time
	Declared    bool      `json:"declared,omitempty"`    // named in the manifest
}

func (c QueueConfig) attempts() int {
	if c.Attempts <= 0 {
		return 5
	}
	return c.Attempts
}

func (c QueueConfig) concurrency() int {
	if c.Concurrency <= 0 {
		return 10
	}
	return c.Concurrency
}

// backoff is the delay before try attempt+1: MinBackoff doubled per
// attempt, capped at MaxBackoff.
func (c QueueConfig) backoff(attempt int) time.Duration {
	lo, hi := time.Duration(c.MinBackoff), time.Duration(c.MaxBackoff)
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 10 * time.Minute
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// queue is one app queue's runtime: its ready tasks and cached settings.
type queue struct {
	app, name string
	rates     meters

	// Guarded by Service.mu.
	ready     readyHeap            // ready tasks, most urgent first
	stored    storedHeap           // stream sequences of its tasks on r.*, for purges
	urgent    int                  // ready tasks with a priority under 1024
	nreserved int                  // reserved tasks
	waiters   map[*waiter]struct{} // reserves and push dispatchers waiting for a task
	// Since this engine started: tasks deleted by id (beanstalkd
	// cmd-delete), and pauses (cmd-pause-tube).
	deletes, pauses atomic.Int64

	mu   sync.Mutex // guards conf
	conf QueueConfig
}

func (q *queue) config() QueueConfig {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.conf
}

func (q *queue) paused(now time.Time) bool {
	return now.Before(q.config().PausedUntil)
}

func queueKey(app, name string) string { return app + "/" + name }

func confKey(app, name string) string { return app + "." + name }

// qkey keys Service.queues: a struct, not queueKey's string, so that
// looking a queue up on every put and reserve allocates nothing.
type qkey struct{ app, name string }

// queue returns the runtime of app's queue, creating the queue (its
// stored settings) on first use.
func (s *Service) queue(ctx context.Context, app, name string) (*queue, error) {
	key := qkey{app, name}
	s.mu.Lock()
	q := s.queues[key]
	s.mu.Unlock()
	if q != nil {
		return q, nil
	}
	if err := ValidQueue(name); err != nil {
		return nil, err
	}
	var conf QueueConfig
	if _, err := store.GetJSON(ctx, s.confs, confKey(app, name), &conf); errors.Is(err, store.ErrNotFound) {
		b, _ := json.Marshal(conf)
		if _, err := s.confs.Create(ctx, confKey(app, name), b); err != nil && !errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("tasks: create queue %s/%s: %w", app, name, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("tasks: queue %s/%s: %w", app, name, err)
	}
	// Earlier engines delivered through a durable consumer per queue;
	// the index does that now.
	if err := s.q.DeleteConsumer(ctx, app+"_"+name); err != nil {
		return nil, fmt.Errorf("tasks: queue %s/%s: %w", app, name, err)
	}
	q = &queue{app: app, name: name, conf: conf, waiters: map[*waiter]struct{}{}}
	s.mu.Lock()
	if old := s.queues[key]; old != nil {
		q = old
	} else {
		s.queues[key] = q
	}
	s.mu.Unlock()
	return q, nil
}

// setConfig changes a queue's stored settings with fn.
func (s *Service) setConfig(ctx context.Context, app, name string, fn func(c *QueueConfig)) (QueueConfig, error) {
	q, err := s.queue(ctx, app, name)
	if err != nil {
		return QueueConfig{}, err
	}
	conf, err := store.Modify(ctx, s.confs, confKey(app, name), func(c *QueueConfig, _ bool) error {
		fn(c)
		return nil
	})
	if err != nil {
		return QueueConfig{}, fmt.Errorf("tasks: queue %s/%s: %w", app, name, err)
	}
	q.mu.Lock()
	q.conf = conf
	q.mu.Unlock()
	return conf, nil
}

// Pause stops delivery (push and reserve) from app's queue for d; enqueues
// still work. A zero d resumes.
func (s *Service) Pause(ctx context.Context, app, name string, d time.Duration) error {
	until := time.Time{}
	if d > 0 {
		until = time.Now().Add(d)
	}
	if _, err := s.setConfig(ctx, app, name, func(c *QueueConfig) { c.PausedUntil = until }); err != nil {
		return err
	}
	if q, err := s.queue(ctx, app, name); err == nil {
		q.pauses.Add(1)
		s.mu.Lock()
		q.wake() // a resume: waiting reserves look again
		s.mu.Unlock()
	}
	return nil
}

// QueueNames lists app's queues, sorted.
func (s *Service) QueueNames(ctx context.Context, app string) ([]string, error) {
	keys, err := s.confs.Keys(ctx, app+".*")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("tasks: list queues: %w", err)
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, n, ok := strings.Cut(k, "."); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// QueueStats are one queue's figures.
type QueueStats struct {
	Name     string `json:"name"`
	Ready    int    `json:"ready"`
	Reserved int    `json:"reserved"`
	Delayed  int    `json:"delayed"`
	Buried   int    `json:"dead"`
	Waiting  int    `json:"waiting"`
	// Per second over the last minute, as seen by this engine: enqueued,
	// done (deleted, or pushed with a 2xx), failed (push errors).
	EnqueueRate float64 `json:"enqueue_rate"`
	DoneRate    float64 `json:"done_rate"`
	FailRate    float64 `json:"fail_rate"`
	// Since this engine started: tasks deleted by id, and pauses.
	Deletes   int64       `json:"deletes"`
	Pauses    int64       `json:"pauses"`
	Paused    bool        `json:"paused"`
	PauseLeft Duration    `json:"pause_left,omitempty"`
	Config    QueueConfig `json:"config"`
}

// Stats returns a queue's figures.
func (s *Service) Stats(ctx context.Context, app, name string) (QueueStats, error) {
	q, err := s.queue(ctx, app, name)
	if err != nil {
		return QueueStats{}, err
	}
	now := time.Now()
	st := QueueStats{Name: name, Config: q.config(),
		EnqueueRate: q.rates.enqueued.rate(now), DoneRate: q.rates.done.rate(now), FailRate: q.rates.failed.rate(now),
		Deletes: q.deletes.Load(), Pauses: q.pauses.Load()}
	s.mu.Lock()
	st.Ready, st.Reserved, st.Waiting = len(q.ready), q.nreserved, len(q.waiters)
	s.mu.Unlock()
	prefix := "tasks." + app + "." + name
	if st.Delayed, err = s.q.Count(ctx, prefix+".d.*"); err != nil {
		return st, err
	}
	if st.Buried, err = s.q.Count(ctx, prefix+".x.*"); err != nil {
		return st, err
	}
	if left := time.Until(st.Config.PausedUntil); left > 0 {
		st.Paused, st.PauseLeft = true, Duration(left)
	}
	return st, nil
}

// Lookup finds app's task by id, wherever it is.
func (s *Service) Lookup(ctx context.Context, app string, id uint64) (Task, error) {
	s.mu.Lock()
	j := s.jobs[id]
	_, deleted := s.tomb[id]
	var t Task
	if j != nil && j.q.app == app {
		t = j.task()
	}
	s.mu.Unlock()
	if t.ID != 0 {
		err := s.withBody(ctx, j, &t) // before t is read for the return
		return t, err
	}
	if deleted {
		return Task{}, ErrNotFound
	}
	m, err := s.q.Last(ctx, fmt.Sprintf("tasks.%s.*.*.%d", app, id))
	if errors.Is(err, store.ErrNotFound) {
		// Cron-made tasks are known by their stream sequence.
		m, err = s.q.Get(ctx, id)
		if err != nil || !strings.HasPrefix(m.Subject, "tasks."+app+".") {
			err = store.ErrNotFound
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return Task{}, ErrNotFound
	}
	if err != nil {
		return Task{}, err
	}
	return taskFrom(m), nil
}

// Peek returns the first task of a queue in state: the most urgent ready
// one, or the oldest delayed or buried one; ErrNotFound when there is
// none.
func (s *Service) Peek(ctx context.Context, app, name, state string) (Task, error) {
	if state == StateReady {
		q, err := s.queue(ctx, app, name)
		if err != nil {
			return Task{}, err
		}
		s.mu.Lock()
		if len(q.ready) == 0 {
			s.mu.Unlock()
			return Task{}, ErrNotFound
		}
		j := q.ready[0].j
		t := j.task()
		s.mu.Unlock()
		err = s.withBody(ctx, j, &t) // before t is read for the return
		return t, err
	}
	code := map[string]string{StateDelayed: "d", StateBuried: "x"}[state]
	if code == "" {
		return Task{}, fmt.Errorf("tasks: peek: bad state %q", state)
	}
	m, err := s.q.Next(ctx, "tasks."+app+"."+name+"."+code+".*", 1)
	if errors.Is(err, store.ErrNotFound) {
		return Task{}, ErrNotFound
	}
	if err != nil {
		return Task{}, err
	}
	return taskFrom(m), nil
}

// Kick moves up to n buried tasks of a queue back to ready; when none is
// buried, up to n delayed ones. It returns how many moved.
func (s *Service) Kick(ctx context.Context, app, name string, n int) (int, error) {
	moved, err := s.kickState(ctx, app, name, "x", n)
	if moved > 0 || err != nil {
		return moved, err
	}
	return s.kickState(ctx, app, name, "d", n)
}

// kickState moves up to n tasks in state code ("x" or "d") to ready.
func (s *Service) kickState(ctx context.Context, app, name, code string, n int) (int, error) {
	subj := "tasks." + app + "." + name + "." + code + ".*"
	moved := 0
	var seq uint64 = 1
	for moved < n {
		m, err := s.q.Next(ctx, subj, seq)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return moved, err
		}
		seq = m.Seq + 1
		ok, err := s.kick(ctx, m)
		if err != nil {
			return moved, err
		}
		if ok {
			moved++
		}
	}
	return moved, nil
}

// KickTask moves one buried or delayed task back to ready.
func (s *Service) KickTask(ctx context.Context, app string, id uint64) error {
	t, err := s.Lookup(ctx, app, id)
	if err != nil {
		return err
	}
	if t.State != StateBuried && t.State != StateDelayed {
		return ErrNotFound
	}
	m, err := s.q.Get(ctx, t.seq)
	if err != nil {
		return ErrNotFound
	}
	if ok, err := s.kick(ctx, m); err != nil {
		return err
	} else if !ok {
		return ErrNotFound
	}
	return nil
}

// kick moves a buried or delayed message to ready. The old message goes
// first, so a schedule cannot fire beside the copy.
func (s *Service) kick(ctx context.Context, m store.Message) (bool, error) {
	_, ok, err := s.toReady(ctx, m, true)
	return ok, err
}

// toReady moves a buried or delayed message to ready, stores it and
// indexes it (a kick counts when kicked); false when it was gone already.
func (s *Service) toReady(ctx context.Context, m store.Message, kicked bool) (*job, bool, error) {
	t := taskFrom(m)
	q, err := s.queue(ctx, t.App, t.Queue)
	if err != nil {
		return nil, false, err
	}
	t.Error = ""
	t.Attempt = 0
	if kicked {
		t.Kicks++
	}
	if err := s.q.Delete(ctx, m.Seq); errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	s.beginStore()
	seq, err := s.store(ctx, t, "r", 0)
	if err != nil {
		s.endStore()
		return nil, false, fmt.Errorf("tasks: kick %d: %w", t.ID, err)
	}
	t.seq, t.onR = seq, true
	j := jobFrom(t, q)
	s.mu.Lock()
	s.storing--
	s.index(j)
	s.mu.Unlock()
	return j, true, nil
}

// DeleteStored deletes a task that nobody has reserved (ready, delayed,
// buried). A reserved task is ErrNotFound, as in beanstalkd.
func (s *Service) DeleteStored(ctx context.Context, app string, id uint64) error {
	return s.deleteTask(ctx, app, id, nil)
}

// deleteStored deletes a delayed or buried task (or a fired schedule
// copy not indexed yet) from the stream.
func (s *Service) deleteStored(ctx context.Context, app string, id uint64) error {
	t, err := s.Lookup(ctx, app, id)
	if err != nil {
		return err
	}
	if t.State == StateReserved {
		return ErrNotFound
	}
	if err := s.q.Delete(ctx, t.seq); errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	} else if err != nil {
		return err
	}
	s.mu.Lock()
	q := s.queues[qkey{app, t.Queue}]
	s.mu.Unlock()
	if q != nil {
		q.deletes.Add(1)
	}
	return nil
}

// Dead lists up to limit dead (buried) tasks of a queue, oldest first.
func (s *Service) Dead(ctx context.Context, app, name string, limit int) ([]Task, error) {
	subj := "tasks." + app + "." + name + ".x.*"
	var out []Task
	var seq uint64 = 1
	for len(out) < limit {
		m, err := s.q.Next(ctx, subj, seq)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return out, err
		}
		out = append(out, taskFrom(m))
		seq = m.Seq + 1
	}
	return out, nil
}

// DropApp removes every task and queue of app (the app was destroyed).
func (s *Service) DropApp(ctx context.Context, app string) error {
	names, err := s.QueueNames(ctx, app)
	if err != nil {
		return err
	}
	s.stopPushers(app, nil)
	s.mu.Lock()
	for _, j := range s.jobs {
		if j.q.app == app {
			s.drop(j)
		}
	}
	for _, n := range names {
		delete(s.queues, qkey{app, n})
	}
	s.mu.Unlock()
	// Journaled puts of the app are stored (or skipped, as dropped)
	// before the purge, so none comes back after it.
	if err := s.drainWait(ctx); err != nil {
		return err
	}
	for _, n := range names {
		s.confs.Delete(ctx, confKey(app, n))
	}
	return s.q.Purge(ctx, "tasks."+app+".>")
}

// KickDead moves every dead (buried) task of a queue back to ready.
func (s *Service) KickDead(ctx context.Context, app, name string) (int, error) {
	total := 0
	for {
		n, err := s.kickState(ctx, app, name, "x", 1000)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// DropDead deletes every dead (buried) task of a queue.
func (s *Service) DropDead(ctx context.Context, app, name string) (int, error) {
	subj := "tasks." + app + "." + name + ".x.*"
	n, err := s.q.Count(ctx, subj)
	if err != nil {
		return 0, err
	}
	if err := s.q.Purge(ctx, subj); err != nil {
		return 0, err
	}
	return n, nil
}
