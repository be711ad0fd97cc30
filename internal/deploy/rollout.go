package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"pier/internal/api"
	"pier/internal/manifest"
	"pier/internal/store"
	"pier/internal/supervisor"
)

// RouteWaiter reports when the gateway routes an app's release.
type RouteWaiter interface {
	WaitRouted(ctx context.Context, app string, release int) error
}

// instance is one process this node runs for an app.
type instance struct {
	key     string // instances bucket key
	app     string
	release int
	process string
	index   int
	addr    string // 127.0.0.1:port for web processes
	h2c     bool   // a web process that speaks h2c (manifest protocol)
	sup     *supervisor.Instance

	mu   sync.Mutex // guards gone and the instance's record in the store
	gone bool       // stopped: its record must not be written again
}

const systemPath = "/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// rollout starts rel's instances, waits until they are healthy, makes rel
// the app's current release, then drains and stops the previous instances.
// When it fails, the new instances are stopped and nothing else changed.
func (m *Manager) rollout(ctx context.Context, rel *releaseRecord, e *emitter) error {
	a, err := m.getApp(ctx, rel.App)
	if err != nil {
		return err
	}
	// A deploy starts (and so checks) the web instances of an app that
	// sleeps while idle; they go back to sleep once idle.
	a.Asleep = false
	if err := m.checkHosts(ctx, a, rel); err != nil {
		return err
	}
	fresh, started, err := m.launch(ctx, a, rel, nil, processTypes(rel), e)
	if err != nil {
		return err
	}
	if err := m.swap(ctx, rel, fresh, e); err != nil {
		m.stopAll(started)
		return err
	}
	return nil
}

// launch starts the instances of rel's process types procs that have (the
// instances of rel already running) lacks, and waits until they are
// healthy. It returns have and the new ones, and the new ones alone; on
// failure it stops the new ones.
func (m *Manager) launch(ctx context.Context, a appRecord, rel *releaseRecord, have []*instance, procs []string, e *emitter) (all, started []*instance, err error) {
	var counts []string
	for _, p := range procs {
		counts = append(counts, fmt.Sprintf("%d %s", desired(a, rel, p), p))
	}
	if len(counts) == 0 {
		counts = []string{"static files"}
	}
	e.emit(api.EventStart, "Starting v%d: %s", rel.Number, strings.Join(counts, ", "))
	for _, p := range procs {
		used := map[int]bool{}
		for _, in := range have {
			if in.process == p {
				used[in.index] = true
			}
		}
		for i := 1; len(used) < desired(a, rel, p); i++ {
			if used[i] {
				continue
			}
			in, err := m.startInstance(ctx, a, rel, p, i)
			if err != nil {
				m.stopAll(started)
				return nil, nil, err
			}
			used[i] = true
			started = append(started, in)
		}
	}
	if err := m.waitReady(ctx, started, e); err != nil {
		m.stopAll(started)
		return nil, nil, err
	}
	return append(append([]*instance(nil), have...), started...), started, nil
}

// swap makes rel, whose instances fresh are healthy, the app's current
// release, then drains and stops the instances of the previous release and
// of a canary other than rel. It does not stop fresh when it fails.
func (m *Manager) swap(ctx context.Context, rel *releaseRecord, fresh []*instance, e *emitter) error {
	// The swap: one compare-and-set of the app record. From here on the
	// release is acknowledged and survives a crash of the engine.
	var prev, canary int
	staticDir := m.staticDir(rel)
	a, err := modifyApp(ctx, m, rel.App, func(a *appRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: app %s was destroyed during the deploy", api.ErrConflict, rel.App)
		}
		prev, canary = a.Release, a.Canary
		a.Release, a.Hosts, a.StaticDir = rel.Number, m.hostsOf(*a, rel), staticDir
		a.Static, a.Cache = m.staticDirs(rel), manifestOf(rel).Cache
		_, a.Web = rel.Processes["web"]
		a.Wake, a.Asleep = wakes(*a, rel), false
		a.Canary, a.CanaryWeight = 0, 0
		a.Updated = time.Now().UTC()
		return nil
	})
	if err != nil {
		return err
	}
	m.setReleaseStatus(ctx, rel.App, rel.Number, api.ReleaseActive, "")
	if prev != 0 && prev != rel.Number {
		m.setReleaseStatus(ctx, rel.App, prev, api.ReleaseRetired, "")
	}
	if canary != 0 && canary != rel.Number {
		m.setReleaseStatus(ctx, rel.App, canary, api.ReleaseRetired, "canary ended by a deploy")
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = m.cfg.Routes.WaitRouted(wctx, rel.App, rel.Number)
	cancel()
	if err != nil {
		// The release is current already; its instances may have died
		// since their health check. The supervisor restarts them.
		e.emit(api.EventSwap, "v%d is current but not routed yet: %v", rel.Number, err)
	} else {
		e.emit(api.EventSwap, "Routing %s to v%d", rel.App, rel.Number)
	}

	m.cfg.OnRelease(rel.App, rel.Number, manifestOf(rel))
	m.mu.Lock()
	old := m.running[rel.App]
	m.running[rel.App] = fresh
	for _, in := range m.canaries[rel.App] {
		if in.release != rel.Number {
			old = append(old, in)
		}
	}
	delete(m.canaries, rel.App)
	m.setAwake(rel.App, a.Wake)
	m.mu.Unlock()
	if len(old) > 0 {
		e.emit(api.EventDrain, "Draining %d instance(s) of v%d", len(old), old[0].release)
		m.retire(ctx, old)
		e.emit(api.EventStop, "Stopped v%d", old[0].release)
	}
	e.event(api.Event{Type: api.EventDone, Message: fmt.Sprintf("%s v%d is live", rel.App, rel.Number)})
	return nil
}

