package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"pier/internal/netwait"
)

// FrontOptions configures Front, with the meaning of the http.Server fields
// of the same names.
type FrontOptions struct {
	// ReadHeaderTimeout bounds the reading of a request head. 0 = none.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. 0 = ReadHeaderTimeout.
	IdleTimeout time.Duration
	// Logger receives panics of handlers. If nil, the gateway's.
	Logger *slog.Logger
	// WrapperPrefix, when h is not the gateway itself but the gateway
	// wrapped by a handler that takes only requests whose path starts with
	// this prefix (ACME's HTTP-01 challenges), lets the cached-hit path
	// answer every other request before h, as it does when h is the
	// gateway. Empty: only a bare gateway gets the hit path.
	WrapperPrefix string
}

// Front serves the plain-HTTP listener ln (the Guard's) with the gateway's
// own HTTP/1.1 connection loop, and returns the listener an http.Server
// serves for the rest: http.Server.Serve(Front(...)).
//
// The loop reads request heads itself and answers those of the common
// shape: an HTTP/1.1 GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS with an
// origin-form target, one Host, well-formed header lines that fit in 4 KiB,
// and no body or a Content-Length body of up to 64 KiB. Those go to h with
// a ResponseWriter of the loop's own, which frames the response as net/http
// does (Content-Length when the handler ends within 4 KiB, chunked
// otherwise, Date, sniffed Content-Type, trailers). A request of any other
// shape (a protocol switch, Expect, chunked or large bodies, HTTP/1.0, big or
// malformed heads, anything this parser is not sure of) hands its connection,
// with what was read of it, to the http.Server for good: net/http answers it
// exactly as it would have without the loop, refusals included.
//
// Closing the returned listener (http.Server.Shutdown or Close does) closes
// ln and the loop's idle connections; busy ones close after their response.
func (g *Gateway) Front(ln net.Listener, h http.Handler, opts FrontOptions) net.Listener {
	f := &front{
		g:       g,
		h:       h,
		ln:      ln,
		opts:    opts,
		log:     opts.Logger,
		handoff: make(chan net.Conn),
		done:    make(chan struct{}),
		conns:   make(map[*frontConn]struct{}),
	}
	if f.log == nil {
		f.log = g.log
	}
	if f.opts.IdleTimeout <= 0 {
		f.opts.IdleTimeout = f.opts.ReadHeaderTimeout
	}
	f.hitFirst = h == http.Handler(g) || opts.WrapperPrefix != ""
	return f
}

const (
	frontBufSize = 4 << 10  // the read buffer: the largest head served
	frontMaxBody = 64 << 10 // the largest body served
	frontPend    = 4 << 10  // response bytes held to compute a Content-Length
)

type front struct {
	g        *Gateway
	h        http.Handler
	hitFirst bool // cached hits may be answered before h (see WrapperPrefix)
	ln       net.Listener
	opts     FrontOptions
	log      *slog.Logger

	handoff chan net.Conn // connections for the http.Server
	start   sync.Once     // starts the accept loop on the first Accept
	done    chan struct{} // closed by stop
	once    sync.Once     // guards the stop

	mu     sync.Mutex // guards conns, closed, err
	err    error      // why the accept loop ended; nil = closed
	conns  map[*frontConn]struct{}
	closed bool
}

// Accept returns the next connection handed to net/http.
func (f *front) Accept() (net.Conn, error) {
	f.start.Do(func() {
		go f.acceptLoop()
		go f.sweep()
	})
	select {
	case c := <-f.handoff:
		return c, nil
	case <-f.done:
		f.mu.Lock()
		err := f.err
		f.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, err
	}
}

func (f *front) Addr() net.Addr { return f.ln.Addr() }

// frontDrain bounds the wait of Close for responses under way.
const frontDrain = 5 * time.Second

// Close stops accepting, closes idle connections and waits, up to
// frontDrain, for busy ones to finish their response, as
// http.Server.Shutdown waits for its own.
func (f *front) Close() error {
	err := f.ln.Close()
	f.stop(nil)
	for deadline := time.Now().Add(frontDrain); time.Now().Before(deadline); {
		f.mu.Lock()
		n := len(f.conns)
		f.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// stop ends the front: no more connections, idle ones closed.
func (f *front) stop(err error) {
	f.once.Do(func() {
		f.mu.Lock()
		f.err = err
		f.closed = true
		for fc := range f.conns {
			if fc.idle.Load() {
				fc.c.Close()
			}
		}
		f.mu.Unlock()
		close(f.done)
	})
}

func (f *front) acceptLoop() {
	var delay time.Duration
	for {
		c, err := f.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// As net/http: back off on EMFILE and the like.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-f.done:
					return
				}
			}
			f.stop(err)
			return
		}
		delay = 0
		fc := &frontConn{f: f, c: c}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			continue
		}
		f.conns[fc] = struct{}{}
		f.mu.Unlock()
		go fc.serve()
	}
}

