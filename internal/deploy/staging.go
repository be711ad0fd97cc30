package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"pier/internal/api"
)

// A staging copy is the pre-release copy of an app that a Heroku pipeline
// keeps as a second app: `pier deploy --to staging` deploys to an app named
// api.StagingApp(app) ("blog-staging"), made on first use with the
// production app's config vars and marked StagingOf. Being an app of its
// own, it has its own releases, instances, token, queues, logs and errors,
// so trying a release there never touches production's traffic, tasks or
// data kept by pier; it is served at its own name only
// (blog-staging.<domain>), never at the manifest's domains. Its config vars
// are its own from then on (pier env set --app blog-staging).
//
// `pier promote --from staging` builds the bundle of the staging copy's
// current release as a new release of production, with production's config
// vars, in production's own directory (the build cache makes that quick),
// and rolls it out like any deploy: health checks before the swap, a drain
// after it. The staging copy keeps running.

// DeployStaging deploys bundle to the staging copy of app, making the copy
// first if app has none. app must exist (deployed at least once or being
// deployed): the copy starts with its config vars.
func (m *Manager) DeployStaging(ctx context.Context, app string, r io.Reader, emit func(api.Event)) (int, error) {
	stage, err := m.ensureStaging(ctx, app)
	if err != nil {
		return 0, err
	}
	return m.deploy(ctx, stage, r, 0, emit)
}

// ensureStaging returns the name of app's staging copy, making its record
// (config vars copied from app) when it has none yet.
func (m *Manager) ensureStaging(ctx context.Context, app string) (string, error) {
	if err := ValidName(app); err != nil {
		return "", err
	}
	stage := api.StagingApp(app)
	if ValidName(stage) != nil {
		return "", fmt.Errorf("%w: %s cannot have a staging copy: its name %s would be longer than 40 characters", api.ErrBadRequest, app, stage)
	}
	prod, err := m.getApp(ctx, app)
	if errors.Is(err, api.ErrNotFound) {
		return "", fmt.Errorf("%w: no app named %q: deploy it without --to staging first (its staging copy starts with its config vars)", api.ErrNotFound, app)
	}
	if err != nil {
		return "", err
	}
	if prod.StagingOf != "" {
		return "", fmt.Errorf("%w: %s is the staging copy of %s: deploy with --to staging to %s instead", api.ErrBadRequest, app, prod.StagingOf, prod.StagingOf)
	}
	_, err = modifyApp(ctx, m, stage, func(a *appRecord, exists bool) error {
		if exists {
			if a.StagingOf != app {
				return fmt.Errorf("%w: an app named %s exists and is not the staging copy of %s: destroy or rename it first", api.ErrConflict, stage, app)
			}
			return nil
		}
		now := time.Now().UTC()
		*a = appRecord{Name: stage, StagingOf: app, Config: maps.Clone(prod.Config),
			Token: stage + "." + newToken(), Created: now, Updated: now}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("making the staging copy of %s: %w", app, err)
	}
	return stage, nil
}

// PromoteFrom makes the current release of app's copy in environment from
// (only "staging" exists) app's current release: a new release of app
// built from the same bundle, with app's config vars, rolled out with
// zero downtime. App's canary, if any, must end first.
func (m *Manager) PromoteFrom(ctx context.Context, app, from string, emit func(api.Event)) (int, error) {
	if from != api.Staging {
		return 0, fmt.Errorf("%w: promote from %q: the only environment to promote from is %s", api.ErrBadRequest, from, api.Staging)
	}
	if err := ValidName(app); err != nil {
		return 0, err
	}
	stage := api.StagingApp(app)
	s, err := m.getApp(ctx, stage)
	if errors.Is(err, api.ErrNotFound) || (err == nil && s.StagingOf != app) {
		return 0, fmt.Errorf("%w: %s has no staging copy to promote (pier deploy --to staging makes one)", api.ErrBadRequest, app)
	}
	if err != nil {
		return 0, err
	}
	if s.Release == 0 {
		return 0, fmt.Errorf("%w: the staging copy %s has no working release yet", api.ErrBadRequest, stage)
	}
	staged, err := m.getRelease(ctx, stage, s.Release)
	if err != nil {
		return 0, err
	}

	ctx, unlock, err := m.begin(ctx, app)
	if err != nil {
		return 0, err
	}
	defer unlock()
	a, err := m.getApp(ctx, app)
	if err != nil {
		return 0, err
	}
	if a.Canary != 0 {
		return 0, fmt.Errorf("%w: %s has a canary (v%d): end it with pier promote or pier rollback first", api.ErrConflict, app, a.Canary)
	}
	n, err := m.allocRelease(ctx, app)
	if err != nil {
		return 0, err
	}
	e := &emitter{m: m, app: app, rel: n, send: emit}
	e.emit(api.EventBuild, "Promoting %s v%d (bundle %s) to %s v%d with the config vars of %s", stage, staged.Number, short(staged.Bundle), app, n, app)
	rel := &releaseRecord{
		Release: api.Release{
			App: app, Number: n, Bundle: staged.Bundle, Status: api.ReleaseBuilding,
			Cause: fmt.Sprintf("promote %s v%d", stage, staged.Number), Created: time.Now().UTC(),
		},
		Build:  n,
		Config: a.Config,
	}
	if err := m.putRelease(ctx, rel); err != nil {
		return 0, err
	}
	log := &lineWriter{e: e}
	err = m.buildFromStore(ctx, rel, log)
	log.flush()
	if err == nil {
		rel.Status = api.ReleaseReady
		err = m.putRelease(ctx, rel)
	}
	tail := log.tail
	if err == nil {
		err = m.rollout(ctx, rel, e)
		tail = LogTail(err)
	}
	if err != nil {
		err = fmt.Errorf("promote %s v%d to %s v%d: %w", stage, staged.Number, app, n, err)
		m.setReleaseStatus(context.WithoutCancel(ctx), app, n, api.ReleaseFailed, err.Error())
		e.event(api.Event{Type: api.EventError, Error: err.Error(), LogTail: tail})
		return n, &failure{err: err, tail: tail}
	}
	return n, nil
}

// buildFromStore unpacks and builds rel's bundle, already in the object
// store, into rel's directory, filling in rel.
func (m *Manager) buildFromStore(ctx context.Context, rel *releaseRecord, log *lineWriter) error {
	rc, err := m.cfg.Bundles.Get(ctx, rel.Bundle)
	if err != nil {
		return fmt.Errorf("reading bundle %s: %w", short(rel.Bundle), err)
	}
	defer rc.Close()
	return m.prepare(ctx, rel, rc, log)
}

// stagingOf returns the name of app's staging copy, or "" when it has none.
func (m *Manager) stagingOf(ctx context.Context, app string) string {
	stage := api.StagingApp(app)
	if ValidName(stage) != nil {
		return ""
	}
	if s, err := m.getApp(ctx, stage); err == nil && s.StagingOf == app {
		return stage
	}
	return ""
}

// destroyStaging destroys app's staging copy, if it has one; app is being
// destroyed.
func (m *Manager) destroyStaging(ctx context.Context, app string) error {
	stage := m.stagingOf(ctx, app)
	if stage == "" {
		return nil
	}
	if err := m.Destroy(ctx, stage); err != nil && !errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("destroying the staging copy %s of %s: %w", stage, app, err)
	}
	return nil
}
