// Package deploy turns bundles into releases and releases into running,
// routed instances: it stores bundles, builds them, records immutable
// releases, rolls them out with a health check before the route swap and a
// drain after it, rolls back, scales, and brings every app back to its
// desired state when the engine starts. Desired state lives in the store; the
// instances on this node are reconciled against it.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"pier/internal/api"
	"pier/internal/build"
	"pier/internal/manifest"
	"pier/internal/store"
	"pier/internal/supervisor"
)

// Builder builds an unpacked app in place.
type Builder interface {
	Build(ctx context.Context, req build.Request) (*build.Result, error)
}

// Supervisor runs processes.
type Supervisor interface {
	Start(ctx context.Context, spec supervisor.Spec) (*supervisor.Instance, error)
	Run(ctx context.Context, spec supervisor.Spec, w io.Writer) (int, error)
}

// Outstanding reports requests in flight to a backend address, so old
// instances are stopped only once drained.
type Outstanding interface {
	Outstanding(addr string) int64
}

// Config wires a Manager to the rest of the engine.
type Config struct {
	Home   string // $PIER_HOME: apps/<app>/releases/vN live under it
	Node   string // this node's name in instance records ("local" when empty)
	Domain string // apps are served at <app>.<Domain>
	// HTTPPort is the gateway's port, for the URLs shown to users (80 = none).
	HTTPPort int

	Apps      *store.Bucket  // app records
	Releases  *store.Bucket  // release records
	Instances *store.Bucket  // instance records, watched by the router
	Bundles   *store.Objects // bundles by sha256
	Events    *store.Stream  // deploy events, subjects events.<app>
	// Domains is the bucket of domains attached through the API (see
	// DomainStore), checked with the apps' hosts so that a deploy never
	// takes a host another app has. Nil: only the apps' hosts are checked.
	Domains *store.Bucket

	Builder    Builder
	Supervisor Supervisor
	Gateway    Outstanding
	Routes     RouteWaiter
	// EnsureUser returns the UNIX user an app runs as (nil: as the engine).
	EnsureUser func(ctx context.Context, app string) (*supervisor.User, error)
	// ServiceEnv is the environment every process of app (running release,
	// "v3") gets from the
	// engine's services (PIER_API, SENTRY_DSN, ...), given the app's token.
	ServiceEnv func(app, token, release string) map[string]string

	// OnRelease, when set, learns each app's current release and manifest:
	// after every swap and for every app restored at start. Services that
	// act on manifest keys (queues, cron, cache rules) follow it. It must
	// not call back into the Manager.
	OnRelease func(app string, release int, m *manifest.Manifest)
	// OnDestroy, when set, learns that an app is gone.
	OnDestroy func(app string)

	Logger *slog.Logger
	// MaxBundle bounds an uploaded bundle (default 512 MiB compressed).
	MaxBundle int64
	// DrainTimeout bounds the wait for an old instance's requests (default 30s).
	DrainTimeout time.Duration

	// Activity, when set, tells when apps last got a request: SleepIdle
	// stops the web instances of apps that sleep while idle (manifest web
	// min 0) after IdleTimeout without one. Nil: they never sleep.
	Activity Activity
	// IdleTimeout is how long such an app may go without a request before
	// its web instances stop (default 5m).
	IdleTimeout time.Duration
}

// Manager runs deploys, rollbacks, scale changes and restores.
type Manager struct {
	cfg Config
	log *slog.Logger
	ctx context.Context // the engine's lifetime: deploys outlive the request that started them

	mu       sync.Mutex               // guards locks, running, canaries, ids, awake
	locks    map[string]chan struct{} // per-app: one change at a time
	running  map[string][]*instance   // app -> serving instances of the current release this node runs
	canaries map[string][]*instance   // app -> instances of its canary release this node runs
	ids      map[string]*instance     // supervisor ID -> instance, including ones still starting
	awake    map[string]time.Time     // apps that sleep while idle and are awake -> when they woke

	ports *supervisor.Ports // for instances and one-off runs to listen on
}

