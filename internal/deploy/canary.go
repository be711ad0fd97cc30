package deploy

import (
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"pier/internal/api"
)

// DeployCanary deploys like Deploy, but the new release becomes a canary:
// its web instances get percent of the app's new clients (each client keeps
// its group through a cookie) while the current release keeps the rest and
// stays current. Promote makes it current; Rollback ends it.
func (m *Manager) DeployCanary(ctx context.Context, app string, r io.Reader, percent float64, emit func(api.Event)) (int, error) {
	if !(percent > 0 && percent < 100) {
		return 0, fmt.Errorf("%w: canary share %v%%: want more than 0 and less than 100", api.ErrBadRequest, percent)
	}
	return m.deploy(ctx, app, r, max(1, int(math.Round(percent*100))), emit)
}

// canCanary says why app cannot take a canary, if it cannot.
func canCanary(a appRecord) error {
	switch {
	case a.Release == 0:
		return fmt.Errorf("%w: %s has no release to compare a canary with: deploy it without --canary first", api.ErrBadRequest, a.Name)
	case a.Canary != 0:
		return fmt.Errorf("%w: %s has a canary already (v%d): end it with pier promote or pier rollback first", api.ErrConflict, a.Name, a.Canary)
	}
	return nil
}

// rolloutCanary starts rel's web instances beside the current release's,
// waits until they are healthy and routes weight basis points of new
// clients to them. Other process types keep running the current release
// until a promote. When it fails, the new instances are stopped and nothing
// else changed.
func (m *Manager) rolloutCanary(ctx context.Context, rel *releaseRecord, weight int, e *emitter) error {
	a, err := m.getApp(ctx, rel.App)
	if err != nil {
		return err
	}
	if err := canCanary(a); err != nil {
		return err
	}
	if _, ok := rel.Processes["web"]; !ok {
		return fmt.Errorf("%w: v%d has no web process to send a share of traffic to", api.ErrBadRequest, rel.Number)
	}
	a.Asleep = false
	if err := m.checkHosts(ctx, a, rel); err != nil {
		return err
	}
	fresh, _, err := m.launch(ctx, a, rel, nil, []string{"web"}, e)
	if err != nil {
		return err
	}
	_, err = modifyApp(ctx, m, rel.App, func(a *appRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: app %s was destroyed during the deploy", api.ErrConflict, rel.App)
		}
		if err := canCanary(*a); err != nil {
			return err
		}
		a.Canary, a.CanaryWeight = rel.Number, weight
		a.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		m.stopAll(fresh)
		return err
	}
	m.setReleaseStatus(ctx, rel.App, rel.Number, api.ReleaseCanary, "")
	m.mu.Lock()
	m.canaries[rel.App] = fresh
	m.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = m.cfg.Routes.WaitRouted(wctx, rel.App, rel.Number)
	cancel()
	share := float64(weight) / 100
	if err != nil {
		e.emit(api.EventSwap, "v%d is the canary but not routed yet: %v", rel.Number, err)
	} else {
		e.emit(api.EventSwap, "Routing %g%% of new clients of %s to v%d, the rest to v%d", share, rel.App, rel.Number, a.Release)
	}
	e.event(api.Event{Type: api.EventDone, Message: fmt.Sprintf(
		"%s v%d is live for %g%% of clients; pier promote makes it current, pier rollback ends it", rel.App, rel.Number, share)})
	return nil
}

// Promote makes the app's canary its current release: it starts the rest
// of the canary's instances (other process types, more web instances if
// the scale asks), swaps, then drains and stops the previous release.
func (m *Manager) Promote(ctx context.Context, app string, emit func(api.Event)) (int, error) {
	ctx, unlock, err := m.begin(ctx, app)
	if err != nil {
		return 0, err
	}
	defer unlock()
	a, err := m.getApp(ctx, app)
	if err != nil {
		return 0, err
	}
	if a.Canary == 0 {
		return 0, fmt.Errorf("%w: %s has no canary to promote (pier deploy --canary 10%% starts one)", api.ErrBadRequest, app)
	}
	rel, err := m.getRelease(ctx, app, a.Canary)
	if err != nil {
		return 0, err
	}
	e := &emitter{m: m, app: app, rel: rel.Number, send: emit}
	e.emit(api.EventBuild, "Promoting v%d, the canary, to current release of %s", rel.Number, app)
	m.mu.Lock()
	have := m.canaries[app]
	m.mu.Unlock()
	a.Asleep = false
	err = m.checkHosts(ctx, a, &rel)
	var fresh, started []*instance
	if err == nil {
		fresh, started, err = m.launch(ctx, a, &rel, have, processTypes(&rel), e)
	}
	if err == nil {
		if err = m.swap(ctx, &rel, fresh, e); err != nil {
			m.stopAll(started)
		}
	}
	if err != nil {
		e.event(api.Event{Type: api.EventError, Error: err.Error(), LogTail: LogTail(err)})
		return rel.Number, &failure{err: fmt.Errorf("promote %s v%d: %w", app, rel.Number, err), tail: LogTail(err)}
	}
	return rel.Number, nil
}

// endCanary stops the app's canary: every client goes back to the current
// release, and the canary's instances are drained and stopped. It returns
// the current release.
func (m *Manager) endCanary(ctx context.Context, app string, emit func(api.Event)) (int, error) {
	ctx, unlock, err := m.begin(ctx, app)
	if err != nil {
		return 0, err
	}
	defer unlock()
	var canary int
	a, err := modifyApp(ctx, m, app, func(a *appRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: no app named %q", api.ErrNotFound, app)
		}
		if a.Canary == 0 {
			return fmt.Errorf("%w: %s has no canary any more", api.ErrConflict, app)
		}
		canary = a.Canary
		a.Canary, a.CanaryWeight = 0, 0
		a.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		return 0, err
	}
	e := &emitter{m: m, app: app, rel: a.Release, send: emit}
	m.setReleaseStatus(ctx, app, canary, api.ReleaseRetired, "canary ended by a rollback")
	e.emit(api.EventSwap, "Routing every client of %s to v%d again", app, a.Release)
	m.mu.Lock()
	old := m.canaries[app]
	delete(m.canaries, app)
	m.mu.Unlock()
	if len(old) > 0 {
		e.emit(api.EventDrain, "Draining %d instance(s) of v%d", len(old), canary)
		m.retire(ctx, old)
		e.emit(api.EventStop, "Stopped v%d", canary)
	}
	e.event(api.Event{Type: api.EventDone, Message: fmt.Sprintf("%s v%d serves every client; the canary v%d is stopped", app, a.Release, canary)})
	return a.Release, nil
}

// restoreCanary starts the web instances of app's canary again after an
// engine start. m's lock of the app is held.
func (m *Manager) restoreCanary(ctx context.Context, a appRecord) error {
	rel, err := m.getRelease(ctx, a.Name, a.Canary)
	if err != nil {
		return err
	}
	e := &emitter{m: m, app: a.Name, rel: rel.Number}
	if err := m.ensureBuilt(ctx, &rel, &lineWriter{e: e}); err != nil {
		return err
	}
	a.Asleep = false
	fresh, _, err := m.launch(ctx, a, &rel, nil, []string{"web"}, e)
	if err != nil {
		return fmt.Errorf("restore canary v%d: %w", rel.Number, err)
	}
	m.mu.Lock()
	m.canaries[a.Name] = fresh
	m.mu.Unlock()
	return nil
}
