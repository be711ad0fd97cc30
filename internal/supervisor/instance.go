package supervisor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Instance is one supervised process (and its restarts). Its loop goroutine
// owns the process; the methods talk to it through channels and read its
// Status under mu.
type Instance struct {
	s    *Supervisor
	spec Spec // with defaults applied; read-only
	out  ring // last output lines, across restarts

	stopOnce sync.Once
	stopCh   chan struct{} // closed by Stop: no more restarts, SIGTERM
	killOnce sync.Once
	killCh   chan struct{} // closed when a Stop's ctx ended: SIGKILL at once
	done     chan struct{} // closed when the loop ended: process reaped, instance removed

	mu   sync.Mutex // guards st, last
	st   Status
	last *attempt // the current or most recent process; nil before the first

	// Owned by the loop goroutine, no lock.
	consecutive int         // crashes since the last healthy run
	crashes     []time.Time // crash times within policy.window
	crashLoop   bool
}

// attempt tracks one process of an instance for WaitReady.
type attempt struct {
	p     *proc
	ready chan struct{} // closed by the loop once Status.Ready is true
	over  chan struct{} // closed by the loop once the process was reaped and cleaned up
	exit  string        // exitString, set before over is closed

	mu       sync.Mutex // guards probeErr
	probeErr error      // why the last readiness probe failed
}

func newInstance(s *Supervisor, spec Spec) *Instance {
	return &Instance{
		s:      s,
		spec:   spec,
		stopCh: make(chan struct{}),
		killCh: make(chan struct{}),
		done:   make(chan struct{}),
		st: Status{
			ID: spec.ID, App: spec.App, Release: spec.Release, Process: spec.Process,
			Instance: spec.Instance, Port: spec.Port, State: Starting,
		},
	}
}

// Status returns a snapshot of the instance.
func (i *Instance) Status() Status {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.st
}

// Tail returns the instance's last output lines (up to 50), oldest first.
func (i *Instance) Tail() []Line { return i.out.last(tailLines) }

// Stop ends the instance: no more restarts; SIGTERM to the process group,
// up to Spec.Grace for the group to exit, then SIGKILL. It returns when the
// process is reaped. If ctx ends first, the group is SIGKILLed at once and
// Stop returns ctx's error once the process is reaped. Idempotent.
func (i *Instance) Stop(ctx context.Context) error {
	i.stopOnce.Do(func() { close(i.stopCh) })
	select {
	case <-i.done:
		return nil
	case <-ctx.Done():
		i.killOnce.Do(func() { close(i.killCh) })
		<-i.done
		return fmt.Errorf("stop %s: killed: %w", i.spec.ID, ctx.Err())
	}
}

// WaitReady blocks until the current process is ready: its port accepts a
// TCP connection, or its health path answers 2xx/3xx (probed every 100ms),
// or at once for a process without a port. It returns an error as soon as
// the process exits first, when Spec.ReadyTimeout has passed since the
// process started, when the instance is stopped, or when ctx ends. Errors
// about the process carry a short tail of its output.
func (i *Instance) WaitReady(ctx context.Context) error {
	i.mu.Lock()
	a, st := i.last, i.st
	i.mu.Unlock()
	name := i.spec.Instance
	switch {
	case a == nil || st.State == Failed:
		return fmt.Errorf("%s could not be started: %s", name, st.LastExit)
	case st.State == Stopping || st.State == Stopped:
		return fmt.Errorf("%s was stopped", name)
	}
	select {
	case <-a.ready:
		return nil
	default:
	}
	timer := time.NewTimer(time.Until(a.p.started.Add(i.spec.ReadyTimeout)))
	defer timer.Stop()
	select {
	case <-a.ready:
		return nil
	case <-a.over:
		select {
		case <-a.ready:
			return nil
		default:
		}
		return fmt.Errorf("%s exited before it was ready: %s%s", name, a.exit, i.tailText())
	case <-i.stopCh:
		return fmt.Errorf("%s was stopped before it was ready", name)
	case <-timer.C:
		what := fmt.Sprintf("did not answer on port %d", i.spec.Port)
		if i.spec.Health != "" {
			what = fmt.Sprintf("did not answer GET %s on port %d", i.spec.Health, i.spec.Port)
		}
		a.mu.Lock()
		why := a.probeErr
		a.mu.Unlock()
		if why != nil {
			return fmt.Errorf("%s %s within %s (%v)%s", name, what, i.spec.ReadyTimeout, why, i.tailText())
		}
		return fmt.Errorf("%s %s within %s%s", name, what, i.spec.ReadyTimeout, i.tailText())
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting until ready: %w", name, ctx.Err())
	}
}

// tailText formats the last few output lines for an error message.
func (i *Instance) tailText() string {
	lines := i.out.last(10)
	if len(lines) == 0 {
		return " (no output)"
	}
	var b strings.Builder
	b.WriteString("; last output:")
	for _, l := range lines {
		b.WriteString("\n  ")
		b.WriteString(l.Text)
	}
	return b.String()
}

// change runs f under mu (f updates st and last), then reports the new
// status to OnChange outside the lock.
func (i *Instance) change(f func()) {
	i.mu.Lock()
	f()
	st := i.st
	i.mu.Unlock()
	i.s.onChange(st)
}

