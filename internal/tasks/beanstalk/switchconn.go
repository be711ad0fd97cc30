package beanstalk

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"time"

	"pier/internal/netwait"
)

// switchConn is a client connection that moves between Go's network
// poller and a thread of its own (threadConn, threadconn_linux.go) as it
// works and idles. It takes a thread at a command boundary when one of
// Options.ThreadConns is free, and gives it back when it waits — its
// read finds nothing for threadIdle, or a reserve waits for a task — so
// that idle connections (a worker waiting in reserve, a client between
// bursts) leave the threads to busy ones.
//
// A thread helps a client in lockstep on an otherwise quiet server; with
// more connections busy than threads it costs instead: the threaded
// connection's thread sleeps and wakes once per command where goroutines
// in the poller find each other's work (measured with 8 connections
// under bench/tasks: about 1.7 context switches per job against 0.95).
// So a threaded connection gives its thread back as soon as a connection
// in the poller runs a command, and no thread is taken for contendedFor
// after that.
//
// Only the connection's goroutine reads, writes and moves it; hangUp,
// from another, sets deadlines, which are kept for the socket it moves
// to. Lock order: Server.mu, then mu.
type switchConn struct {
	s *Server
	// mu guards cur and threaded (the owner reads them without it: only
	// it writes them), readDL, writeDL and noThread.
	mu       sync.Mutex
	cur      net.Conn
	threaded bool
	// readDL and writeDL are the deadlines hangUp set.
	readDL, writeDL time.Time
	// noThread: taking a thread failed once; not tried again.
	noThread bool
	// seen is Server.polled when the connection took its thread.
	seen uint64
	cmds uint32 // commands while threaded, for yieldEvery
	skip uint32 // commands before toThread looks at the clock again
	// drained: the last read(2) came back short, so the socket was empty
	// then and a wait for its next edge cannot miss a command.
	drained bool
	// wait is waitFor's waiter (nil for a threaded socket, or none).
	wait    *netwait.Waiter
	waitFor net.Conn
}

// contendedFor is how long no thread is taken after a threaded
// connection saw others busy: moves cost a few system calls each, so at
// most a pair per this period while many connections work.
const contendedFor = 100 * time.Millisecond

// calmSkip: a connection that found the server calm (no thread to take)
// looks again after this many of its commands: about a millisecond at one
// connection's rate.
const calmSkip = 64

// between runs at each command boundary of the connection's goroutine;
// buffered: its reader holds more input (no move then). A connection left
// in the poller with nothing buffered then waits for the client's next
// command without a read(2) bound to find nothing (netwait), when its
// last read emptied the socket: a client in lockstep sends it only after
// the reply just written.
func (sc *switchConn) between(buffered bool) {
	sc.move(buffered)
	if !buffered && !sc.threaded && sc.drained {
		if sc.waitFor != sc.cur {
			sc.waitFor, sc.wait = sc.cur, netwait.New(sc.cur)
		}
		sc.wait.Wait()
	}
}

// move takes a thread or gives it back, as between's comment says.
func (sc *switchConn) move(buffered bool) {
	s := sc.s
	if s.maxThreads == 0 {
		return
	}
	if !sc.threaded {
		// Only a threaded connection looks at polled: while none is,
		// counting would only pass a shared cache line between cores.
		if s.threads.Load() > 0 {
			s.polled.Add(1)
		}
		if !buffered {
			sc.toThread()
		}
		return
	}
	if s.polled.Load() != sc.seen {
		// Another connection works: threads would slow the lot.
		s.calmFrom.Store(s.clock() + int64(contendedFor))
		sc.toPoller()
		return
	}
	// A goroutine that never parks looks, to the runtime's monitor, like
	// one running for too long: every 10 ms it would take the P back from
	// the thread's read(2) and then watch the Ps at 20 µs intervals for a
	// while. Going through the scheduler now and then (a few hundred ns)
	// shows it is not.
	if sc.cmds++; sc.cmds%yieldEvery == 0 {
		runtime.Gosched()
	}
}

// yieldEvery: a threaded connection yields once per this many commands
// (about every 5 ms at one connection's rate on the bench machine).
const yieldEvery = 256

// threadIdle is how long a threaded connection's read waits before it
// gives the thread back: far above a client's round trip, short enough
// that a busy connection soon gets the thread an idle one had.
const threadIdle = 10 * time.Millisecond

// errIdle: a threaded read found nothing for threadIdle.
var errIdle = errors.New("beanstalk: connection idle")

var _ net.Conn = (*switchConn)(nil)

func (sc *switchConn) Read(p []byte) (int, error) {
	for {
		n, err := sc.cur.Read(p)
		if err == errIdle {
			sc.toPoller()
			continue
		}
		sc.drained = err == nil && n < len(p)
		return n, err
	}
}

func (sc *switchConn) Write(p []byte) (int, error) { return sc.cur.Write(p) }

// toThread moves the connection to a thread of its own if one is free.
// Called by its goroutine between commands, with nothing buffered.
func (sc *switchConn) toThread() {
	s := sc.s
	if sc.threaded || sc.noThread || s.threads.Load() >= s.maxThreads {
		return
	}
	if sc.skip > 0 {
		sc.skip--
		return
	}
	if s.clock() < s.calmFrom.Load() {
		sc.skip = calmSkip // not the clock at every command while calm
		return
	}
	if s.threads.Add(1) > s.maxThreads {
		s.threads.Add(-1)
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	tc, err := takeThread(sc.cur, threadIdle)
	if err != nil {
		s.threads.Add(-1)
		sc.noThread = true
		s.log.Debug("beanstalk connection stays in the poller", "err", err)
		return
	}
	sc.adopt(tc)
	sc.threaded = true
	sc.seen = s.polled.Load()
}

// toPoller gives the connection's thread back: it moves to the poller.
// Called by its goroutine when it is to wait.
func (sc *switchConn) toPoller() {
	if !sc.threaded {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	nc, err := untakeThread(sc.cur)
	if err != nil {
		// Keep the thread (and stop timing out idle reads).
		sc.noThread = true
		sc.s.log.Warn("beanstalk connection cannot go back to the poller", "err", err)
		return
	}
	sc.adopt(nc)
	sc.threaded = false
	sc.s.threads.Add(-1)
}

// adopt makes nc the connection's socket, with hangUp's deadlines.
// Caller holds mu.
func (sc *switchConn) adopt(nc net.Conn) {
	if !sc.readDL.IsZero() {
		nc.SetReadDeadline(sc.readDL)
	}
	if !sc.writeDL.IsZero() {
		nc.SetWriteDeadline(sc.writeDL)
	}
	sc.cur = nc
}

func (sc *switchConn) Close() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.threaded {
		sc.threaded = false
		sc.s.threads.Add(-1)
	}
	return sc.cur.Close()
}

func (sc *switchConn) LocalAddr() net.Addr  { return sc.cur.LocalAddr() }
func (sc *switchConn) RemoteAddr() net.Addr { return sc.cur.RemoteAddr() }

func (sc *switchConn) SetReadDeadline(t time.Time) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.readDL = t
	return sc.cur.SetReadDeadline(t)
}

func (sc *switchConn) SetWriteDeadline(t time.Time) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.writeDL = t
	return sc.cur.SetWriteDeadline(t)
}

func (sc *switchConn) SetDeadline(t time.Time) error {
	return errors.Join(sc.SetReadDeadline(t), sc.SetWriteDeadline(t))
}