// frontConn is one client connection served by the loop.
type frontConn struct {
	f      *front
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	remote string
	idle   atomic.Bool // waiting for a request: Close may close it
	w      frontWriter
	ow     observedWriter // w observed, for the Observe hook (gateway.go)
	hit    hitScratch     // the cached-hit path's (hit.go)
	// pass is what the hit path's cache lookup found for the request
	// being served, if it looked (hit.go): reset before each request.
	pass passHint
	// req is the request being served, as parseRequest made it.
	req *frontRequest
	// start is the clock when the request being served was in (its head,
	// and its body if any): the one reading the gateway's parts share
	// for it (the Observe hook's start, the app's idle clock, the
	// forwarder's pool).
	start time.Time
	// end, when set, is the clock when the last response's handler ended
	// (read for the Observe hook): the final flush's write deadline and
	// the next idle deadline take it instead of reading the clock again.
	end time.Time
	// spare is the header map of a request the gateway is done with
	// (Gateway.ServeHTTP sets it when nothing can hold on to it), for
	// the next request's parse: its map not made anew; spareReq is that
	// request, whose memory the next one takes too. The head's copy,
	// whose strings anyone may keep, is always new.
	spare    http.Header
	spareReq *frontRequest
	// rw waits for the next request without reading first; made at the
	// connection's second request (nil: none, or not a guarded TCP
	// connection).
	rw      *netwait.Waiter
	rwTried bool
	// app is the forwarder's wait for the app's answer to the request
	// being served, for the front's sweep (gone.go).
	appMu sync.Mutex
	app   appWait
}

var (
	frontReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, frontBufSize) }}
	// A response up to this size (head and body) leaves in one write.
	frontWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
)

func (fc *frontConn) serve() {
	f := fc.f
	handed := false
	fc.br = frontReaders.Get().(*bufio.Reader)
	fc.br.Reset(fc.c)
	fc.remote = fc.c.RemoteAddr().String()
	defer func() {
		f.mu.Lock()
		delete(f.conns, fc)
		f.mu.Unlock()
		fc.br.Reset(nil)
		frontReaders.Put(fc.br)
		fc.releaseWriter()
		if !handed {
			fc.c.Close()
		}
	}()
	// The head deadline is armed only when a head does not arrive whole
	// with its first bytes: one deadline change per request, not two.
	// The idle deadline is re-armed only when the one armed is older than
	// idleSlack(d): at most one deadline change per busy second, not one
	// per request. idleArmed is zero when the deadline is another one.
	var idleArmed time.Time
	armHead := func() {
		idleArmed = time.Time{}
		if d := f.opts.ReadHeaderTimeout; d > 0 {
			fc.c.SetReadDeadline(time.Now().Add(d))
		} else {
			fc.c.SetReadDeadline(time.Time{})
		}
	}
	first := true
	for {
		if !first {
			fc.idle.Store(true)
			f.mu.Lock()
			closed := f.closed
			f.mu.Unlock()
			if closed {
				return
			}
			if d := f.opts.IdleTimeout; d > 0 {
				if now := fc.lastClock(); now.Sub(idleArmed) >= idleSlack(d) {
					fc.c.SetReadDeadline(now.Add(d))
					idleArmed = now
				}
			}
			fc.waitRequest()
			if _, err := fc.br.Peek(1); err != nil {
				return
			}
			fc.idle.Store(false)
		}
		arm := armHead
		if first {
			if f.opts.ReadHeaderTimeout > 0 {
				armHead()
			}
			arm = nil
		}
		first = false
		n, ok, err := readHead(fc.br, arm)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return // closed, or too slow: net/http would close it too
		}
		fc.pass = passHint{}
		fc.hit.n, fc.hit.rt, fc.hit.tbl = 0, nil, nil
		fc.end = time.Time{}
		fc.start = time.Now()
		if ok {
			// A fresh cache hit is answered from the head's bytes (hit.go).
			if served, keep := fc.serveHit(n); served {
				if !keep {
					return
				}
				continue
			}
		}
		var r *http.Request
		if ok {
			raw, _ := fc.br.Peek(n)
			r = fc.parseRequest(raw)
		}
		if r == nil {
			handed = fc.handOff()
			return
		}
		fc.br.Discard(n)
		if r.ContentLength > 0 {
			fc.c.SetReadDeadline(time.Time{}) // the guard bounds body reads
			idleArmed = time.Time{}
			body := make([]byte, r.ContentLength)
			if _, err := io.ReadFull(fc.br, body); err != nil {
				if isTimeout(err) {
					fc.w.reset(fc, r)
					fc.w.header.Set("Connection", "close")
					writeText(&fc.w, http.StatusRequestTimeout, "pier: request body not received in time")
					fc.w.finish()
					fc.writer().Flush()
				}
				return
			}
			r.Body = &frontBody{b: body}
			fc.start = time.Now()
		}
		keep := fc.serveRequest(r)
		fc.req = nil
		if !keep {
			return
		}
	}
}

