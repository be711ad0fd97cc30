package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// LineWriter is an optional ability of Run's writer: if w implements it,
// Run hands it each Line (with its stream) instead of writing the text.
type LineWriter interface {
	WriteLine(Line) error
}

// Run runs a one-off process (pier run) with spec's command, environment,
// user, directory and limits, and no restarts. Output lines go to
// Options.Output and, as they come, to w if it is not nil: as "text\n", or
// through WriteLine if w is a LineWriter. w is never called after Run
// returns; after its first error it is not called again. spec.ID may be
// empty (one is made up for the pid file and cgroup).
//
// Run returns the exit code (128+n for a process killed by signal n). If
// ctx ends first, the process group gets SIGTERM, then SIGKILL after
// spec.Grace, and Run returns the exit code with ctx's error. A process
// that could not be started returns -1 and the error.
func (s *Supervisor) Run(ctx context.Context, spec Spec, w io.Writer) (exitCode int, err error) {
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	if spec.ID == "" {
		s.mu.Lock()
		s.runSeq++
		spec.ID = fmt.Sprintf("run-%d-%d", os.Getpid(), s.runSeq)
		s.mu.Unlock()
	}
	spec = withDefaults(spec)
	if err := validate(spec); err != nil {
		return -1, err
	}

	var write func(Line)
	var (
		wmu    sync.Mutex // guards werr, closed; held while writing to w
		werr   error
		closed bool
	)
	if w != nil {
		lw, _ := w.(LineWriter)
		write = func(l Line) {
			wmu.Lock()
			defer wmu.Unlock()
			if closed || werr != nil {
				return
			}
			if lw != nil {
				werr = lw.WriteLine(l)
			} else {
				_, werr = io.WriteString(w, l.Text+"\n")
			}
		}
		defer func() {
			wmu.Lock()
			closed = true
			wmu.Unlock()
		}()
	}

	// Locked for the process's life: see spawn.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, err := s.spawn(spec, nil, write)
	if err != nil {
		return -1, err
	}
	var deadline time.Time
	var ctxErr error
	select {
	case <-p.waited:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		deadline = time.Now().Add(spec.Grace)
		p.signal(syscall.SIGTERM)
		t := time.NewTimer(spec.Grace)
		select {
		case <-p.waited:
		case <-t.C:
			p.signal(syscall.SIGKILL)
			<-p.waited
		}
		t.Stop()
	}
	s.finish(p, deadline, nil)
	return exitStatus(p), ctxErr
}

// exitStatus is the shell's view of how a reaped process ended.
func exitStatus(p *proc) int {
	ps := p.cmd.ProcessState
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
