package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"pier/internal/netwait"
)

// The forwarder is the gateway's HTTP/1.1 client to app instances, used
// instead of httputil.ReverseProxy and http.Transport for every request that
// does not ask for a protocol switch. It writes the request line and headers
// straight from the incoming request onto a pooled keep-alive connection,
// reads the response head on the same goroutine, and streams the body back
// with a pooled buffer: no request clone, no per-request goroutines, no
// hand-offs between a transport's read and write loops.
//
// It keeps what the proxy did: hop-by-hop headers dropped both ways,
// X-Forwarded-For/Host/Proto set, the app's X-Request-Id dropped, trailers
// passed on, a protocol switch the client did not ask for refused, and the
// retry rules of retryTransport (another instance after a failed dial, and for
// idempotent requests after a connection that broke before any response
// byte).

// Upstream connection pool bounds, as NewTransport's.
const (
	maxIdlePerBackend = 256
	upIdleTimeout     = 90 * time.Second
	// upCheckAfter is how long a pooled connection may sit idle before it
	// is checked for a close by the app (a keep-alive timeout) before use.
	upCheckAfter = 500 * time.Millisecond
	// maxResponseHead bounds an app's response head.
	maxResponseHead = 1 << 20
)

var (
	errBadResponse = errors.New("malformed HTTP response from the app")
	errUnasked101  = errors.New("app switched protocols when the client did not ask for it")
)

// upConn is a keep-alive connection to an instance.
type upConn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	head   []byte // the response head being read; reused
	idleAt int64  // monoNow() when put back in the pool
	reused bool
	resp   respHead // the response being read; reused
	rw     *netwait.Waiter
}

// upPool is a backend's idle connections, the most recently used last.
type upPool struct {
	mu   sync.Mutex // guards idle
	idle []*upConn
}

func (p *upPool) get(now int64) (uc *upConn) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		uc = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now - uc.idleAt
		if idle < int64(upIdleTimeout) && (idle < int64(upCheckAfter) || alive(uc.nc)) {
			uc.reused = true
			return uc
		}
		uc.nc.Close()
	}
}

func (p *upPool) put(uc *upConn, now int64) {
	uc.idleAt = now
	p.mu.Lock()
	if len(p.idle) >= maxIdlePerBackend {
		p.mu.Unlock()
		uc.nc.Close()
		return
	}
	p.idle = append(p.idle, uc)
	p.mu.Unlock()
}

// closeIdle closes the pooled connections of a backend the gateway forgets.
func (p *upPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, uc := range idle {
		uc.nc.Close()
	}
}

// alive reports whether an idle connection is still open: the app has not
// closed it (nothing to read, not EOF).
func alive(nc net.Conn) bool {
	st := peek(nc)
	return st == peekEmpty || st == peekUnknown
}

// peekState is what a read of a connection would find (peek).
type peekState int

const (
	peekUnknown peekState = iota // not a socket peek can look at
	peekEmpty                    // nothing yet
	peekData                     // bytes to read
	peekEnd                      // its end: closed (or reset) by the peer, or here
)

// peek reports what a read of c would find now, without reading or
// waiting (recv with MSG_PEEK|MSG_DONTWAIT).
func peek(c net.Conn) peekState {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return peekUnknown
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekEnd
	}
	st := peekEnd
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			st = peekData
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
			st = peekEmpty
		}
		return true // never wait
	})
	return st
}

var upBufs = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// dialer makes connections to instances.
type dialer func(ctx context.Context, network, addr string) (net.Conn, error)

