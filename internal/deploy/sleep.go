package deploy

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"pier/internal/api"
)

// Activity tells when an app last got a request (zero: none seen).
type Activity interface {
	LastRequest(app string) time.Time
}

// setAwake records whether app is awake and sleeps while idle; m.mu must
// be held.
func (m *Manager) setAwake(app string, wakes bool) {
	if wakes {
		m.awake[app] = time.Now()
	} else {
		delete(m.awake, app)
	}
}

// Wake starts the web instances of an app that sleeps while idle, through
// the same reconcile as a scale change, and returns once the gateway routes
// them. An awake app returns at once. The start goes on when ctx ends
// first: other requests may be waiting for it.
func (m *Manager) Wake(ctx context.Context, app string) error {
	n, err := m.wake(ctx, app)
	if err != nil {
		return fmt.Errorf("wake %s: %w", app, err)
	}
	return m.cfg.Routes.WaitRouted(ctx, app, n)
}

func (m *Manager) wake(ctx context.Context, app string) (int, error) {
	unlock, err := m.lock(ctx, app)
	if err != nil {
		return 0, err
	}
	defer unlock()
	a, err := m.getApp(ctx, app)
	if err != nil {
		return 0, err
	}
	if a.Release == 0 || !a.Wake {
		return 0, fmt.Errorf("%w: %s is not started by requests", api.ErrConflict, app)
	}
	rel, err := m.getRelease(ctx, app, a.Release)
	if err != nil {
		return 0, err
	}
	if a.Asleep {
		a, err = modifyApp(ctx, m, app, func(a *appRecord, exists bool) error {
			if !exists {
				return fmt.Errorf("%w: no app named %q", api.ErrNotFound, app)
			}
			a.Asleep = false
			return nil
		})
		if err != nil {
			return 0, err
		}
		m.log.Info("starting a sleeping app for a request", "app", app, "release", rel.Number)
		e := &emitter{m: m, app: app, rel: rel.Number}
		e.emit(api.EventStart, "Starting %s v%d for a request", app, rel.Number)
	}
	m.mu.Lock()
	m.setAwake(app, true)
	m.mu.Unlock()
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()
	return rel.Number, m.reconcile(rctx, a, &rel)
}

// SleepIdle stops the web instances of awake apps that sleep while idle
// once none of their requests came for Config.IdleTimeout and none is in
// flight; it runs until ctx ends. The app record says they sleep, so a
// restore leaves them stopped and the router keeps their hosts (the next
// request starts them).
func (m *Manager) SleepIdle(ctx context.Context) {
	if m.cfg.Activity == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			m.log.Error("idle stop loop panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	every := min(max(m.cfg.IdleTimeout/5, 100*time.Millisecond), 30*time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		apps := make([]string, 0, len(m.awake))
		for app := range m.awake {
			apps = append(apps, app)
		}
		m.mu.Unlock()
		for _, app := range apps {
			if !m.idle(app) {
				continue
			}
			if err := m.sleep(ctx, app); err != nil && ctx.Err() == nil {
				m.log.Warn("stop idle app", "app", app, "err", err)
			}
		}
	}
}

// idle reports whether app went IdleTimeout without a request (counting
// from when it woke) and has none in flight.
func (m *Manager) idle(app string) bool {
	last := m.cfg.Activity.LastRequest(app)
	m.mu.Lock()
	if woke := m.awake[app]; woke.After(last) {
		last = woke
	}
	running := append([]*instance(nil), m.running[app]...)
	m.mu.Unlock()
	if time.Since(last) < m.cfg.IdleTimeout {
		return false
	}
	for _, in := range running {
		if in.addr != "" && m.cfg.Gateway.Outstanding(in.addr) > 0 {
			return false
		}
	}
	return true
}

// sleep stops app's web instances if it is still idle and sleeps while
// idle.
func (m *Manager) sleep(ctx context.Context, app string) error {
	unlock, err := m.lock(ctx, app)
	if err != nil {
		return err
	}
	defer unlock()
	a, err := m.getApp(ctx, app)
	if err != nil {
		return err
	}
	if !a.Wake || a.Asleep || a.Canary != 0 {
		if !a.Wake || a.Asleep {
			m.mu.Lock()
			m.setAwake(app, false)
			m.mu.Unlock()
		}
		return nil
	}
	if !m.idle(app) { // a request came while this waited for the lock
		return nil
	}
	rel, err := m.getRelease(ctx, app, a.Release)
	if err != nil {
		return err
	}
	a, err = modifyApp(ctx, m, app, func(a *appRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: no app named %q", api.ErrNotFound, app)
		}
		a.Asleep = true
		return nil
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.setAwake(app, false)
	m.mu.Unlock()
	m.log.Info("stopping an idle app; its next request starts it", "app", app, "idle", m.cfg.IdleTimeout)
	e := &emitter{m: m, app: app, rel: rel.Number}
	e.emit(api.EventStop, "Stopping %s after %v without requests; the next request starts it", app, m.cfg.IdleTimeout)
	return m.reconcile(ctx, a, &rel)
}
