package deploy

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"pier/internal/api"
	"pier/internal/supervisor"
)

// Rollback makes a new release from an older one (its build and config) and
// rolls it out. target 0 means the newest good release before the current,
// unless the app has a canary: then it ends the canary, and every client
// goes back to the current release.
func (m *Manager) Rollback(ctx context.Context, app string, target int, emit func(api.Event)) (int, error) {
	if target == 0 {
		if a, err := m.getApp(ctx, app); err == nil && a.Canary != 0 {
			return m.endCanary(ctx, app, emit)
		}
	}
	return m.derive(ctx, app, emit, func(cur appRecord, rels []releaseRecord) (*releaseRecord, error) {
		var from *releaseRecord
		for i := range rels {
			r := &rels[i]
			if target != 0 && r.Number == target {
				from = r
				break
			}
			if target == 0 && r.Number < cur.Release && r.Status != api.ReleaseFailed && r.Status != api.ReleaseBuilding {
				from = r
				break
			}
		}
		switch {
		case from == nil && target == 0:
			return nil, fmt.Errorf("%w: %s has no earlier release to roll back to", api.ErrBadRequest, app)
		case from == nil:
			return nil, fmt.Errorf("%w: %s has no release v%d", api.ErrNotFound, app, target)
		case from.Status == api.ReleaseFailed || from.Status == api.ReleaseBuilding:
			return nil, fmt.Errorf("%w: v%d never worked (%s); pick another release", api.ErrBadRequest, from.Number, from.Status)
		}
		r := *from
		r.Cause = fmt.Sprintf("rollback to v%d", from.Number)
		return &r, nil
	})
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// SetEnv changes config vars and rolls out a new release with them.
func (m *Manager) SetEnv(ctx context.Context, app string, change api.EnvChange, emit func(api.Event)) (int, error) {
	for k := range change.Set {
		if !envName.MatchString(k) {
			return 0, fmt.Errorf("%w: config var name %q: use letters, digits and _", api.ErrBadRequest, k)
		}
		if k == "PORT" || strings.HasPrefix(k, "PIER_") {
			return 0, fmt.Errorf("%w: %s is set by pier itself", api.ErrBadRequest, k)
		}
	}
	return m.derive(ctx, app, emit, func(cur appRecord, rels []releaseRecord) (*releaseRecord, error) {
		var base *releaseRecord
		for i := range rels {
			if rels[i].Number == cur.Release {
				base = &rels[i]
			}
		}
		config := maps.Clone(cur.Config)
		if config == nil {
			config = map[string]string{}
		}
		maps.Copy(config, change.Set)
		for _, k := range change.Unset {
			delete(config, k)
		}
		var desc []string
		for k := range change.Set {
			desc = append(desc, "set "+k)
		}
		for _, k := range change.Unset {
			desc = append(desc, "unset "+k)
		}
		sort.Strings(desc)
		if base == nil {
			// No release yet: only remember the config for the first deploy.
			_, err := modifyApp(ctx, m, app, func(a *appRecord, _ bool) error { a.Config = config; return nil })
			return nil, err
		}
		r := *base
		r.Config = config
		r.Cause = "env " + strings.Join(desc, ", ")
		return &r, nil
	})
}

// derive makes a new release out of an existing one (rollback, config
// change) and rolls it out. pick returns nil to make no release.
func (m *Manager) derive(ctx context.Context, app string, emit func(api.Event), pick func(appRecord, []releaseRecord) (*releaseRecord, error)) (int, error) {
	ctx, unlock, err := m.begin(ctx, app)
	if err != nil {
		return 0, err
	}
	defer unlock()
	cur, err := m.getApp(ctx, app)
	if err != nil {
		return 0, err
	}
	rels, err := m.listReleases(ctx, app)
	if err != nil {
		return 0, err
	}
	from, err := pick(cur, rels)
	if err != nil || from == nil {
		return 0, err
	}
	// Config vars follow the release: a rollback brings back its config.
	if _, err := modifyApp(ctx, m, app, func(a *appRecord, _ bool) error { a.Config = from.Config; return nil }); err != nil {
		return 0, err
	}
	n, err := m.allocRelease(ctx, app)
	if err != nil {
		return 0, err
	}
	rel := *from
	rel.Number, rel.Status, rel.Error, rel.Created = n, api.ReleaseReady, "", time.Now().UTC()
	if rel.Manifest != nil {
		rel.Env = mergeEnv(rel.Manifest.Env, rel.Config)
	} else {
		rel.Env = mergeEnv(rel.Config)
	}
	e := &emitter{m: m, app: app, rel: n, send: emit}
	e.emit(api.EventBuild, "%s: v%d from the build of v%d", rel.Cause, n, rel.Build)
	if err := m.putRelease(ctx, &rel); err != nil {
		return 0, err
	}
	log := &lineWriter{e: e}
	err = m.ensureBuilt(ctx, &rel, log)
	log.flush()
	if err == nil {
		err = m.rollout(ctx, &rel, e)
	}
	if err != nil {
		tail := LogTail(err)
		if tail == nil {
			tail = log.tail
		}
		m.setReleaseStatus(context.WithoutCancel(ctx), app, n, api.ReleaseFailed, err.Error())
		e.event(api.Event{Type: api.EventError, Error: err.Error(), LogTail: tail})
		return n, &failure{err: err, tail: tail}
	}
	return n, nil
}

// Scale sets how many instances of each process type run and makes it so.
func (m *Manager) Scale(ctx context.Context, app string, counts map[string]int) (api.App, error) {
	unlock, err := m.lock(ctx, app)
	if err != nil {
		return api.App{}, err
	}
	defer unlock()
	a, err := m.getApp(ctx, app)
	if err != nil {
		return api.App{}, err
	}
	if a.Release == 0 {
		return api.App{}, fmt.Errorf("%w: %s has no release yet: deploy it first", api.ErrBadRequest, app)
	}
	rel, err := m.getRelease(ctx, app, a.Release)
	if err != nil {
		return api.App{}, err
	}
	for p, n := range counts {
		if _, ok := rel.Processes[p]; !ok {
			return api.App{}, fmt.Errorf("%w: %s v%d has no process type %q (it has %s)", api.ErrBadRequest, app, rel.Number, p, strings.Join(processTypes(&rel), ", "))
		}
		if n < 0 || n > 100 {
			return api.App{}, fmt.Errorf("%w: %s=%d: scale must be between 0 and 100", api.ErrBadRequest, p, n)
		}
	}
	a, err = modifyApp(ctx, m, app, func(a *appRecord, _ bool) error {
		if a.Scale == nil {
			a.Scale = map[string]int{}
		}
		maps.Copy(a.Scale, counts)
		if a.Wake = wakes(*a, &rel); !a.Wake {
			a.Asleep = false
		}
		a.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		return api.App{}, err
	}
	m.mu.Lock()
	m.setAwake(app, a.Wake && !a.Asleep)
	m.mu.Unlock()
	if err := m.reconcile(ctx, a, &rel); err != nil {
		return m.toAPI(a, &rel), err
	}
	return m.toAPI(a, &rel), nil
}

// reconcile starts or stops instances of the current release until each
// process type runs as many as the app wants.
func (m *Manager) reconcile(ctx context.Context, a appRecord, rel *releaseRecord) error {
	m.mu.Lock()
	running := append([]*instance(nil), m.running[a.Name]...)
	m.mu.Unlock()
	var keep, extra, fresh []*instance
	for _, p := range processTypes(rel) {
		want := desired(a, rel, p)
		var have []*instance
		for _, in := range running {
			if in.process == p && in.release == rel.Number {
				have = append(have, in)
			}
		}
		sort.Slice(have, func(i, j int) bool { return have[i].index < have[j].index })
		if len(have) > want {
			keep = append(keep, have[:want]...)
			extra = append(extra, have[want:]...)
			continue
		}
		keep = append(keep, have...)
		used := map[int]bool{}
		for _, in := range have {
			used[in.index] = true
		}
		for next := 1; len(have)+countProc(fresh, p) < want; next++ {
			if used[next] {
				continue
			}
			in, err := m.startInstance(ctx, a, rel, p, next)
			if err != nil {
				m.stopAll(fresh)
				return err
			}
			fresh = append(fresh, in)
		}
	}
	e := &emitter{m: m, app: a.Name, rel: rel.Number}
	err := m.waitReady(ctx, fresh, e)
	// Instances that did not become ready stay supervised: they restart with
	// backoff and join the route when they answer.
	m.mu.Lock()
	m.running[a.Name] = append(keep, fresh...)
	m.mu.Unlock()
	m.retire(ctx, extra)
	return err
}

func countProc(ins []*instance, p string) int {
	n := 0
	for _, in := range ins {
		if in.process == p {
			n++
		}
	}
	return n
}

// Restore brings every app back to its current release at its scale; the
// engine calls it once at start, before the gateway takes traffic.
func (m *Manager) Restore(ctx context.Context) error {
	keys, err := m.cfg.Instances.Keys(ctx, "*."+m.cfg.Node+".>")
	if err != nil {
		return err
	}
	for _, k := range keys { // records of instances a previous engine ran
		m.cfg.Instances.Delete(ctx, k)
	}
	apps, err := m.cfg.Apps.Keys(ctx, "")
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, name := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := m.restore(ctx, name); err != nil {
				m.log.Error("restore app", "app", name, "err", err)
			}
		}()
	}
	wg.Wait()
	return nil
}

