package gateway

import (
	"errors"
	"net"
	"net/http"
	"time"
)

// Front does not read a client's connection while its request is being
// served, so without more a client that gave up on a slow answer would
// leave the app working on it until it answered, and the access log would
// show the answer nobody got. net/http notices with a background read and
// cancels the request's context (the forwarder then cuts the app's
// connection); nginx, with proxy_ignore_client_abort off, closes the
// upstream connection and logs 499. Front does it with a sweep: the
// forwarder registers the app connection it waits on for a response head
// (watchApp), and every frontSweep the front peeks at the client
// connection of each wait that was there at the previous sweep too; when
// the client closed it, the app's connection is cut and the request logged
// with status 499. A wait costs the forwarder two uncontended locks; only
// waits longer than a sweep cost a system call.

// frontSweep is how often the front looks for clients that left: a client
// gone is noticed after one to two of them.
const frontSweep = 500 * time.Millisecond

// statusClientClosed is nginx's status for a request whose client closed
// the connection before the answer: for the log (the client is gone).
const statusClientClosed = 499

// errClientGone: the client closed its connection while the app worked.
var errClientGone = errors.New("client closed the connection")

// appWait is what a frontConn's sweep needs of the forwarder's wait.
// Guarded by frontConn.appMu.
type appWait struct {
	conn net.Conn // the app connection waited on; nil: none
	n    uint64   // waits so far on this client connection
	seen uint64   // n at the last sweep that found a wait
	gone bool     // the sweep found the client gone and cut conn
}

// watchApp registers uc as the app connection the request waits on.
func (fc *frontConn) watchApp(uc net.Conn) {
	fc.appMu.Lock()
	fc.app.conn = uc
	fc.app.n++
	fc.appMu.Unlock()
}

// unwatchApp ends the wait and reports whether the client left meanwhile
// (the app connection's deadline is then in the past: not to be reused).
func (fc *frontConn) unwatchApp() (gone bool) {
	fc.appMu.Lock()
	fc.app.conn = nil
	gone = fc.app.gone
	fc.appMu.Unlock()
	return gone
}

// sweep peeks, every frontSweep until the front stops, at the clients of
// requests waiting for their app since the last sweep.
func (f *front) sweep() {
	t := time.NewTicker(frontSweep)
	defer t.Stop()
	var conns []*frontConn
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		f.mu.Lock()
		for fc := range f.conns {
			conns = append(conns, fc)
		}
		f.mu.Unlock()
		for i, fc := range conns {
			fc.checkGone()
			conns[i] = nil
		}
		conns = conns[:0]
	}
}

// checkGone cuts the app connection of a wait the previous sweep saw too
// when the client has closed its connection.
func (fc *frontConn) checkGone() {
	fc.appMu.Lock()
	defer fc.appMu.Unlock()
	w := &fc.app
	if w.conn == nil || w.gone {
		return
	}
	if w.n != w.seen {
		w.seen = w.n // a wait begun since the last sweep
		return
	}
	if !peerClosed(fc.c) {
		return
	}
	w.gone = true
	w.conn.SetDeadline(aLongTimeAgo) // the forwarder's read ends now
}

// peerClosed reports whether the peer of c, a client connection, closed
// (or reset) it: a read would find its end, not data.
func peerClosed(c net.Conn) bool {
	if gc, ok := c.(*guardConn); ok {
		c = gc.Conn
	}
	return peek(c) == peekEnd
}

// frontConnOf returns Front's connection when r is the request it is
// serving and w its writer (possibly wrapped: observed, the cache's): the
// forwarder then registers its waits with it. nil otherwise — net/http's
// requests have a context that says when their client left.
func frontConnOf(w http.ResponseWriter, r *http.Request) *frontConn {
	for range 8 {
		switch x := w.(type) {
		case *frontWriter:
			if fc := x.fc; fc != nil && fc.req != nil && &fc.req.r == r {
				return fc
			}
			return nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