// waitReady waits for every instance's readiness, in parallel, and marks the
// ready ones in the store. The first failure wins.
func (m *Manager) waitReady(ctx context.Context, ins []*instance, e *emitter) error {
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := in.sup.WaitReady(ctx); err != nil {
				errs[i] = &failure{
					err:  fmt.Errorf("%s %s: %w", in.app, instLabel(in), err),
					tail: tailText(in.sup.Tail()),
				}
				return
			}
			m.record(ctx, in, true, string(supervisor.Running))
			if in.addr != "" {
				e.emit(api.EventHealth, "Health check passed %s (v%d)", instLabel(in), in.release)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// retire drains old instances (their requests finish) and stops them.
func (m *Manager) retire(ctx context.Context, old []*instance) {
	for _, in := range old {
		m.forget(ctx, in)
	}
	var web []*instance
	for _, in := range old {
		if in.addr != "" {
			web = append(web, in)
		}
	}
	if len(web) > 0 {
		deadline := time.Now().Add(m.cfg.DrainTimeout)
		// A request that read the old route table just before the swap may
		// not have counted itself yet: give it a moment.
		time.Sleep(50 * time.Millisecond)
		for _, in := range web {
			for m.cfg.Gateway.Outstanding(in.addr) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	m.stopAll(old)
}

// stopAll stops instances in parallel and removes their records.
func (m *Manager) stopAll(ins []*instance) {
	ctx := context.WithoutCancel(m.ctx)
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.forget(ctx, in)
			if err := in.sup.Stop(ctx); err != nil {
				m.log.Warn("stop instance", "app", in.app, "instance", instLabel(in), "err", err)
			}
		}()
	}
	wg.Wait()
}

func (m *Manager) startInstance(ctx context.Context, a appRecord, rel *releaseRecord, process string, index int) (*instance, error) {
	port, err := m.ports.Next()
	if err != nil {
		return nil, fmt.Errorf("start %s %s.%d: %w", rel.App, process, index, err)
	}
	user, err := m.user(ctx, rel.App)
	if err != nil {
		return nil, err
	}
	in := &instance{
		key:     fmt.Sprintf("%s.%s.%d.%s.%d", rel.App, m.cfg.Node, rel.Number, process, index),
		app:     rel.App,
		release: rel.Number,
		process: process,
		index:   index,
	}
	spec := m.spec(a, rel, process, fmt.Sprintf("%s.%d", process, index), port, user)
	spec.ID = fmt.Sprintf("%s-v%d-%s.%d", rel.App, rel.Number, process, index)
	if process == "web" {
		in.addr = fmt.Sprintf("127.0.0.1:%d", port)
		spec.Port = port
		if rel.Manifest != nil {
			spec.Health = rel.Manifest.Health.Path
			spec.ReadyTimeout = rel.Manifest.Health.Timeout
			in.h2c = rel.Manifest.Protocol == manifest.ProtocolH2C
			spec.HealthH2C = in.h2c
		}
	}
	if rel.Manifest != nil {
		spec.Limits = supervisor.Limits{MemoryBytes: rel.Manifest.Limits.MemoryBytes, CPU: rel.Manifest.Limits.CPU}
	}
	m.mu.Lock()
	m.byID()[spec.ID] = in
	m.mu.Unlock()
	m.record(ctx, in, false, string(supervisor.Starting))
	sup, err := m.cfg.Supervisor.Start(ctx, spec)
	if err != nil {
		m.forget(ctx, in)
		return nil, fmt.Errorf("start %s %s: %w", rel.App, spec.Instance, err)
	}
	in.sup = sup
	return in, nil
}

// spec is the process specification shared by instances and one-off runs.
func (m *Manager) spec(a appRecord, rel *releaseRecord, process, label string, port int, user *supervisor.User) supervisor.Spec {
	dir := m.releaseDir(rel.App, rel.Build)
	env := map[string]string{
		"PATH": systemPath,
		"HOME": dir,
		"LANG": "C.UTF-8",
	}
	if rel.Result != nil {
		if len(rel.Result.PathDirs) > 0 {
			env["PATH"] = strings.Join(rel.Result.PathDirs, ":") + ":" + systemPath
		}
		for k, v := range rel.Result.Env {
			env[k] = v
		}
	}
	for k, v := range rel.Env {
		env[k] = v
	}
	for k, v := range m.cfg.ServiceEnv(rel.App, a.Token, fmt.Sprintf("v%d", rel.Number)) {
		env[k] = v
	}
	env["PIER_APP"] = rel.App
	env["PIER_RELEASE"] = fmt.Sprintf("v%d", rel.Number)
	env["PIER_PROCESS"] = process
	env["PIER_INSTANCE"] = label
	env["PORT"] = fmt.Sprint(port)
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return supervisor.Spec{
		App:      rel.App,
		Release:  fmt.Sprintf("v%d", rel.Number),
		Process:  process,
		Instance: label,
		Command:  rel.Processes[process],
		Dir:      dir,
		Env:      list,
		User:     user,
	}
}

// Observe takes an instance's state change from the supervisor into the
// store, where the router sees it.
func (m *Manager) Observe(st supervisor.Status) {
	m.mu.Lock()
	in := m.byID()[st.ID]
	m.mu.Unlock()
	if in == nil {
		return
	}
	m.record(m.ctx, in, st.Ready && st.State == supervisor.Running, string(st.State))
}

// record writes an instance's record unless it was forgotten. The store is
// called under in.mu so that a late state change can never resurrect the
// record of a stopped instance; the store never calls back into deploy.
func (m *Manager) record(ctx context.Context, in *instance, ready bool, state string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gone {
		return
	}
	rec := instanceRecord{
		App: in.app, Release: in.release, Process: in.process,
		Instance: fmt.Sprintf("%s.%d", in.process, in.index),
		Node:     m.cfg.Node, Addr: in.addr, Ready: ready, State: state,
	}
	if in.h2c {
		rec.Protocol = manifest.ProtocolH2C
	}
	if _, err := store.PutJSON(ctx, m.cfg.Instances, in.key, rec); err != nil {
		m.log.Warn("record instance", "key", in.key, "err", err)
	}
}

// forget removes an instance's record for good: the router stops sending it
// requests.
func (m *Manager) forget(ctx context.Context, in *instance) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gone {
		return
	}
	in.gone = true
	if err := m.cfg.Instances.Delete(ctx, in.key); err != nil {
		m.log.Warn("forget instance", "key", in.key, "err", err)
	}
	m.mu.Lock()
	for id, x := range m.ids {
		if x == in {
			delete(m.ids, id)
		}
	}
	m.mu.Unlock()
}

// byID is the index of instances by supervisor ID; m.mu must be held.
func (m *Manager) byID() map[string]*instance {
	if m.ids == nil {
		m.ids = make(map[string]*instance)
	}
	return m.ids
}

func (m *Manager) hosts(rel *releaseRecord) []string {
	hosts := []string{rel.App + "." + m.cfg.Domain}
	if rel.Manifest != nil {
		hosts = append(hosts, rel.Manifest.Domains...)
	}
	return hosts
}

func (m *Manager) staticDir(rel *releaseRecord) string {
	if rel.Manifest != nil {
		if d, ok := rel.Manifest.Static["/"]; ok {
			return m.releaseDir(rel.App, rel.Build) + "/" + strings.TrimPrefix(d, "./")
		}
	}
	if rel.Result != nil && len(rel.Processes) == 0 {
		return rel.Result.StaticRoot
	}
	return ""
}

// staticDirs maps the manifest's static: prefixes to directories of the
// release.
func (m *Manager) staticDirs(rel *releaseRecord) map[string]string {
	if rel.Manifest == nil || len(rel.Manifest.Static) == 0 {
		return nil
	}
	out := make(map[string]string, len(rel.Manifest.Static))
	for prefix, d := range rel.Manifest.Static {
		out[prefix] = m.releaseDir(rel.App, rel.Build) + "/" + strings.TrimPrefix(d, "./")
	}
	return out
}

// user is the UNIX user app runs as, created on first use.
func (m *Manager) user(ctx context.Context, app string) (*supervisor.User, error) {
	if m.cfg.EnsureUser == nil {
		return nil, nil
	}
	u, err := m.cfg.EnsureUser(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("user for %s: %w", app, err)
	}
	return u, nil
}

// own gives the app's directory to its user and closes it to others.
func (m *Manager) own(app string, u *supervisor.User) error {
	dir := m.appDir(app)
	if u == nil {
		return nil
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		return err
	}
	// Lchown: a symlink in an app's tree is changed itself, never followed.
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(u.Uid), int(u.Gid))
	})
}

func credential(u *supervisor.User) *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: u.Uid, Gid: u.Gid, NoSetGroups: true}
}

// manifestOf is the release's manifest, never nil.
func manifestOf(rel *releaseRecord) *manifest.Manifest {
	if rel.Manifest != nil {
		return rel.Manifest
	}
	return &manifest.Manifest{Name: rel.App, Processes: rel.Processes}
}

func instLabel(in *instance) string { return fmt.Sprintf("%s.%d", in.process, in.index) }

func tailText(lines []supervisor.Line) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, fmt.Sprintf("%s[%s]: %s", l.App, l.Instance, l.Text))
	}
	return out
}

func modifyApp(ctx context.Context, m *Manager, app string, fn func(*appRecord, bool) error) (appRecord, error) {
	return store.Modify(ctx, m.cfg.Apps, app, fn)
}
