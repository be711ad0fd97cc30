package deploy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"time"

	"pier/internal/api"
	"pier/internal/build"
	"pier/internal/bundle"
	"pier/internal/manifest"
)

// Deploy stores bundle, builds it as a new release of app and rolls it out.
// Progress goes to emit as it happens. On any failure the current release
// keeps serving and the returned error carries the log tail (LogTail).
func (m *Manager) Deploy(ctx context.Context, app string, r io.Reader, emit func(api.Event)) (int, error) {
	return m.deploy(ctx, app, r, 0, emit)
}

// deploy is Deploy; a canary weight above 0 (basis points) rolls the new
// release out as a canary beside the current one (see DeployCanary).
func (m *Manager) deploy(ctx context.Context, app string, r io.Reader, canary int, emit func(api.Event)) (int, error) {
	if err := ValidName(app); err != nil {
		return 0, err
	}
	e := &emitter{m: m, app: app, send: emit}

	// Receive the whole bundle before anything else: the client's request
	// ends here, the deploy itself runs on the engine's context.
	tmp, sum, err := m.spool(r)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	ctx, unlock, err := m.begin(ctx, app)
	if err != nil {
		return 0, err
	}
	defer unlock()

	if ok, err := m.cfg.Bundles.Has(ctx, sum); err != nil {
		return 0, err
	} else if !ok {
		f, err := os.Open(tmp)
		if err != nil {
			return 0, fmt.Errorf("deploy %s: %w", app, err)
		}
		err = m.cfg.Bundles.Put(ctx, sum, f)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("deploy %s: store bundle: %w", app, err)
		}
	}

	a, err := m.ensureApp(ctx, app)
	if err != nil {
		return 0, err
	}
	if canary > 0 {
		if err := canCanary(a); err != nil {
			return 0, err
		}
	}
	n, err := m.allocRelease(ctx, app)
	if err != nil {
		return 0, err
	}
	e.rel = n
	e.emit(api.EventBuild, "Received bundle %s", sum[:12])
	rel := &releaseRecord{
		Release: api.Release{
			App: app, Number: n, Bundle: sum, Status: api.ReleaseBuilding,
			Cause: "deploy", Created: time.Now().UTC(),
		},
		Build:  n,
		Config: a.Config,
	}
	if err := m.putRelease(ctx, rel); err != nil {
		return 0, err
	}
	fail := func(err error, tail []string) (int, error) {
		m.setReleaseStatus(context.WithoutCancel(ctx), app, n, api.ReleaseFailed, err.Error())
		e.event(api.Event{Type: api.EventError, Error: err.Error(), LogTail: tail})
		return n, &failure{err: err, tail: tail}
	}

	f, err := os.Open(tmp)
	if err != nil {
		return fail(fmt.Errorf("deploy %s: %w", app, err), nil)
	}
	defer f.Close()
	log := &lineWriter{e: e}
	if err := m.prepare(ctx, rel, f, log); err != nil {
		log.flush()
		return fail(fmt.Errorf("deploy %s v%d: %w", app, n, err), log.tail)
	}
	log.flush()
	rel.Status = api.ReleaseReady
	if err := m.putRelease(ctx, rel); err != nil {
		return fail(err, nil)
	}
	if canary > 0 {
		err = m.rolloutCanary(ctx, rel, canary, e)
	} else {
		err = m.rollout(ctx, rel, e)
	}
	if err != nil {
		return fail(err, LogTail(err))
	}
	return n, nil
}

// spool copies the bundle to a temporary file, hashing it on the way.
func (m *Manager) spool(r io.Reader) (path, sum string, err error) {
	dir := filepath.Join(m.cfg.Home, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	f, err := os.CreateTemp(dir, "bundle-*.tar.gz")
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, m.cfg.MaxBundle+1))
	if err == nil && n > m.cfg.MaxBundle {
		err = fmt.Errorf("%w: bundle larger than %d MiB", api.ErrBadRequest, m.cfg.MaxBundle>>20)
	}
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: empty bundle", api.ErrBadRequest)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", "", fmt.Errorf("receive bundle: %w", err)
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil)), nil
}