// loop runs the instance until it is stopped: start, watch, clean up,
// back off, start again. It reports the first start's result on started.
func (i *Instance) loop(started chan<- error) {
	defer close(i.done)
	defer i.s.remove(i)
	log := i.s.log.With("instance", i.spec.ID)
	defer func() {
		if r := recover(); r != nil {
			log.Error("supervisor loop panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	pol := i.s.policy
	for n := 0; ; n++ {
		var exit string
		var ran time.Duration

		// The thread stays locked while the process lives: it is the
		// child's parent for Pdeathsig, and no other goroutine can end it.
		runtime.LockOSThread()
		p, err := i.s.spawn(i.spec, &i.out, nil)
		if err != nil {
			runtime.UnlockOSThread()
			if n == 0 {
				i.change(func() { i.st.State = Failed; i.st.LastExit = err.Error() })
				started <- err
				return
			}
			exit = err.Error()
		} else {
			a := &attempt{p: p, ready: make(chan struct{}), over: make(chan struct{})}
			i.mu.Lock()
			i.last = a
			i.st.PID, i.st.StartedAt, i.st.Limits, i.st.Restarts = p.pid, p.started, p.limits, n
			i.st.Ready = false
			i.st.State = Starting
			if i.crashLoop {
				i.st.State = CrashLoop
			}
			st := i.st
			i.mu.Unlock()
			if n == 0 {
				// Once the status names the process: Start's caller may
				// read it at once.
				started <- nil
			}
			i.s.onChange(st)
			log.Debug("started", "pid", p.pid, "restarts", n)
			stopped, deadline := i.watch(a)
			i.s.finish(p, deadline, i.killCh)
			runtime.UnlockOSThread()
			a.exit = p.exitString()
			close(a.over)
			if stopped {
				i.change(func() { i.st.State, i.st.PID, i.st.Ready, i.st.LastExit = Stopped, 0, false, a.exit })
				log.Debug("stopped", "exit", a.exit)
				return
			}
			exit, ran = a.exit, time.Since(p.started)
		}

		// A crash: count it and wait before the next start.
		now := time.Now()
		if ran >= pol.reset {
			i.healthy()
		}
		i.consecutive++
		kept := i.crashes[:0]
		for _, t := range i.crashes {
			if now.Sub(t) < pol.window {
				kept = append(kept, t)
			}
		}
		i.crashes = append(kept, now)
		if len(i.crashes) >= pol.loop {
			i.crashLoop = true
		}
		delay, state := pol.delay(i.consecutive), Backoff
		if i.crashLoop {
			delay, state = pol.max, CrashLoop
		}
		i.change(func() { i.st.State, i.st.PID, i.st.Ready, i.st.LastExit = state, 0, false, exit })
		log.Warn("process exited; restarting", "exit", exit, "in", delay, "state", state)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-i.stopCh:
			t.Stop()
			i.change(func() { i.st.State = Stopped })
			return
		}
		select {
		case <-i.stopCh:
			i.change(func() { i.st.State = Stopped })
			return
		default:
		}
	}
}

// healthy forgets past crashes after a long enough run.
func (i *Instance) healthy() {
	i.consecutive, i.crashes, i.crashLoop = 0, nil, false
}

// watch waits for the process to exit, handling readiness, the healthy
// timer and Stop on the way. It returns whether Stop was called and, if
// so, until when the rest of the process group may take to exit.
func (i *Instance) watch(a *attempt) (stopped bool, deadline time.Time) {
	p := a.p
	probeOK := make(chan struct{})
	quit := make(chan struct{})
	defer close(quit)
	go i.probe(a, probeOK, quit)

	reset := time.NewTimer(i.s.policy.reset)
	defer reset.Stop()
	stop, kill := i.stopCh, i.killCh
	var grace <-chan time.Time
	for {
		select {
		case <-probeOK:
			probeOK = nil
			i.change(func() {
				i.st.Ready = true
				if i.st.State == Starting {
					i.st.State = Running
				}
			})
			close(a.ready)
		case <-reset.C:
			wasLoop := i.crashLoop
			i.healthy()
			if wasLoop {
				i.change(func() {
					i.st.State = Starting
					if i.st.Ready {
						i.st.State = Running
					}
				})
			}
		case <-stop:
			stop = nil
			stopped, deadline = true, time.Now().Add(i.spec.Grace)
			i.change(func() { i.st.State = Stopping })
			p.signal(syscall.SIGTERM)
			t := time.NewTimer(i.spec.Grace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			grace = nil
			p.signal(syscall.SIGKILL)
		case <-kill:
			kill = nil
			p.signal(syscall.SIGKILL)
		case <-p.waited:
			return stopped, deadline
		}
	}
}

// probe checks readiness every 100ms (every second once ReadyTimeout has
// passed) until it succeeds, then closes ok; it ends early when quit closes.
func (i *Instance) probe(a *attempt, ok chan<- struct{}, quit <-chan struct{}) {
	defer func() {
		if r := recover(); r != nil {
			i.s.log.Error("readiness probe panicked", "instance", i.spec.ID, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if i.spec.Port == 0 {
		close(ok)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	slow := time.NewTimer(i.spec.ReadyTimeout)
	defer slow.Stop()
	for {
		err := i.s.check(ctx, i.spec.Port, i.spec.Health, i.spec.HealthH2C)
		if err == nil {
			close(ok)
			return
		}
		a.mu.Lock()
		a.probeErr = err
		a.mu.Unlock()
		select {
		case <-quit:
			return
		case <-slow.C:
			tick.Reset(time.Second)
		case <-tick.C:
		}
	}
}

// check probes 127.0.0.1:port once: a TCP connect, or GET health expecting
// a 2xx or 3xx answer.
func (s *Supervisor) check(ctx context.Context, port int, health string, h2c bool) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if health == "" {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	if !strings.HasPrefix(health, "/") {
		health = "/" + health
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+health, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "pier-supervisor")
	probe := s.probe
	if h2c {
		probe = s.probeH2C
	}
	resp, err := probe.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", health, resp.Status)
	}
	return nil
}
