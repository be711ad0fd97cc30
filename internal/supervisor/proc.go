package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is one started process: an instance's current incarnation or a
// one-off run. Its fields are set by spawn and then only read, except
// waitErr, which is written before waited is closed.
type proc struct {
	spec    Spec
	cmd     *exec.Cmd
	pid     int // also the process group ID (Setpgid)
	started time.Time
	limits  string  // Status.Limits for this process
	cg      *cgroup // nil when the process runs without limits
	pidFile string  // "" when not written

	waited  chan struct{} // closed when cmd.Wait returned
	waitErr error         // set before waited is closed
	outDone chan struct{} // closed when stdout and stderr reached EOF
	dropped atomic.Int64  // lines not passed to Options.Output because it was slow
}

// spawn starts spec's command. The caller must hold its OS thread locked
// (runtime.LockOSThread) from before spawn until the process is reaped:
// Pdeathsig is sent when the thread that started the child exits.
// Each output line goes to ring (if not nil), to Options.Output (dropped when
// it lags) and to w (if not nil; called synchronously, so it may slow the
// child down like a terminal would).
func (s *Supervisor) spawn(spec Spec, ring *ring, w func(Line)) (*proc, error) {
	p := &proc{spec: spec, waited: make(chan struct{}), outDone: make(chan struct{})}
	cgFD := -1
	p.limits, p.cg = s.cg.open(spec.ID, spec.Limits)
	if p.cg != nil {
		cgFD = p.cg.fd
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		p.cg.remove(s.log)
		return nil, fmt.Errorf("start %s: %w", spec.Instance, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		p.cg.remove(s.log)
		return nil, fmt.Errorf("start %s: %w", spec.Instance, err)
	}

	cmd := exec.Command("/bin/sh", "-c", shellLine(spec.Command))
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	cmd.Stdout = outW // *os.File: handed to the child as is, no copying goroutine
	cmd.Stderr = errW
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if u := spec.User; u != nil {
		cred := &syscall.Credential{Uid: u.Uid, Gid: u.Gid}
		// As root, drop the engine's supplementary groups (setgroups with an
		// empty list); otherwise setgroups would fail, so leave them.
		cred.NoSetGroups = os.Geteuid() != 0
		attr.Credential = cred
	}
	if cgFD >= 0 {
		attr.UseCgroupFD = true
		attr.CgroupFD = cgFD
	}
	cmd.SysProcAttr = attr
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		p.cg.remove(s.log)
		return nil, fmt.Errorf("start %s: %w", spec.Instance, err)
	}
	p.cmd = cmd
	p.pid = cmd.Process.Pid
	p.started = time.Now()
	p.pidFile = s.writePidFile(spec.ID, p.pid)

	// Output: two readers feed one dispatcher that calls Options.Output.
	lines := make(chan Line, 1024)
	deliver := func(l Line) {
		ring.add(l)
		if w != nil {
			w(l)
		}
		select {
		case lines <- l:
		default:
			if p.dropped.Add(1) == 1 {
				s.log.Warn("output consumer is slow; dropping lines", "instance", spec.ID)
			}
		}
	}
	var readers sync.WaitGroup
	readers.Go(func() { readLines(outR, spec, "stdout", deliver) })
	readers.Go(func() { readLines(errR, spec, "stderr", deliver) })
	go func() {
		readers.Wait()
		close(lines)
		close(p.outDone)
	}()
	go func() {
		for l := range lines {
			s.output(l)
		}
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.waited)
	}()
	return p, nil
}

// shellLine is what /bin/sh -c runs for command: "exec <command>" so the
// app replaces the shell and is the process that gets signals and whose exit
// status counts — unless command is a compound line ("a && b", "a; b",
// "cd x && y", pipes, subshells), which exec would cut short; those run
// under the shell (Stop still reaches every process: it signals the group).
func shellLine(command string) string {
	plain := strings.NewReplacer(">&", "", "<&", "").Replace(command) // 2>&1 is a redirection
	if strings.ContainsAny(plain, ";&|()`\n") {
		return command
	}
	return "exec " + command
}

// signal sends sig to the process group. SIGKILL also empties the cgroup,
// which reaches processes that left the group.
func (p *proc) signal(sig syscall.Signal) {
	if sig == syscall.SIGKILL && p.cg != nil {
		p.cg.kill()
	}
	_ = syscall.Kill(-p.pid, sig) // ESRCH: the group is gone already
}

// groupAlive reports whether any live process is left in the process
// group. Zombies do not count: orphans wait for init to reap them, and an
// init that never does (the engine as PID 1 of a container) must not make
// every Stop wait for the whole grace period.
func (p *proc) groupAlive() bool {
	if syscall.Kill(-p.pid, 0) != nil {
		return false
	}
	return len(groupMembers(p.pid, 0)) > 0
}

// exitString is the process's exit as the CLI shows it.
func (p *proc) exitString() string {
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error()
}

// finish cleans up after the process was reaped: it waits for the rest of
// the process group until deadline (zero: not at all) or until kill is
// closed, SIGKILLs what is left, waits briefly for the output to drain, and
// removes the pid file and the cgroup.
func (s *Supervisor) finish(p *proc, deadline time.Time, kill <-chan struct{}) {
	if !deadline.IsZero() {
		t := time.NewTicker(50 * time.Millisecond)
	wait:
		for p.groupAlive() && time.Now().Before(deadline) {
			select {
			case <-t.C:
			case <-kill:
				break wait
			}
		}
		t.Stop()
	}
	p.signal(syscall.SIGKILL)
	select {
	case <-p.outDone:
	case <-time.After(time.Second):
		// A process that escaped the group still holds the pipe; its
		// reader ends when it does.
	}
	if n := p.dropped.Load(); n > 0 {
		s.log.Warn("output lines dropped: consumer too slow", "instance", p.spec.ID, "lines", n)
	}
	if p.pidFile != "" {
		if err := os.Remove(p.pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("remove pid file", "err", err)
		}
	}
	p.cg.remove(s.log)
}

// readLines passes each line of r to deliver, cutting lines longer than
// maxLine into pieces. It reads until EOF or an error, never stopping early,
// so the child never blocks on a full pipe because of us.
func readLines(r io.ReadCloser, spec Spec, stream string, deliver func(Line)) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	sc.Split(splitLines)
	for sc.Scan() {
		deliver(Line{
			Time:     time.Now(),
			App:      spec.App,
			Release:  spec.Release,
			Process:  spec.Process,
			Instance: spec.Instance,
			Stream:   stream,
			Text:     sc.Text(),
		})
	}
	// Scan stops only at EOF or a read error; keep draining on an error so
	// the child cannot block on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// splitLines is bufio.ScanLines that cuts a line at maxLine bytes instead of
// failing with ErrTooLong.
func splitLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, bytes.TrimSuffix(data[:i], []byte{'\r'}), nil
	}
	if len(data) >= maxLine {
		return maxLine, data[:maxLine], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// ring keeps the last tailLines lines of an instance.
type ring struct {
	mu    sync.Mutex // guards lines, next, full
	lines [tailLines]Line
	next  int
	full  bool
}

func (r *ring) add(l Line) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

// last returns up to n of the most recent lines, oldest first.
func (r *ring) last(n int) []Line {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	count := r.next
	if r.full {
		count = len(r.lines)
	}
	n = min(n, count)
	out := make([]Line, 0, n)
	for k := n; k > 0; k-- {
		out = append(out, r.lines[(r.next-k+len(r.lines))%len(r.lines)])
	}
	return out
}
