package tasks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// Headers of a push delivery.
const (
	HeaderQueue   = "X-Pier-Queue"
	HeaderTaskID  = "X-Pier-Task-Id"
	HeaderAttempt = "X-Pier-Attempt"
	HeaderETA     = "X-Pier-ETA"
	HeaderName    = "X-Pier-Task-Name"
)

// pusher delivers one push queue's tasks to its app.
type pusher struct {
	conf   QueueConfig
	cancel context.CancelFunc
	done   chan struct{}
}

// Configure applies app's declared queues (from its manifest): their
// settings are stored, push delivery starts, changes or stops to match,
// and the app's cron schedules are replaced by crons.
func (s *Service) Configure(ctx context.Context, app string, queues map[string]QueueConfig, crons []Cron) error {
	for name, c := range queues {
		c.Declared = true
		conf, err := s.setConfig(ctx, app, name, func(old *QueueConfig) {
			c.PausedUntil = old.PausedUntil
			*old = c
		})
		if err != nil {
			return err
		}
		queues[name] = conf
	}
	if err := s.configureCron(ctx, app, crons); err != nil {
		return err
	}
	s.stopPushers(app, queues)
	for name, c := range queues {
		if c.Push != "" {
			if err := s.startPusher(ctx, app, name, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopPushers stops app's pushers that keep is missing or changed (all
// with a nil keep).
func (s *Service) stopPushers(app string, keep map[string]QueueConfig) {
	s.mu.Lock()
	var stop []*pusher
	for key, p := range s.pushers {
		qa, qn := splitKey(key)
		if qa != app {
			continue
		}
		if c, ok := keep[qn]; ok && c.Push != "" && sameDelivery(c, p.conf) {
			continue
		}
		stop = append(stop, p)
		delete(s.pushers, key)
	}
	s.mu.Unlock()
	for _, p := range stop {
		p.cancel()
		<-p.done
	}
}

func sameDelivery(a, b QueueConfig) bool {
	a.PausedUntil, b.PausedUntil = time.Time{}, time.Time{}
	return a == b
}

func splitKey(key string) (app, name string) {
	for i := range len(key) {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}

func (s *Service) startPusher(ctx context.Context, app, name string, c QueueConfig) error {
	key := queueKey(app, name)
	s.mu.Lock()
	_, running := s.pushers[key]
	base := s.ctx
	s.mu.Unlock()
	if running {
		return nil
	}
	q, err := s.queue(ctx, app, name)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(base)
	p := &pusher{conf: c, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.pushers[key] = p
	s.mu.Unlock()
	go func() {
		defer close(p.done)
		s.runPusher(pctx, q, c)
	}()
	return nil
}

func (s *Service) stopAll() {
	s.mu.Lock()
	ps := make([]*pusher, 0, len(s.pushers))
	for key, p := range s.pushers {
		ps = append(ps, p)
		delete(s.pushers, key)
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.cancel()
		<-p.done
	}
}

// runPusher takes tasks from q while slots and the rate allow, and POSTs
// each to the app.
func (s *Service) runPusher(ctx context.Context, q *queue, c QueueConfig) {
	log := s.log.With("app", q.app, "queue", q.name)
	defer func() {
		if v := recover(); v != nil {
			log.Error("push delivery crashed", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	slots := make(chan struct{}, c.concurrency())
	var lim *rate.Limiter
	if c.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(c.Rate), 1)
	}
	w := &waiter{ch: make(chan struct{}, 1)}
	s.mu.Lock()
	q.waiters[w] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(q.waiters, w)
		s.mu.Unlock()
	}()
	for ctx.Err() == nil {
		if left := time.Until(q.config().PausedUntil); left > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(min(left, 200*time.Millisecond)):
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		if lim != nil && lim.Wait(ctx) != nil {
			<-slots
			continue
		}
		var r *reservation
		for r == nil && ctx.Err() == nil && !q.paused(time.Now()) {
			s.mu.Lock()
			if len(q.ready) > 0 {
				r = s.reserve(q.ready[0].j, nil, time.Now())
			}
			s.mu.Unlock()
			if r == nil {
				select {
				case <-ctx.Done():
				case <-w.ch:
				case <-time.After(time.Second):
				}
			}
		}
		if r == nil {
			<-slots
			continue
		}
		go func() {
			defer func() { <-slots }()
			s.push(ctx, q, c, r)
		}()
	}
	// Wait for deliveries in flight.
	for range cap(slots) {
		slots <- struct{}{}
	}
}

// push delivers one task: 2xx is done, anything else a retry after a
// backoff, or the dead set after the last attempt.
func (s *Service) push(ctx context.Context, q *queue, c QueueConfig, r *reservation) {
	s.mu.Lock()
	j := r.j
	t := j.task()
	s.mu.Unlock()
	if err := s.withBody(ctx, j, &t); err != nil {
		s.log.Warn("push task", "id", t.ID, "err", err)
		s.unreserve(r, err)
		return
	}
	status, err := s.post(ctx, q.app, c.Push, t)
	s.mu.Lock()
	if j.res != r {
		s.mu.Unlock()
		return // the TTR ran out first; the task is ready again
	}
	if ctx.Err() != nil {
		r.end()
		s.makeReady(j)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	bg := context.WithoutCancel(ctx)
	if err == nil && status/100 == 2 {
		if err := s.deleteTask(bg, q.app, t.ID, func(held *reservation) bool { return held == r }); err != nil {
			s.log.Warn("delete pushed task", "id", t.ID, "err", err)
		}
		return
	}
	q.rates.failed.add(time.Now(), 1)
	reason := fmt.Sprintf("answered %d", status)
	if err != nil {
		reason = err.Error()
	}
	s.mu.Lock()
	r.end()
	s.mu.Unlock()
	if t.Attempt >= c.attempts() {
		msg := fmt.Sprintf("attempt %d of %d: %s", t.Attempt, c.attempts(), reason)
		s.log.Info("task is dead", "app", q.app, "queue", q.name, "id", t.ID, "reason", msg)
		if err := s.move(bg, j, "x", 0, func(t *Task) { t.Error = msg }); err != nil {
			s.log.Warn("move task to the dead set", "id", t.ID, "err", err)
		}
		return
	}
	if err := s.move(bg, j, "d", c.backoff(t.Attempt), func(*Task) {}); err != nil {
		s.log.Warn("retry task later", "id", t.ID, "err", err)
	}
}

// post sends a task to the app through the gateway.
func (s *Service) post(ctx context.Context, app, path string, t Task) (int, error) {
	if t.path != "" {
		path = t.path
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.PushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.GatewayURL+path, bytes.NewReader(t.Body))
	if err != nil {
		return 0, err
	}
	req.Host = app + "." + s.opts.Domain
	eta := t.ETA
	if eta.IsZero() {
		eta = t.Created
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(HeaderQueue, t.Queue)
	req.Header.Set(HeaderTaskID, strconv.FormatUint(t.ID, 10))
	req.Header.Set(HeaderAttempt, strconv.Itoa(t.Attempt))
	req.Header.Set(HeaderETA, eta.UTC().Format(time.RFC3339Nano))
	if t.Name != "" {
		req.Header.Set(HeaderName, t.Name)
	}
	resp, err := s.opts.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode, nil
}