// prepare unpacks the bundle into the release's directory, reads its
// manifest and builds it, filling in rel.
func (m *Manager) prepare(ctx context.Context, rel *releaseRecord, bundleData io.Reader, log *lineWriter) error {
	dir := m.releaseDir(rel.App, rel.Build)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := bundle.Unpack(ctx, bundleData, dir, bundle.Limits{}); err != nil {
		return fmt.Errorf("%w: unpack bundle: %w", api.ErrBadRequest, err)
	}
	man, err := manifest.Load(dir)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		man = nil
	case err != nil:
		return fmt.Errorf("%w: %w", api.ErrBadRequest, err)
	}
	user, err := m.user(ctx, rel.App)
	if err != nil {
		return err
	}
	cacheDir := filepath.Join(m.appDir(rel.App), "cache")
	if err := os.MkdirAll(cacheDir, 0o750); err != nil {
		return err
	}
	if err := m.own(rel.App, user); err != nil {
		return err
	}
	req := build.Request{Dir: dir, CacheDir: cacheDir, Log: log}
	req.Cred = credential(user)
	fmt.Fprintf(log, "-----> Building %s v%d", rel.App, rel.Number)
	log.flush()
	res, err := m.cfg.Builder.Build(ctx, req)
	if err != nil {
		return err
	}
	if res.CacheHit {
		fmt.Fprintf(log, "-----> %s dependencies reused from cache (%s)\n", res.Kind, short(res.CacheKey))
	}
	if man == nil {
		man = &manifest.Manifest{Name: rel.App}
	}
	procs := maps.Clone(man.Processes)
	if len(procs) == 0 {
		procs = maps.Clone(res.DefaultProcesses)
	}
	if len(procs) == 0 && res.StaticRoot == "" && len(man.Static) == 0 {
		return fmt.Errorf("%w: nothing to run: no processes in pier.yaml or Procfile and no default for a %s app", api.ErrBadRequest, res.Kind)
	}
	rel.Kind = string(res.Kind)
	rel.Processes = procs
	rel.Manifest = man
	rel.Result = res
	rel.Env = mergeEnv(man.Env, rel.Config)
	if err := m.own(rel.App, user); err != nil {
		return err
	}
	return writeBuildMarker(dir, res)
}

// ensureBuilt rebuilds a release's directory from its stored bundle when it
// is missing (after a crash mid-build, or on a node that never built it).
func (m *Manager) ensureBuilt(ctx context.Context, rel *releaseRecord, log *lineWriter) error {
	dir := m.releaseDir(rel.App, rel.Build)
	if _, err := os.Stat(filepath.Join(dir, buildMarker)); err == nil {
		return nil
	}
	rc, err := m.cfg.Bundles.Get(ctx, rel.Bundle)
	if err != nil {
		return fmt.Errorf("rebuild v%d: %w", rel.Build, err)
	}
	defer rc.Close()
	copyRel := *rel
	copyRel.Number = rel.Build
	if err := m.prepare(ctx, &copyRel, rc, log); err != nil {
		return fmt.Errorf("rebuild v%d: %w", rel.Build, err)
	}
	return nil
}

const buildMarker = ".pier-build.json"

func writeBuildMarker(dir string, res *build.Result) error {
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, buildMarker), data, 0o644)
}

func (m *Manager) ensureApp(ctx context.Context, app string) (appRecord, error) {
	return modifyApp(ctx, m, app, func(a *appRecord, exists bool) error {
		if !exists {
			now := time.Now().UTC()
			*a = appRecord{Name: app, Token: app + "." + newToken(), Created: now, Updated: now}
		}
		return nil
	})
}

func (m *Manager) allocRelease(ctx context.Context, app string) (int, error) {
	a, err := modifyApp(ctx, m, app, func(a *appRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: no app named %q", api.ErrNotFound, app)
		}
		a.NextRelease++
		a.Updated = time.Now().UTC()
		return nil
	})
	return a.NextRelease, err
}

func mergeEnv(layers ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, l := range layers {
		maps.Copy(out, l)
	}
	return out
}

func newToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
