// Package supervisor runs app processes and keeps them running.
//
// The engine decides what runs; the supervisor runs it. Each instance is a
// shell command started in its own process group (so a stop reaches its
// children), optionally as a dedicated UNIX user and inside a cgroup v2 with
// memory and CPU limits. The supervisor captures every stdout/stderr line,
// probes readiness (TCP connect or an HTTP health path), restarts crashed
// processes with exponential backoff, flags crash loops, and stops processes
// with SIGTERM, a grace period and SIGKILL.
//
// Every running process is recorded in a pid file under Options.RunDir, so
// that after the engine is killed with SIGKILL, Sweep can find and kill the
// orphans (Pdeathsig is the first line of defence, the pid files the second).
//
// Goroutines and locks: each Instance has one goroutine (its loop) that owns
// the process and is the only writer of its Status, so OnChange calls for one
// instance arrive in order. Locks are leaves: no lock is held while another
// is taken, and Options.Output / Options.OnChange are never called under one.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Options configure a Supervisor. The zero value works: no pid files, output
// and state changes are discarded, limits autodetected.
type Options struct {
	// Logger receives the supervisor's own logs. If nil, they are discarded.
	Logger *slog.Logger
	// RunDir holds one pid file per running process, read by Sweep after the
	// engine died without stopping them. If "", no pid files are written.
	RunDir string
	// Output receives every stdout/stderr line of every instance and one-off
	// run. It is called from a goroutine per process, never under a lock; it
	// must not block long: while it blocks, further lines of that process
	// are dropped (the pipe keeps draining). If nil, lines are only kept in
	// each instance's tail.
	Output func(Line)
	// OnChange is called whenever an instance's state changes (from the
	// instance's own goroutine, in order for one instance, never under a
	// supervisor lock). It must not block long, and must not call Stop or
	// StopAll itself (they wait for the goroutine that is calling it); it
	// may call Status, List and Instance. If nil, changes are only visible
	// through Status.
	OnChange func(Status)
	// CgroupRoot is the cgroup v2 mount to create limit groups under
	// (<root>/pier/<ID>). If "", /sys/fs/cgroup is used when it is a cgroup2
	// mount with the memory and cpu controllers; otherwise limits are not
	// enforced and Status.Limits says so.
	CgroupRoot string
}

// User is a UNIX account a process runs as.
type User struct {
	Name     string
	Uid, Gid uint32
}

// Limits bound an instance's resources through cgroup v2. Zero means no limit.
type Limits struct {
	MemoryBytes int64   // memory.max
	CPU         float64 // CPUs, e.g. 0.5 = cpu.max "50000 100000"
}

// Spec says what to run: one instance of one process type of one release.
type Spec struct {
	ID                    string // unique, e.g. "blog-v3-web.1"; letters, digits, '.', '_', '-'
	App, Release, Process string
	Instance              string        // "web.1"
	Command               string        // shell command line, run as /bin/sh -c "exec <Command>"
	Dir                   string        // working directory ("" = the engine's)
	Env                   []string      // complete environment (nil = empty)
	Port                  int           // 0 = not a web process: ready once started
	Health                string        // HTTP path probed on 127.0.0.1:Port ("" = TCP connect)
	HealthH2C             bool          // probe Health in HTTP/2 without TLS (prior knowledge): the app speaks h2c
	ReadyTimeout          time.Duration // how long a start may take to become ready (0 = 30s)
	Grace                 time.Duration // SIGTERM -> SIGKILL grace (0 = 10s)
	User                  *User         // run as this user (nil = as the engine)
	Limits                Limits
}

// State is where an instance is in its life.
type State string

const (
	Starting  State = "starting"   // process started, not ready yet
	Running   State = "running"    // ready (port answers), or started for a process without port
	Backoff   State = "backoff"    // exited; waiting to restart
	CrashLoop State = "crash-loop" // 5 crashes within 2 minutes; restarting at the backoff cap
	Stopping  State = "stopping"   // Stop called; waiting for the process to exit
	Stopped   State = "stopped"    // stopped by Stop; final
	Failed    State = "failed"     // could not be started at all; final
)

// Status is a snapshot of an instance, for the engine, the API and the CLI.
type Status struct {
	ID, App, Release, Process, Instance string
	Port, PID                           int
	State                               State
	Ready                               bool
	Restarts                            int
	StartedAt                           time.Time // when the current (or last) process started
	LastExit                            string    // "exit status 1", "signal: killed"
	// Limits is "memory 256M, cpu 0.5", "none", or "not enforced: <why>".
	Limits string
}

// Line is one line of a process's output.
type Line struct {
	Time                            time.Time
	App, Release, Process, Instance string
	Stream                          string // "stdout" | "stderr"
	Text                            string
}

// Defaults.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultGrace        = 10 * time.Second

	maxLine   = 1 << 20 // longer output lines are cut into pieces of this size
	tailLines = 50      // lines kept per instance for error messages
)

// backoffPolicy decides restart delays. Tests shorten it.
type backoffPolicy struct {
	base, max time.Duration // first delay, cap
	reset     time.Duration // this long running healthily forgets past crashes
	window    time.Duration // crashes counted within this window...
	loop      int           // ...this many make a crash loop
}