var appName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// New returns a Manager; ctx bounds every deploy it runs.
func New(ctx context.Context, cfg Config) *Manager {
	if cfg.Node == "" {
		cfg.Node = "local"
	}
	if cfg.MaxBundle == 0 {
		cfg.MaxBundle = 512 << 20
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.OnRelease == nil {
		cfg.OnRelease = func(string, int, *manifest.Manifest) {}
	}
	if cfg.OnDestroy == nil {
		cfg.OnDestroy = func(string) {}
	}
	if cfg.ServiceEnv == nil {
		cfg.ServiceEnv = func(string, string, string) map[string]string { return nil }
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		ports:    supervisor.NewPorts(),
		cfg:      cfg,
		log:      log,
		ctx:      ctx,
		locks:    make(map[string]chan struct{}),
		running:  make(map[string][]*instance),
		canaries: make(map[string][]*instance),
		awake:    make(map[string]time.Time),
	}
}

// lock serialises changes to one app; the returned func unlocks.
func (m *Manager) lock(ctx context.Context, app string) (func(), error) {
	m.mu.Lock()
	ch, ok := m.locks[app]
	if !ok {
		ch = make(chan struct{}, 1)
		m.locks[app] = ch
	}
	m.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for another change to %s: %w", app, ctx.Err())
	}
}

// begin starts a change to app that outlives the request asking for it: the
// returned context ends with the engine, not with the client, and the app
// is locked until end is called.
func (m *Manager) begin(ctx context.Context, app string) (context.Context, func(), error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(m.ctx, cancel)
	unlock, err := m.lock(ctx, app)
	if err != nil {
		stop()
		cancel()
		return nil, nil, err
	}
	return ctx, func() {
		unlock()
		stop()
		cancel()
	}, nil
}

func (m *Manager) appDir(app string) string { return filepath.Join(m.cfg.Home, "apps", app) }

func (m *Manager) releaseDir(app string, build int) string {
	return filepath.Join(m.appDir(app), "releases", fmt.Sprintf("v%d", build))
}

// ValidName reports whether name can be an app's name.
func ValidName(name string) error {
	if !appName.MatchString(name) {
		return fmt.Errorf("%w: app name %q: use 1-40 lower-case letters, digits and dashes, starting with a letter", api.ErrBadRequest, name)
	}
	return nil
}

// emitter fans deploy events out to the caller and the events stream.
type emitter struct {
	m    *Manager
	app  string
	rel  int
	send func(api.Event)
}

func (e *emitter) emit(typ, format string, args ...any) {
	e.event(api.Event{Type: typ, Message: fmt.Sprintf(format, args...)})
}

func (e *emitter) event(ev api.Event) {
	ev.Time = time.Now().UTC()
	ev.App = e.app
	if ev.Release == 0 {
		ev.Release = e.rel
	}
	if e.send != nil {
		e.send(ev)
	}
	if e.m.cfg.Events != nil {
		if data, err := jsonMarshal(ev); err == nil {
			e.m.cfg.Events.AppendNoWait("events."+e.app, data, nil)
		}
	}
}

// lineWriter turns build output into log events, one per line.
type lineWriter struct {
	e    *emitter
	buf  []byte
	tail []string // last lines, for the error message
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := indexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.line(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) line(s string) {
	w.tail = append(w.tail, s)
	if len(w.tail) > 30 {
		w.tail = w.tail[len(w.tail)-30:]
	}
	w.e.event(api.Event{Type: api.EventLog, Message: s})
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// failure is a deploy error that carries the log lines explaining it.
type failure struct {
	err  error
	tail []string
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// LogTail returns the lines that explain err, if it carries any.
func LogTail(err error) []string {
	var f *failure
	if errors.As(err, &f) {
		return f.tail
	}
	return nil
}