func defaultDialer() dialer {
	return (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
}

// forwardFast proxies r to a backend of rt with the gateway's forwarder,
// retrying as retryTransport does. pass, when set, is the app's cache,
// which let r through (see passCache). start, when not zero, is the clock
// when r came in, which the connection pool takes for now.
func (g *Gateway) forwardFast(w http.ResponseWriter, r *http.Request, rt *route, canary bool, pass passCache, start time.Time) {
	st := proxyState{app: rt.app, route: rt, canary: canary, pass: pass, fc: frontConnOf(w, r)}
	if !start.IsZero() {
		st.now = monoAt(start)
	}
	body := r.Body
	if body == http.NoBody {
		body = nil
	}
	idempotent := r.Method == http.MethodGet || r.Method == http.MethodHead ||
		r.Method == http.MethodOptions || r.Method == http.MethodPut || r.Method == http.MethodDelete
	ctx := r.Context()
	var sent int64 // body bytes taken from the client
	err := error(errNoBackend)
	lastDial, paused := false, false
	for n := 0; n < maxAttempts; n++ {
		if n > 0 {
			if rt = g.table.Load().byApp[st.app]; rt == nil {
				break
			}
		}
		b := rt.pick(st.canary, st.tried[:n])
		if b == nil && lastDial && !paused {
			paused = true
			t := time.NewTimer(redialPause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				g.proxyErrorState(w, r, &st, ctx.Err())
				return
			}
			b = rt.pick(st.canary, nil)
		}
		if b == nil {
			break
		}
		st.tried[n] = b
		b.outstanding.Add(1)
		done, rerr := g.attempt(w, r, b, body, &sent, &st)
		b.outstanding.Add(-1)
		if done {
			return
		}
		err = rerr
		dial := isDialError(rerr)
		lastDial = dial
		if dial {
			b.markDown()
		}
		if ctx.Err() != nil || st.bodyErr != nil || sent > 0 || rerr == errClientGone {
			break // the client left, or part of its body is gone
		}
		if !dial && !idempotent {
			break // the app may have acted on it
		}
		g.log.Debug("gateway: retrying on another instance", "app", st.app, "backend", b.addr, "err", rerr)
	}
	if err == errUnasked101 {
		g.log.Debug("gateway: app did not answer", "app", st.app, "err", err)
	}
	g.proxyErrorState(w, r, &st, err)
}

// attempt sends r to b. It reports done once a response went to the client
// (whole, or cut: a broken response cannot be retried); otherwise err says
// why no response came.
func (g *Gateway) attempt(w http.ResponseWriter, r *http.Request, b *backend, body io.ReadCloser, sent *int64, st *proxyState) (done bool, err error) {
	ctx := r.Context()
	for {
		uc := b.pool.get(st.clock())
		if uc == nil {
			nc, derr := g.dial(ctx, "tcp", b.addr)
			if derr != nil {
				return false, derr
			}
			uc = &upConn{nc: nc, br: bufio.NewReaderSize(nc, 4096), bw: bufio.NewWriterSize(nc, 4096), rw: netwait.New(nc)}
		}
		done, err, replay := g.exchange(w, r, uc, b, body, sent, st)
		if done || !replay {
			return done, err
		}
		// A pooled connection the app had closed: try a fresh one.
	}
}

// exchange runs one request on uc. replay says the request may be sent again
// on a new connection: uc was a pooled one that broke before the request
// could have been acted on.
func (g *Gateway) exchange(w http.ResponseWriter, r *http.Request, uc *upConn, b *backend, body io.ReadCloser, sent *int64, st *proxyState) (done bool, err error, replay bool) {
	ctx := r.Context()
	keep := false
	defer func() {
		if keep && ctx.Err() == nil {
			b.pool.put(uc, st.clock())
		} else {
			uc.nc.Close()
		}
	}()
	if ctx.Done() != nil {
		// The client left: unblock reads and writes on the app's side.
		// (Deferred after the pool's return, so it runs first.)
		stop := context.AfterFunc(ctx, func() { uc.nc.SetDeadline(aLongTimeAgo) })
		defer stop()
	}

	writeRequestHead(uc.bw, r, b.addr)
	var werr error
	if body != nil {
		buf := upBufs.Get().(*[32 << 10]byte)
		werr = copyBody(uc.bw, body, buf[:], sent, st)
		upBufs.Put(buf)
		if st.bodyErr != nil {
			return false, st.bodyErr, false
		}
	}
	if werr == nil {
		werr = uc.bw.Flush()
	}
	if werr != nil {
		// Nothing of the request may have been read by the app.
		return false, werr, uc.reused && *sent == 0
	}

	if st.fc != nil {
		st.fc.watchApp(uc.nc)
	}
	if uc.br.Buffered() == 0 {
		// The app cannot have answered yet: wait for it rather than find
		// nothing with read(2) first.
		uc.rw.Wait()
	}
	resp, err := readResponseHead(uc, r.Method)
	for err == nil && resp.status >= 100 && resp.status < 200 && resp.status != http.StatusSwitchingProtocols {
		// 100 Continue and other informational answers: the client
		// gets them (net/http drops a 100 itself), the final one follows.
		if resp.status != http.StatusContinue {
			resp.own()
			h := w.Header()
			for i := range resp.fields {
				f := &resp.fields[i]
				h[f.key] = append(h[f.key], f.value)
			}
			w.WriteHeader(resp.status)
			for i := range resp.fields {
				delete(h, resp.fields[i].key)
			}
		}
		resp, err = readResponseHead(uc, r.Method)
	}
	if st.fc != nil && st.fc.unwatchApp() {
		return false, errClientGone, false // uc's deadline is past: closed, not pooled
	}
	if err != nil {
		if isTimeout(err) && ctx.Err() != nil {
			err = ctx.Err()
		}
		replayable := *sent == 0 && body == nil &&
			(r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions || r.Method == http.MethodTrace)
		return false, err, uc.reused && resp.nothing && replayable
	}
	if resp.status == http.StatusSwitchingProtocols {
		return false, errUnasked101, false
	}

	h := w.Header()
	if st.pass != nil {
		st.pass.PassAnswered(r, resp.status, resp.cacheControl(), resp)
	}
	direct, cerr := false, error(nil)
	if !g.slow {
		direct, cerr = writeDirect(w, resp, uc, st.pass != nil)
	}
	if direct && g.onDirect != nil {
		g.onDirect()
	}
	if !direct {
		vals := resp.values()
		for i := range resp.fields {
			f := &resp.fields[i]
			if v, ok := h[f.key]; ok {
				h[f.key] = append(v, f.value)
			} else {
				h[f.key] = vals[i : i+1 : i+1]
			}
		}
		if st.pass != nil {
			h["X-Cache"] = xCacheMiss // as the cache marks the answers it passes, the app's own replaced
		}
		w.WriteHeader(resp.status)
		buf := upBufs.Get().(*[32 << 10]byte)
		cerr = resp.copyBody(w, uc, buf[:])
		upBufs.Put(buf)
	}
	if cerr != nil {
		g.log.Debug("gateway: response cut", "app", st.app, "backend", b.addr, "err", cerr)
		if abortable(w, ctx) {
			panic(http.ErrAbortHandler) // net/http closes the client's connection
		}
		return true, nil, false
	}
	keep = resp.keepAlive
	if len(resp.trailer) > 0 {
		for _, f := range resp.trailer {
			k := f.key
			if !resp.announced(k) {
				k = http.TrailerPrefix + k
			}
			h[k] = append(h[k], f.value)
		}
	}
	return true, nil, false
}

var aLongTimeAgo = time.Unix(1, 0)

// abortable reports whether a response cut in the middle may end with
// panic(http.ErrAbortHandler), which makes the server (net/http, or the
// gateway's Front) close the client's connection, as ReverseProxy does: not
// in a background revalidation, where nobody recovers it.
func abortable(w http.ResponseWriter, ctx context.Context) bool {
	if ctx.Value(http.ServerContextKey) != nil {
		return true
	}
	for w != nil {
		if _, ok := w.(*frontWriter); ok {
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
	return false
}

// copyBody sends the client's body to the app, counting what it took.
func copyBody(dst *bufio.Writer, body io.Reader, buf []byte, sent *int64, st *proxyState) error {
	for {
		n, rerr := body.Read(buf)
		*sent += int64(n)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			st.bodyErr = rerr
			return rerr
		}
	}
}

// hopHeaders are dropped both ways, as ReverseProxy does, together with the
// fields a Connection header names.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// namedByConnection reports whether the Connection values name k.
func namedByConnection(conn []string, k string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), k) {
				return true
			}
		}
	}
	return false
}