var defaultBackoff = backoffPolicy{base: time.Second, max: 30 * time.Second, reset: time.Minute, window: 2 * time.Minute, loop: 5}

// delay is the wait before restart number n (n >= 1 consecutive crashes):
// base, 2*base, 4*base ... capped at max.
func (b backoffPolicy) delay(n int) time.Duration {
	d := b.base
	for k := 1; k < n && d < b.max; k++ {
		d *= 2
	}
	return min(d, b.max)
}

// Supervisor runs instances and one-off processes. Create it with New.
type Supervisor struct {
	log      *slog.Logger
	runDir   string
	output   func(Line)
	onChange func(Status)
	policy   backoffPolicy
	probe    *http.Client
	probeH2C *http.Client // probe for Spec.HealthH2C
	cg       *cgroups

	mu        sync.Mutex           // guards instances, runSeq
	instances map[string]*Instance // by ID; an instance leaves when it is stopped
	runSeq    int                  // numbers one-off runs without an ID
}

// New returns a Supervisor. It starts nothing until Start or Run.
func New(opts Options) *Supervisor {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		log:       log,
		runDir:    opts.RunDir,
		output:    opts.Output,
		onChange:  opts.OnChange,
		policy:    defaultBackoff,
		instances: make(map[string]*Instance),
		probe: &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true},
			Timeout:   2 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a 3xx is an answer
			},
		},
	}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	s.probeH2C = &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true, Protocols: &h2c},
		Timeout:       s.probe.Timeout,
		CheckRedirect: s.probe.CheckRedirect,
	}
	s.cg = newCgroups(opts.CgroupRoot, log)
	if s.output == nil {
		s.output = func(Line) {}
	}
	if s.onChange == nil {
		s.onChange = func(Status) {}
	}
	return s
}

// Start launches the instance and returns as soon as its process is started;
// ctx bounds only that, not the instance's life. From then on the supervisor
// keeps it running: when the process exits without Stop, it is restarted
// after 1s, 2s, 4s ... (capped at 30s; reset after 60s of healthy running);
// 5 crashes within 2 minutes put it in State "crash-loop", where it keeps
// retrying at the cap. Start fails if the ID is in use or the process cannot
// be started at all (the instance is then not kept).
func (s *Supervisor) Start(ctx context.Context, spec Spec) (*Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	spec = withDefaults(spec)
	if err := validate(spec); err != nil {
		return nil, err
	}
	i := newInstance(s, spec)
	s.mu.Lock()
	if _, dup := s.instances[spec.ID]; dup {
		s.mu.Unlock()
		return nil, fmt.Errorf("supervisor: instance %s is already running", spec.ID)
	}
	s.instances[spec.ID] = i
	s.mu.Unlock()

	started := make(chan error, 1)
	go i.loop(started)
	if err := <-started; err != nil {
		<-i.done // the loop removes the instance and ends
		return nil, err
	}
	return i, nil
}

// Instance returns the instance with this ID, or nil.
func (s *Supervisor) Instance(id string) *Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instances[id]
}

// List returns the status of every instance, sorted by ID.
func (s *Supervisor) List() []Status {
	s.mu.Lock()
	all := make([]*Instance, 0, len(s.instances))
	for _, i := range s.instances {
		all = append(all, i)
	}
	s.mu.Unlock()
	out := make([]Status, len(all))
	for k, i := range all {
		out[k] = i.Status()
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// StopAll stops every instance in parallel (engine shutdown) and returns
// when all are reaped.
func (s *Supervisor) StopAll(ctx context.Context) error {
	s.mu.Lock()
	all := make([]*Instance, 0, len(s.instances))
	for _, i := range s.instances {
		all = append(all, i)
	}
	s.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for k, i := range all {
		wg.Go(func() { errs[k] = i.Stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Supervisor) remove(i *Instance) {
	s.mu.Lock()
	if s.instances[i.spec.ID] == i {
		delete(s.instances, i.spec.ID)
	}
	s.mu.Unlock()
}

func withDefaults(spec Spec) Spec {
	if spec.ReadyTimeout <= 0 {
		spec.ReadyTimeout = DefaultReadyTimeout
	}
	if spec.Grace <= 0 {
		spec.Grace = DefaultGrace
	}
	if spec.Instance == "" {
		spec.Instance = spec.ID
	}
	spec.Env = append([]string{}, spec.Env...) // nil would mean "inherit the engine's"
	return spec
}

// validate checks what the supervisor relies on: the ID names files and
// cgroups, so it must be a plain name.
func validate(spec Spec) error {
	if err := validID(spec.ID); err != nil {
		return err
	}
	if spec.Command == "" {
		return fmt.Errorf("supervisor: %s: empty command", spec.ID)
	}
	if spec.Port < 0 || spec.Port > 65535 {
		return fmt.Errorf("supervisor: %s: bad port %d", spec.ID, spec.Port)
	}
	if spec.Limits.MemoryBytes < 0 || spec.Limits.CPU < 0 {
		return fmt.Errorf("supervisor: %s: negative limits", spec.ID)
	}
	return nil
}

func validID(id string) error {
	if id == "" || len(id) > 200 || id[0] == '.' {
		return fmt.Errorf("supervisor: bad instance ID %q", id)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("supervisor: bad instance ID %q: only letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}
