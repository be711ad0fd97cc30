// Package beanstalk serves pier's task queues over the beanstalkd protocol
// (https://github.com/beanstalkd/beanstalkd/blob/master/doc/protocol.txt),
// so existing beanstalkd clients work unchanged. It is only the wire: each
// command is looked up in a verb table and handed to the tasks package.
//
// Tubes are the app's queues: a tube name must also be a valid queue name
// (lower-case letters, digits, '_' and '-'), else BAD_FORMAT.
//
// # Which app a connection works on
//
// On an engine running a single app, a connection that has not
// authenticated works on that app — clients need no change at all. A
// connection authenticates by naming a tube as "<token>/<tube>" in use or
// watch, where <token> is the app's PIER_TOKEN (e.g. "use
// blog.4f9c.../email"): from then on the connection belongs to that app,
// and plain tube names (and any further "<token>/<tube>" of the same app)
// work. Until a connection belongs to an app, commands that need one are
// answered "UNAUTHORIZED" (not a beanstalkd reply: clients report it as
// an unexpected answer). "default" is an ordinary queue of the app.
package beanstalk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pier/internal/tasks"
)

// Options configure New.
type Options struct {
	Tasks  *tasks.Service // required
	Logger *slog.Logger   // nil discards
	// AppForToken resolves an app's own token to the app.
	AppForToken func(ctx context.Context, token string) (app string, ok bool)
	// SoleApp returns the engine's only app, ok false when there are none
	// or several. Nil: connections must authenticate.
	SoleApp func(ctx context.Context) (app string, ok bool)
	// ThreadConns is how many connections at once are served on a thread
	// of their own, out of Go's network poller (threadconn_linux.go): a
	// client working in lockstep gets more commands per second, for an
	// OS thread while it waits. Busy connections take them as they free
	// up (switchConn); the others use the poller. 0: GOMAXPROCS-1 (none
	// with a single P: the thread's P is held through short waits);
	// negative: none.
	ThreadConns int
}

// Server accepts beanstalkd connections.
type Server struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex // guards conns, ln; held to set stopping
	conns map[net.Conn]struct{}
	ln    net.Listener
	wg    sync.WaitGroup
	// stopping is set when Serve's ctx ends: puts are answered DRAINING
	// (beanstalkd's drain mode) and connections close after the command
	// they are running.
	stopping atomic.Bool
	// threads counts the connections on a thread of their own
	// (switchConn), at most maxThreads. polled counts the commands of
	// connections in the poller; calmFrom is when (clock) threads may be
	// taken again after a threaded connection saw others busy.
	threads    atomic.Int32
	maxThreads int32
	polled     atomic.Uint64
	calmFrom   atomic.Int64
	epoch      time.Time
}

// clock is monotonic nanoseconds since New.
func (s *Server) clock() int64 { return int64(time.Since(s.epoch)) }

// rDraining answers a put while the server stops, as beanstalkd's drain mode.
const rDraining = "DRAINING"

// errHangUp: the server is stopping; the connection closes unanswered.
var errHangUp = errors.New("beanstalk: server stopping")

// stopGrace bounds how long a stopping server waits for a reply to reach
// a client that does not read it.
const stopGrace = 2 * time.Second

// hangUp makes c's goroutine leave after the command it is running: its
// next read fails at once (commands already in its buffer still get their
// answer), and a blocked write gives up after stopGrace. Caller holds s.mu.
func hangUp(c net.Conn) {
	c.SetReadDeadline(time.Now())
	c.SetWriteDeadline(time.Now().Add(stopGrace))
}

// New returns a server; Serve runs it.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	threads := opts.ThreadConns
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0) - 1
	}
	if !threadsWork {
		threads = 0
	}
	return &Server{opts: opts, log: opts.Logger, conns: map[net.Conn]struct{}{}, maxThreads: int32(max(threads, 0)), epoch: time.Now()}
}

// Serve accepts connections on ln until ctx ends. Then it stops
// gracefully: the listener closes, each connection finishes the command it
// is running (a put read whole is answered: INSERTED, or DRAINING once the
// stop began) and closes, and Serve returns when all have — so that the
// caller can close the tasks service's journal after the last put it took.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		ln.Close()
		s.mu.Lock()
		s.stopping.Store(true)
		for c := range s.conns {
			hangUp(c)
		}
		s.mu.Unlock()
	}()
	defer s.wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("beanstalk: accept: %w", err)
		}
		c := &switchConn{s: s, cur: nc}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		if s.stopping.Load() {
			hangUp(c) // accepted as the listener closed
		}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.serveConn(ctx, c)
		}()
	}
}

// conn is one client connection's state; only its goroutine touches it.
type conn struct {
	s  *Server
	nc *switchConn
	// ctx is for the work of a command, which runs to its end when the
	// server stops; wait (Serve's) ends a blocking reserve then.
	ctx, wait context.Context
	r         *bufio.Reader
	w         *bufio.Writer
	app       string
	sess      *tasks.Session
	used      string
	watched   []string
}

func (s *Server) serveConn(ctx context.Context, nc *switchConn) {
	c := &conn{
		s: s, nc: nc, ctx: context.WithoutCancel(ctx), wait: ctx,
		r:    bufio.NewReaderSize(nc, 4096),
		w:    bufio.NewWriterSize(nc, 4096),
		used: "default", watched: []string{"default"},
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("beanstalk connection crashed", "panic", v, "stack", string(debug.Stack()))
		}
		if c.sess != nil {
			c.sess.Close()
		}
	}()
	for {
		nc.between(c.r.Buffered() > 0)
		line, err := readLine(c.r)
		if err != nil {
			var pe protoError
			if errors.As(err, &pe) {
				c.reply(string(pe))
				if c.flush() != nil {
					return
				}
				continue
			}
			return
		}
		cmd, err := parse(line)
		if err != nil {
			c.reply(err.Error())
		} else if cmd.verb == "quit" {
			c.flush()
			return
		} else if !c.run(cmd) {
			c.flush()
			return
		}
		if c.r.Buffered() == 0 {
			if c.flush() != nil {
				return
			}
		}
	}
}