// lastClock is fc.end when set, the clock otherwise: the idle deadline
// counts from the end of the last handler, not of its final flush.
func (fc *frontConn) lastClock() time.Time {
	if !fc.end.IsZero() {
		return fc.end
	}
	return time.Now()
}

// waitRequest waits for the client's next request without a read(2)
// bound to find nothing, when nothing of it is buffered and the socket
// was empty at its last read: a client in lockstep sends it only once it
// has the last response.
func (fc *frontConn) waitRequest() {
	gc, _ := fc.c.(*guardConn)
	if gc == nil || fc.br.Buffered() > 0 || !gc.empty() {
		return
	}
	if !fc.rwTried {
		fc.rwTried = true
		fc.rw = netwait.New(gc.Conn)
	}
	fc.rw.Wait()
}

// flush flushes the write buffer at the end of a response, letting the
// Guard take fc.end for the clock when it arms the write deadline.
func (fc *frontConn) flush() error {
	gc, _ := fc.c.(*guardConn)
	if gc == nil || fc.end.IsZero() {
		return fc.writer().Flush()
	}
	gc.clock = fc.end
	err := fc.writer().Flush()
	gc.clock = time.Time{}
	return err
}

// idleSlack is how old an armed idle deadline may be and still serve for
// the wait for the next request: a keep-alive connection is closed after
// d minus at most this much idleness.
func idleSlack(d time.Duration) time.Duration {
	return min(time.Second, d/16)
}

// writer returns the connection's write buffer, taken from the pool for a
// busy period.
func (fc *frontConn) writer() *bufio.Writer {
	if fc.bw == nil {
		fc.bw = frontWriters.Get().(*bufio.Writer)
		fc.bw.Reset(fc.c)
	}
	return fc.bw
}

// releaseWriter returns the write buffer, flushed or not, to the pool.
func (fc *frontConn) releaseWriter() {
	if fc.bw != nil {
		fc.bw.Reset(nil)
		frontWriters.Put(fc.bw)
		fc.bw = nil
	}
}

// handOff gives the connection, with the bytes read of it, to net/http.
// It reports whether net/http took it.
func (fc *frontConn) handOff() bool {
	if fc.bw != nil {
		if err := fc.bw.Flush(); err != nil {
			return false
		}
	}
	pending, _ := fc.br.Peek(fc.br.Buffered())
	hc := &handedConn{Conn: fc.c, pending: append([]byte(nil), pending...)}
	select {
	case fc.f.handoff <- hc:
		return true
	case <-fc.f.done:
		return false
	}
}

// readHead finds the end of the request head at the start of br's data,
// reading more as needed; beforeWait, when set, runs before the first read.
// It returns the head's length, or ok false at once when a line ends
// without CR or starts with white space, which the loop leaves to net/http.
func readHead(br *bufio.Reader, beforeWait func()) (n int, ok bool, err error) {
	from := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		for {
			i := indexByteFrom(buf, from, '\n')
			if i < 0 {
				break
			}
			if i == 0 || buf[i-1] != '\r' {
				return i + 1, false, nil
			}
			if i == from+1 { // an empty line
				if from == 0 {
					return i + 1, false, nil // an empty line before the request line
				}
				return i + 1, true, nil
			}
			if c := buf[i+1:]; len(c) > 0 && (c[0] == ' ' || c[0] == '\t') {
				return i + 1, false, nil // obs-fold
			}
			from = i + 1
		}
		if br.Buffered() >= br.Size() {
			return br.Buffered(), false, bufio.ErrBufferFull
		}
		if beforeWait != nil {
			beforeWait()
			beforeWait = nil
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return br.Buffered(), false, err
		}
	}
}

func indexByteFrom(b []byte, from int, c byte) int {
	if from >= len(b) {
		return -1
	}
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return -1
}