func (m *Manager) restore(ctx context.Context, name string) error {
	unlock, err := m.lock(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	a, err := m.getApp(ctx, name)
	if err != nil {
		return err
	}
	rels, err := m.listReleases(ctx, name)
	if err != nil {
		return err
	}
	for _, r := range rels { // deploys the previous engine never finished
		if r.Status == api.ReleaseBuilding || (r.Status == api.ReleaseReady && r.Number != a.Release) {
			m.setReleaseStatus(ctx, name, r.Number, api.ReleaseFailed, "the engine stopped during this deploy")
		}
	}
	if a.Release == 0 {
		return nil
	}
	rel, err := m.getRelease(ctx, name, a.Release)
	if err != nil {
		return err
	}
	e := &emitter{m: m, app: name, rel: rel.Number}
	log := &lineWriter{e: e}
	if err := m.ensureBuilt(ctx, &rel, log); err != nil {
		return err
	}
	m.log.Info("restoring app", "app", name, "release", rel.Number, "asleep", a.Asleep, "canary", a.Canary)
	m.cfg.OnRelease(name, rel.Number, manifestOf(&rel))
	m.mu.Lock()
	m.setAwake(name, a.Wake && !a.Asleep)
	m.mu.Unlock()
	err = m.reconcile(ctx, a, &rel)
	if a.Canary != 0 {
		if cerr := m.restoreCanary(ctx, a); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	return err
}

// Run starts a one-off process with the app's current environment and
// streams its output to w; it returns the exit code.
func (m *Manager) Run(ctx context.Context, app string, argv []string, w io.Writer) (int, error) {
	if len(argv) == 0 {
		return 0, fmt.Errorf("%w: no command given", api.ErrBadRequest)
	}
	a, err := m.getApp(ctx, app)
	if err != nil {
		return 0, err
	}
	if a.Release == 0 {
		return 0, fmt.Errorf("%w: %s has no release yet: deploy it first", api.ErrBadRequest, app)
	}
	rel, err := m.getRelease(ctx, app, a.Release)
	if err != nil {
		return 0, err
	}
	port, err := m.ports.Next()
	if err != nil {
		return 0, err
	}
	user, err := m.user(ctx, app)
	if err != nil {
		return 0, err
	}
	id := newToken()[:6]
	rel.Processes = map[string]string{"run": shellJoin(argv)}
	spec := m.spec(a, &rel, "run", "run."+id, port, user)
	spec.ID = fmt.Sprintf("%s-run-%s", app, id)
	return m.cfg.Supervisor.Run(ctx, spec, w)
}

// shellJoin quotes each argument so the shell runs exactly argv.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// Destroy stops an app and deletes its releases, records and files.
func (m *Manager) Destroy(ctx context.Context, app string) error {
	unlock, err := m.lock(ctx, app)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := m.getApp(ctx, app); err != nil {
		return err
	}
	// Its staging copy goes with it, first: if that fails, nothing of the
	// app itself is gone.
	if err := m.destroyStaging(ctx, app); err != nil {
		return err
	}
	// The app record goes first: the router drops its hosts at once.
	if err := m.cfg.Apps.Delete(ctx, app); err != nil {
		return err
	}
	m.mu.Lock()
	running := append(m.running[app], m.canaries[app]...)
	delete(m.running, app)
	delete(m.canaries, app)
	m.setAwake(app, false)
	m.mu.Unlock()
	m.stopAll(running)
	keys, err := m.cfg.Releases.Keys(ctx, app+".*")
	if err != nil {
		return err
	}
	for _, k := range keys {
		m.cfg.Releases.Delete(ctx, k)
	}
	m.cfg.OnDestroy(app)
	if err := os.RemoveAll(m.appDir(app)); err != nil {
		return fmt.Errorf("destroy %s: remove files: %w", app, err)
	}
	return nil
}

// Apps lists every app with its current state.
func (m *Manager) Apps(ctx context.Context) ([]api.App, error) {
	names, err := m.cfg.Apps.Keys(ctx, "")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]api.App, 0, len(names))
	for _, n := range names {
		a, err := m.App(ctx, n)
		if errors.Is(err, api.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		a.Env = nil
		out = append(out, a)
	}
	return out, nil
}

// App returns one app with its instances.
func (m *Manager) App(ctx context.Context, name string) (api.App, error) {
	a, err := m.getApp(ctx, name)
	if err != nil {
		return api.App{}, err
	}
	var relp *releaseRecord
	if a.Release != 0 {
		if rel, err := m.getRelease(ctx, name, a.Release); err == nil {
			relp = &rel
		}
	}
	out := m.toAPI(a, relp)
	out.Staging = m.stagingOf(ctx, name)
	out.Instances = m.PS(name)
	out.Status = status(a, out.Instances)
	return out, nil
}

func status(a appRecord, ins []api.Instance) string {
	if a.Release == 0 {
		return "new"
	}
	st := "running"
	if a.Asleep {
		st = "asleep"
	}
	for _, in := range ins {
		switch in.State {
		case string(supervisor.CrashLoop):
			return "crashed"
		case string(supervisor.Backoff), string(supervisor.Starting):
			st = "starting"
		}
	}
	return st
}

// Releases lists an app's releases, newest first.
func (m *Manager) Releases(ctx context.Context, app string) ([]api.Release, error) {
	if _, err := m.getApp(ctx, app); err != nil {
		return nil, err
	}
	rels, err := m.listReleases(ctx, app)
	if err != nil {
		return nil, err
	}
	out := make([]api.Release, len(rels))
	for i, r := range rels {
		out[i] = r.Release
	}
	return out, nil
}

// Env returns an app's config vars.
func (m *Manager) Env(ctx context.Context, app string) (map[string]string, error) {
	a, err := m.getApp(ctx, app)
	if err != nil {
		return nil, err
	}
	if a.Config == nil {
		return map[string]string{}, nil
	}
	return a.Config, nil
}

// AppForToken resolves an app's own API token (PIER_TOKEN, which reads
// "<app>.<secret>") to the app's name.
func (m *Manager) AppForToken(ctx context.Context, token string) (string, bool) {
	app, _, ok := strings.Cut(token, ".")
	if !ok || ValidName(app) != nil {
		return "", false
	}
	a, err := m.getApp(ctx, app)
	if err != nil || a.Token == "" {
		return "", false
	}
	return app, subtle.ConstantTimeCompare([]byte(a.Token), []byte(token)) == 1
}

// PS lists the instances this node runs for app, its canary's included.
func (m *Manager) PS(app string) []api.Instance {
	m.mu.Lock()
	running := append(append([]*instance(nil), m.running[app]...), m.canaries[app]...)
	m.mu.Unlock()
	out := make([]api.Instance, 0, len(running))
	for _, in := range running {
		st := in.sup.Status()
		out = append(out, api.Instance{
			ID: st.ID, Release: in.release, Process: in.process, Instance: st.Instance,
			State: string(st.State), Ready: st.Ready, PID: st.PID, Port: st.Port,
			Restarts: st.Restarts, StartedAt: st.StartedAt, LastExit: st.LastExit, Limits: st.Limits,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Process != out[j].Process {
			return out[i].Process == "web" || (out[j].Process != "web" && out[i].Process < out[j].Process)
		}
		if out[i].Instance != out[j].Instance {
			return out[i].Instance < out[j].Instance
		}
		return out[i].Release < out[j].Release
	})
	return out
}
