//go:build linux

package beanstalk

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// threadConn is a TCP connection taken out of Go's network poller: its
// socket is blocking, and its goroutine waits for the next command in
// read(2) on a thread of its own, as beanstalkd waits in epoll_wait.
//
// Why: a client working in lockstep (send a command, wait for the
// answer) gets one command per round trip, and in the poller a round
// trip costs, besides the command and its answer, a read that finds
// nothing (EAGAIN), the goroutine parking, its thread blocking in
// epoll_pwait and the scheduler looking for work on both sides of it,
// and the wake-up of the runtime's monitor thread (sysmon), which sleeps
// whenever every P is idle — between two commands — until the next
// system call wakes it. Measured under bench/tasks with one connection,
// that was a third of the engine's CPU per job. A thread blocked in
// read(2) keeps its P in the system call: woken by the next command, it
// goes on without the scheduler.
//
// The price is an OS thread per such connection while it waits, and its
// P held through short waits (the runtime takes it back for other work),
// so only a few connections at a time are served this way
// (Options.ThreadConns), and only while they work (switchConn); the
// others stay in the poller.
type threadConn struct {
	fd            int
	local, remote net.Addr
	// readEnded: a past read deadline was set (hangUp); reads fail from
	// then on, as they do in the poller, whatever the client still sends.
	readEnded atomic.Bool
}

// threadsWork: this platform has threaded connections.
const threadsWork = true

// takeThread makes a threadConn of nc whose reads fail with errIdle after
// waiting idle (0: never). On success nc is closed; on failure it is left
// as it was.
func takeThread(nc net.Conn, idle time.Duration) (net.Conn, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil, errors.New("beanstalk: not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("beanstalk: take a connection's socket: %w", err)
	}
	// The duplicate is the one kept: closing tc takes its descriptor out
	// of the poller's epoll set, so the poller's thread is not woken by
	// this socket's traffic. Close-on-exec at once: the supervisor starts
	// processes concurrently.
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if err = errors.Join(cerr, err); err != nil {
		return nil, fmt.Errorf("beanstalk: take a connection's socket: %w", err)
	}
	tv := unix.NsecToTimeval(int64(idle))
	if err := errors.Join(unix.SetNonblock(fd, false), unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("beanstalk: take a connection's socket: %w", err)
	}
	t := &threadConn{fd: fd, local: tc.LocalAddr(), remote: tc.RemoteAddr()}
	tc.Close()
	return t, nil
}

// untakeThread moves a threadConn's socket back to the poller: a
// net.Conn of it, without the deadlines set before. On success the
// threadConn is closed; on failure it is left as it was.
func untakeThread(nc net.Conn) (net.Conn, error) {
	t, ok := nc.(*threadConn)
	if !ok {
		return nil, errors.New("beanstalk: not a threaded connection")
	}
	var none unix.Timeval
	err := errors.Join(unix.SetNonblock(t.fd, true),
		unix.SetsockoptTimeval(t.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &none),
		unix.SetsockoptTimeval(t.fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &none))
	if err != nil {
		unix.SetNonblock(t.fd, false)
		return nil, fmt.Errorf("beanstalk: give a connection's socket back to the poller: %w", err)
	}
	// FileConn duplicates the descriptor (close-on-exec) into the poller;
	// the File, and the threadConn's descriptor with it, is closed after.
	f := os.NewFile(uintptr(t.fd), "beanstalk")
	pc, err := net.FileConn(f)
	if err != nil {
		unix.SetNonblock(t.fd, false)
		return nil, fmt.Errorf("beanstalk: give a connection's socket back to the poller: %w", err)
	}
	f.Close()
	t.fd = -1
	return pc, nil
}

func (t *threadConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if t.readEnded.Load() {
			return 0, t.deadlineErr("read")
		}
		n, err := unix.Read(t.fd, p)
		switch {
		case t.readEnded.Load():
			return 0, t.deadlineErr("read") // what it read came after the deadline
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN: // SO_RCVTIMEO: nothing for the idle time
			return 0, errIdle
		case err != nil:
			return 0, &net.OpError{Op: "read", Net: "tcp", Source: t.local, Addr: t.remote, Err: os.NewSyscallError("read", err)}
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (t *threadConn) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(t.fd, p[done:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN: // SO_SNDTIMEO (SetWriteDeadline) passed
			return done, t.deadlineErr("write")
		case err != nil:
			return done, &net.OpError{Op: "write", Net: "tcp", Source: t.local, Addr: t.remote, Err: os.NewSyscallError("write", err)}
		}
		done += n
	}
	return done, nil
}

// Close closes the socket once (a descriptor closed twice could be
// another file's by then).
func (t *threadConn) Close() error {
	if t.fd < 0 {
		return net.ErrClosed
	}
	fd := t.fd
	t.fd = -1
	return unix.Close(fd)
}

func (t *threadConn) LocalAddr() net.Addr  { return t.local }
func (t *threadConn) RemoteAddr() net.Addr { return t.remote }

func (t *threadConn) deadlineErr(op string) error {
	return &net.OpError{Op: op, Net: "tcp", Source: t.local, Addr: t.remote, Err: os.ErrDeadlineExceeded}
}

// SetReadDeadline supports what the server needs (hangUp): a deadline
// now or past ends reading, as in the poller — every read fails from then
// on, and shutdown(2) ends one blocked in the kernel at once. A later
// deadline is refused; the zero time is no deadline.
func (t *threadConn) SetReadDeadline(d time.Time) error {
	if d.IsZero() {
		return nil
	}
	if time.Until(d) > 0 {
		return errors.New("beanstalk: a threaded connection takes only a past read deadline")
	}
	t.readEnded.Store(true)
	return unix.Shutdown(t.fd, unix.SHUT_RD)
}

// SetWriteDeadline bounds each later write(2) by the time left until d
// (SO_SNDTIMEO; zero: no bound): a client that does not read its
// answers cannot hold the connection past it.
func (t *threadConn) SetWriteDeadline(d time.Time) error {
	var left time.Duration
	if !d.IsZero() {
		left = max(time.Until(d), time.Microsecond)
	}
	tv := unix.NsecToTimeval(int64(left))
	return unix.SetsockoptTimeval(t.fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
}

func (t *threadConn) SetDeadline(d time.Time) error {
	return errors.Join(t.SetReadDeadline(d), t.SetWriteDeadline(d))
}