// run executes one command; false closes the connection.
func (c *conn) run(cmd command) (keep bool) {
	defer func() {
		if v := recover(); v != nil {
			c.s.log.Error("beanstalk command crashed", "verb", cmd.verb, "panic", v, "stack", string(debug.Stack()))
			c.reply(rInternal)
			keep = true
		}
	}()
	h := handlers[cmd.verb]
	if cmd.verb == "put" {
		// The body follows whatever happens next; read it first.
		body, ok := c.readBody(cmd.bytes)
		if !ok {
			return false
		}
		if body == nil {
			return true // JOB_TOO_BIG or EXPECTED_CRLF already answered
		}
		cmd.body = body
	}
	if needsApp(cmd.verb) && !c.authenticate(cmd) {
		c.reply(rUnauthorized)
		return true
	}
	if err := h(c, cmd); err != nil {
		var pe protoError
		switch {
		case errors.Is(err, errHangUp):
			return false
		case errors.As(err, &pe):
			c.reply(string(pe))
		case errors.Is(err, tasks.ErrNotFound):
			c.reply(rNotFound)
		case errors.Is(err, tasks.ErrBadQueue):
			c.reply(rBadFormat)
		case errors.Is(err, tasks.ErrTooBig):
			c.reply(rJobTooBig)
		case errors.Is(err, tasks.ErrDraining):
			c.reply(rDraining)
		default:
			c.s.log.Warn("beanstalk command failed", "verb", cmd.verb, "app", c.app, "err", err)
			c.reply(rInternal)
		}
	}
	return true
}

// readBody reads a put's body of n bytes and its CRLF. A body over the
// size limit is skipped and answered JOB_TOO_BIG; a missing CRLF is
// answered EXPECTED_CRLF. ok is false when the connection failed.
func (c *conn) readBody(n int) (body []byte, ok bool) {
	limit := c.s.opts.Tasks.MaxBody()
	if n > limit {
		if _, err := io.CopyN(io.Discard, c.r, int64(n)+2); err != nil {
			return nil, false
		}
		c.reply(rJobTooBig)
		return nil, true
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return nil, false
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		c.reply(rExpectedCRLF)
		return nil, true
	}
	return buf[:n], true
}

// needsApp: every verb but quit works on an app's queues.
func needsApp(verb string) bool { return verb != "quit" }

// authenticate makes sure the connection belongs to an app: from a
// "<token>/<tube>" argument, else the engine's sole app.
func (c *conn) authenticate(cmd command) bool {
	if (cmd.verb == "use" || cmd.verb == "watch" || cmd.verb == "ignore" || cmd.verb == "stats-tube" || cmd.verb == "pause-tube") && cmd.tube != "" {
		if tok, _, ok := cutToken(cmd.tube); ok {
			if c.app != "" {
				app, good := c.s.opts.AppForToken(c.ctx, tok)
				return good && app == c.app
			}
			if c.s.opts.AppForToken != nil {
				if app, good := c.s.opts.AppForToken(c.ctx, tok); good {
					c.setApp(app)
					return true
				}
			}
			return false
		}
	}
	if c.app != "" {
		return true
	}
	if c.s.opts.SoleApp != nil {
		if app, ok := c.s.opts.SoleApp(c.ctx); ok {
			c.setApp(app)
			return true
		}
	}
	return false
}

func (c *conn) setApp(app string) {
	c.app = app
	c.sess = c.s.opts.Tasks.Session(app)
	c.sess.Waiting = c.nc.toPoller // a reserve waiting needs no thread
}

// cutToken splits "<token>/<tube>".
func cutToken(name string) (token, tube string, ok bool) {
	i := strings.LastIndexByte(name, '/')
	if i <= 0 {
		return "", name, false
	}
	return name[:i], name[i+1:], true
}

// queueOf is the queue a tube argument names.
func queueOf(name string) (string, error) {
	if _, tube, ok := cutToken(name); ok {
		name = tube
	}
	if err := tasks.ValidQueue(name); err != nil {
		return "", protoError(rBadFormat)
	}
	return name, nil
}

func (c *conn) reply(line string) {
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
}

func (c *conn) replyf(format string, args ...any) {
	fmt.Fprintf(c.w, format, args...)
	c.w.WriteString("\r\n")
}

// replyID sends "<head><id>\r\n" (INSERTED): the hot path, without fmt.
func (c *conn) replyID(head string, id uint64) {
	b := c.w.AvailableBuffer()
	b = append(b, head...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, '\r', '\n')
	c.w.Write(b)
}

// replyJob sends "<head><id> <len>\r\n<data>\r\n" (RESERVED).
func (c *conn) replyJob(head string, id uint64, data []byte) {
	b := c.w.AvailableBuffer()
	b = append(b, head...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(data)), 10)
	b = append(b, '\r', '\n')
	c.w.Write(b)
	c.w.Write(data)
	c.w.WriteString("\r\n")
}

// replyData sends "<head> <len>\r\n<data>\r\n".
func (c *conn) replyData(head string, data []byte) {
	fmt.Fprintf(c.w, "%s %d\r\n", head, len(data))
	c.w.Write(data)
	c.w.WriteString("\r\n")
}

func (c *conn) flush() error { return c.w.Flush() }