// parseRequest parses a request head of the shape the loop serves, or
// returns nil for anything else.
func (fc *frontConn) parseRequest(raw []byte) *http.Request {
	// The head's strings stay in one copy of its bytes, which has room
	// behind them for the request id the gateway may make (newID): the
	// request's strings may be kept by whoever gets them, so the copy is
	// the request's own.
	buf := make([]byte, len(raw)+idLen)
	copy(buf, raw)
	s := unsafe.String(unsafe.SliceData(buf), len(raw))
	line, rest, _ := strings.Cut(s, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || !frontMethod(method) || !originForm(target) {
		return nil
	}
	fr := fc.spareReq
	if fr == nil {
		fr = new(frontRequest)
	} else {
		*fr = frontRequest{}
	}
	fr.idRoom = buf[len(raw):]
	spare := fc.spare
	fc.spare, fc.spareReq = nil, nil
	var h http.Header
	var host string
	var cl int64
	var closeAfter, ok bool
	if fc.hit.n == len(raw) {
		// The hit path read these fields a moment ago (FuzzHitFields:
		// it accepts what parseFields does, and reads the same).
		old := unsafe.String(unsafe.SliceData(raw), len(raw))
		h = fieldsHeader(fc.hit.kept, old, s, fr.vals[:], spare)
		host, closeAfter, ok = rebase(fc.hit.host, old, s), fc.hit.closeAfter, true
		clear(fc.hit.kept)
		fc.hit.n, fc.hit.kept = 0, nil
	} else {
		h, host, cl, closeAfter, ok = parseFieldsReuse(rest, fr.vals[:], spare)
	}
	if !ok || cl > frontMaxBody {
		return nil
	}
	u := requestURLInto(target, &fr.u)
	if u == nil {
		return nil
	}
	// No context of its own: the loop does not watch the connection
	// while a handler runs, and context.Background is what Context
	// returns.
	fr.r = http.Request{
		Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: http.NoBody, ContentLength: cl, Close: closeAfter,
		Host: host, RemoteAddr: fc.remote, RequestURI: target,
	}
	fc.req = fr
	return &fr.r
}

// frontRequest is a request the loop parsed and what it points to, in one
// allocation instead of three.
type frontRequest struct {
	r      http.Request
	u      url.URL
	vals   [8]string // the header's values, when they fit
	id     [1]string // the request id, when the gateway makes one
	idRoom []byte    // room for its bytes, behind the head's copy
}

// newID is ids.nextSlice in the request's own memory: no allocation.
func (fr *frontRequest) newID(ids *requestIDs) []string {
	b := append(fr.idRoom[:0], ids.prefix[:]...)
	b = strconv.AppendUint(b, ids.n.Add(1), 16)
	fr.id[0] = unsafe.String(unsafe.SliceData(b), len(b))
	fr.idRoom = nil // one id per request
	return fr.id[:]
}

// requestURLInto is url.ParseRequestURI(target) for an origin-form
// target, without its work when the target has nothing to unescape: then
// it fills and returns u.
func requestURLInto(target string, u *url.URL) *url.URL {
	if strings.IndexByte(target, '%') >= 0 || strings.HasSuffix(target, "?") {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return nil
		}
		return u
	}
	path, query, _ := strings.Cut(target, "?")
	*u = url.URL{Path: path, RawQuery: query}
	if u.EscapedPath() != path {
		u.RawPath = path // as url.Parse keeps a spelling its escaping would change ("/!")
	}
	return u
}

// parseFields parses header lines, each ending in CRLF, up to an empty
// line. ok is false for anything the loop leaves to net/http.
func parseFields(s string) (h http.Header, host string, cl int64, closeAfter, ok bool) {
	return parseFieldsInto(s, nil)
}

// parseFieldsInto is parseFields with room for the header's values: the
// map's value slices share one array, room when they fit in it.
func parseFieldsInto(s string, room []string) (h http.Header, host string, cl int64, closeAfter, ok bool) {
	return parseFieldsReuse(s, room, nil)
}

