package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxAttempts bounds the backends one request is sent to.
const maxAttempts = 3

// redialPause is how long a request waits before trying an instance that
// refused its connection again, when the app has no other instance to try:
// a burst that overflowed a small listen backlog, or an instance restarting.
const redialPause = 100 * time.Millisecond

var (
	errNoState     = errors.New("gateway: request carries no route state")
	errNoBackend   = errors.New("no running web instances")
	errAttemptOver = errors.New("gateway: request body read by an abandoned attempt")
)

// retryTransport picks a backend for each attempt of a proxied request and
// retries on another backend when it is safe: always when the connection could
// not be made, and for idempotent requests when the connection broke before any
// response byte. It keeps the backends' outstanding counters: incremented when
// an attempt starts, decremented when it fails or its response body (or
// upgraded connection) is closed.
type retryTransport struct {
	g     *Gateway
	inner http.RoundTripper
}

var _ http.RoundTripper = (*retryTransport)(nil)

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateFrom(req.Context())
	if st == nil {
		return nil, errNoState
	}
	var body *sharedBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &sharedBody{rc: req.Body}
		defer req.Body.Close() // RoundTrip must close it; attempts get no-close views
	}
	// Only methods that are idempotent by definition are sent again once
	// they may have reached the app: a body-less POST (/logout, /jobs/run)
	// must not run twice.
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead ||
		req.Method == http.MethodOptions || req.Method == http.MethodPut || req.Method == http.MethodDelete

	rt := st.route
	err := error(errNoBackend)
	lastDial, paused := false, false
	for n := 0; n < maxAttempts; n++ {
		if n > 0 {
			// Another attempt: use the current table, the app may have
			// been redeployed in the meantime.
			if rt = t.g.table.Load().byApp[st.app]; rt == nil {
				break
			}
		}
		b := rt.pick(st.canary, st.tried[:n])
		if b == nil && lastDial && !paused {
			paused = true
			select {
			case <-time.After(redialPause):
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
			b = rt.pick(st.canary, nil)
		}
		if b == nil {
			break
		}
		st.tried[n] = b
		b.outstanding.Add(1)

		out := req.WithContext(req.Context()) // shallow copy
		u := *req.URL
		u.Host = b.addr
		out.URL = &u
		var ab *attemptBody
		if body != nil {
			ab = &attemptBody{s: body}
			out.Body = ab
		}

		resp, rerr := t.inner.RoundTrip(out)
		if rerr == nil {
			resp.Body = countBody(resp, b)
			return resp, nil
		}
		b.outstanding.Add(-1)
		err = rerr
		dial := isDialError(rerr)
		lastDial = dial
		if dial {
			b.markDown()
		}
		if req.Context().Err() != nil {
			break // the client left
		}
		if ab != nil && ab.abandon() > 0 {
			break // part of the body is gone; it cannot be sent again
		}
		if !dial && !idempotent {
			break // the app may have acted on it
		}
		t.g.log.Debug("gateway: retrying on another instance", "app", st.app, "backend", b.addr, "err", rerr)
	}
	if body != nil {
		body.mu.Lock()
		st.bodyErr = body.err
		body.mu.Unlock()
	}
	return nil, err
}

// isDialError reports whether err means the request never reached the
// instance: the connection could not be established.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// shortReason describes err for the 502 body, without internal addresses.
func shortReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errNoBackend):
		return err.Error()
	case errors.Is(err, context.Canceled):
		return "request canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case isDialError(err) && errors.As(err, &ne) && ne.Timeout():
		return "connect timeout"
	case isDialError(err):
		return "cannot connect"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return "connection closed before a response"
	}
	return "proxy error"
}

// sharedBody is the client's request body, shared by the attempts of one
// request. mu serializes reads, which a transport may still do from its own
// goroutine after RoundTrip returned.
type sharedBody struct {
	mu  sync.Mutex
	rc  io.ReadCloser
	n   int64 // bytes handed to attempts
	err error // the client's body failed: not EOF, not an abandoned attempt
}

// attemptBody is one attempt's view of the request body. Closing it does not
// close the client's body; after abandon it returns an error instead of data,
// so a late read by a failed attempt cannot steal bytes from the next one.
type attemptBody struct {
	s    *sharedBody
	dead bool // guarded by s.mu
}

func (a *attemptBody) Read(p []byte) (int, error) {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if a.dead {
		return 0, errAttemptOver
	}
	n, err := a.s.rc.Read(p)
	a.s.n += int64(n)
	if err != nil && err != io.EOF {
		a.s.err = err
	}
	return n, err
}

func (a *attemptBody) Close() error { return nil }

// abandon stops the attempt from reading and reports how many body bytes
// attempts have consumed so far.
func (a *attemptBody) abandon() int64 {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	a.dead = true
	return a.s.n
}

// countBody wraps resp.Body so that b's outstanding count drops once the
// body is finished. An upgraded connection (101) keeps its io.ReadWriteCloser
// shape, which ReverseProxy needs, and counts until it is closed.
func countBody(resp *http.Response, b *backend) io.ReadCloser {
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		return &countedConn{rwc: rwc, counted: counted{b: b}}
	}
	return &countedBody{rc: resp.Body, counted: counted{b: b}}
}

type counted struct {
	b    *backend
	done atomic.Bool
}

func (c *counted) finish() {
	if c.done.CompareAndSwap(false, true) {
		c.b.outstanding.Add(-1)
	}
}

type countedBody struct {
	rc io.ReadCloser
	counted
}

func (c *countedBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if err != nil {
		c.finish()
	}
	return n, err
}

func (c *countedBody) Close() error {
	err := c.rc.Close()
	c.finish()
	return err
}

type countedConn struct {
	rwc io.ReadWriteCloser
	counted
}

func (c *countedConn) Read(p []byte) (int, error)  { return c.rwc.Read(p) }
func (c *countedConn) Write(p []byte) (int, error) { return c.rwc.Write(p) }

func (c *countedConn) Close() error {
	err := c.rwc.Close()
	c.finish()
	return err
}