// writeRequestHead writes r's request line and header for the app: the
// client's Host, its header without hop-by-hop and forwarding fields, and
// X-Forwarded-For/Host/Proto as ReverseProxy's SetXForwarded sets them.
// The head is appended to bw's free space and written with one Write.
func writeRequestHead(bw *bufio.Writer, r *http.Request, addr string) {
	b := bw.AvailableBuffer()
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = appendRequestURI(b, r.URL)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	host := r.Host
	if host == "" {
		host = addr
	}
	b = appendValue(b, host)
	b = append(b, "\r\n"...)
	conn := r.Header["Connection"]
	teTrailers := false
	for k, vv := range r.Header {
		switch k {
		case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Host", "Content-Length":
			continue
		case "Te":
			for _, v := range vv {
				if namedByConnection([]string{v}, "trailers") {
					teTrailers = true
				}
			}
			continue
		}
		if isHopHeader(k) || (len(conn) > 0 && namedByConnection(conn, k)) {
			continue
		}
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	if teTrailers {
		b = append(b, "Te: trailers\r\n"...)
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		b = append(b, "X-Forwarded-For: "...)
		if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
			for _, p := range prior {
				b = appendValue(b, p)
				b = append(b, ", "...)
			}
		}
		b = append(b, ip...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-Forwarded-Host: "...)
	b = appendValue(b, r.Host)
	if r.TLS != nil {
		b = append(b, "\r\nX-Forwarded-Proto: https\r\n"...)
	} else {
		b = append(b, "\r\nX-Forwarded-Proto: http\r\n"...)
	}
	switch {
	case r.ContentLength > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.ContentLength, 10)
		b = append(b, "\r\n"...)
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		b = append(b, "Content-Length: 0\r\n"...)
	}
	b = append(b, "\r\n"...)
	bw.Write(b)
}

// writeValue writes a header value with line breaks turned into spaces, as
// net/http does: a value cannot start a header line of its own.
func writeValue(bw *bufio.Writer, v string) {
	if strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0 {
		bw.WriteString(v)
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		bw.WriteByte(c)
	}
}

// appendRequestURI appends u.RequestURI() without making the string,
// which RequestURI concatenates anew when there is a query.
func appendRequestURI(b []byte, u *url.URL) []byte {
	if u.Opaque != "" {
		return append(b, u.RequestURI()...)
	}
	if p := u.EscapedPath(); p != "" {
		b = append(b, p...)
	} else {
		b = append(b, '/')
	}
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	return b
}

// appendValue is writeValue appending to b.
func appendValue(b []byte, v string) []byte {
	if strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0 {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// flushWriter is what streams need of a ResponseWriter.
type flushWriter interface {
	Flush()
}

// copyBody streams the response body to w. Bodies of unknown length are
// flushed as they come (event streams, long polls); others go through w's
// buffer. It reads the trailer of a chunked body.
func (h *respHead) copyBody(w http.ResponseWriter, uc *upConn, buf []byte) error {
	if h.noBody || h.length == 0 {
		return nil
	}
	var fl flushWriter
	if h.length < 0 {
		fl, _ = w.(flushWriter)
	}
	if h.chunked {
		return h.copyChunked(w, uc, buf, fl)
	}
	left := h.length // -1: until the app closes
	for left != 0 {
		p := buf
		if left > 0 && int64(len(p)) > left {
			p = p[:left]
		}
		n, err := uc.br.Read(p)
		if n > 0 {
			if left > 0 {
				left -= int64(n)
			}
			if _, werr := w.Write(p[:n]); werr != nil {
				return werr
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err == io.EOF && left < 0 {
			return nil
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// copyChunked copies a chunked body, then reads its trailer.
func (h *respHead) copyChunked(w http.ResponseWriter, uc *upConn, buf []byte, fl flushWriter) error {
	for {
		line, err := uc.br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		size, ok := chunkSize(trimCRLF(line))
		if !ok {
			return fmt.Errorf("%w: chunk size line %q", errBadResponse, line)
		}
		if size == 0 {
			break
		}
		for size > 0 {
			p := buf
			if int64(len(p)) > size {
				p = p[:size]
			}
			n, err := uc.br.Read(p)
			size -= int64(n)
			if n > 0 {
				if _, werr := w.Write(p[:n]); werr != nil {
					return werr
				}
			}
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		if fl != nil {
			fl.Flush()
		}
		if crlf, err := uc.br.ReadSlice('\n'); err != nil || len(trimCRLF(crlf)) != 0 {
			return fmt.Errorf("%w: no CRLF after chunk data", errBadResponse)
		}
	}
	// Trailer fields, up to an empty line.
	for {
		line, err := uc.br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		text := trimCRLF(line)
		if len(text) == 0 {
			return nil
		}
		k, v, ok := strings.Cut(string(text), ":")
		if !ok || !validFieldName(k) {
			return fmt.Errorf("%w: trailer line %q", errBadResponse, text)
		}
		h.trailer = append(h.trailer, field{canonicalKey(k), strings.Trim(v, " \t")})
	}
}

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}