// fieldsHeader is the header map of fields (name, value pairs as hitFields
// returns them, Host left out), their strings moved from old into cp, its
// copy; room and spare as for parseFieldsReuse.
func fieldsHeader(fields []string, old, cp string, room []string, spare http.Header) http.Header {
	n := len(fields) / 2
	h := reuseHeader(spare, n)
	vals := room
	if n > len(vals) {
		vals = make([]string, n)
	}
	for i := 0; i < n; i++ {
		k := canonicalKey(rebase(fields[2*i], old, cp))
		vals[i] = rebase(fields[2*i+1], old, cp)
		if v, dup := h[k]; dup {
			h[k] = append(v, vals[i])
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}
	return h
}

// maxSpareFields bounds the map parseFieldsReuse takes again: clearing a
// grown map costs with its size.
const maxSpareFields = 16

// connectionClose reads a Connection field value Front serves: close
// says the connection ends after the response; ok is false for any token
// but close and keep-alive (an upgrade, or fields made hop-by-hop).
func connectionClose(v string) (closes, ok bool) {
	for t := range strings.SplitSeq(v, ",") {
		switch t = strings.TrimSpace(t); {
		case strings.EqualFold(t, "close"):
			closes = true
		case strings.EqualFold(t, "keep-alive"), t == "":
		default:
			return false, false
		}
	}
	return closes, true
}

// reuseHeader returns spare cleared, when there is one not too large, or a
// new map for n fields.
func reuseHeader(spare http.Header, n int) http.Header {
	if spare != nil && len(spare) <= maxSpareFields {
		clear(spare)
		return spare
	}
	return make(http.Header, n)
}

// parseFieldsReuse is parseFieldsInto filling spare, a header map no one
// holds any more, when there is one not too large.
func parseFieldsReuse(s string, room []string, spare http.Header) (h http.Header, host string, cl int64, closeAfter, ok bool) {
	n := strings.Count(s, "\r\n")
	h = reuseHeader(spare, n)
	vals := room
	if n > len(vals) {
		vals = make([]string, n)
	}
	hosts := 0
	clSeen := false
	for i := 0; ; i++ {
		line, rest, found := strings.Cut(s, "\r\n")
		if !found {
			return nil, "", 0, false, false
		}
		s = rest
		if line == "" {
			break
		}
		k, v, found := strings.Cut(line, ":")
		if !found || !validFieldName(k) {
			return nil, "", 0, false, false
		}
		v = strings.Trim(v, " \t")
		if !validFieldValue(v) {
			return nil, "", 0, false, false
		}
		k = canonicalKey(k)
		switch k {
		case "Host":
			// As net/http: promoted to Request.Host, not in the header.
			hosts++
			host = v
			if !validHost(v) {
				return nil, "", 0, false, false
			}
			continue
		case "Content-Length":
			n, lok := parseLen(v)
			if clSeen || !lok {
				return nil, "", 0, false, false
			}
			clSeen, cl = true, n
		case "Transfer-Encoding", "Upgrade", "Expect", "Http2-Settings":
			return nil, "", 0, false, false
		case "Connection":
			c, ok := connectionClose(v)
			if !ok {
				return nil, "", 0, false, false
			}
			closeAfter = closeAfter || c
		}
		vals[i] = v
		if old, dup := h[k]; dup {
			h[k] = append(old, v)
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}
	if hosts != 1 || s != "" {
		return nil, "", 0, false, false
	}
	return h, host, cl, closeAfter, true
}

func frontMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}

// originForm accepts a path with an optional query: printable ASCII, no
// fragment, not starting with "//" (which a URL parser reads as a host).
func originForm(t string) bool {
	if len(t) == 0 || t[0] != '/' || strings.HasPrefix(t, "//") {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// validFieldValue refuses control characters but HTAB (obs-text is fine).
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts the usual host[:port] characters; anything else goes
// to net/http's stricter judgement.
func validHost(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '_', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// serveRequest runs the handler for r and finishes its response. It
// reports whether the connection may serve another request.
func (fc *frontConn) serveRequest(r *http.Request) (keep bool) {
	w := &fc.w
	w.reset(fc, r)
	defer func() {
		if p := recover(); p != nil {
			keep = false
			if p != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				fc.f.log.Error("gateway: handler panicked", "host", r.Host, "path", r.URL.Path, "panic", p, "stack", string(buf))
			}
		}
	}()
	fc.f.h.ServeHTTP(w, r)
	w.finish()
	if w.err != nil {
		return false
	}
	if fc.br.Buffered() == 0 || w.closeAfter {
		err := fc.flush()
		fc.releaseWriter() // idle connections hold no write buffer
		if err != nil {
			return false
		}
	}
	return !w.closeAfter
}

// frontBody is a request body read before the handler runs.
type frontBody struct {
	b []byte
	i int
}

func (b *frontBody) Read(p []byte) (int, error) {
	if b.i >= len(b.b) {
		return 0, io.EOF
	}
	n := copy(p, b.b[b.i:])
	b.i += n
	return n, nil
}

func (b *frontBody) Close() error { return nil }

// handedConn is a connection given to net/http with the bytes the loop had
// read of it, which net/http reads first.
type handedConn struct {
	net.Conn
	pending []byte
}

func (c *handedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ReadFrom keeps sendfile and splice (see guardConn.ReadFrom).
func (c *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite lets net/http half-close the connection before closing it.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
