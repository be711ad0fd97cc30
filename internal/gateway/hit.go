package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// This file is Front's cached-hit path: a GET or HEAD that the app's cache
// answers with a fresh stored response is written from the bytes the cache
// prepared when it stored it, straight from the parsed request head, with
// no *http.Request, header map or ResponseWriter, as varnish answers hits.
// Whatever Gateway.ServeHTTP does on such a hit happens here too: the
// request id, the rate limits, the app's idle clock, the Observe hook and
// the access log. Any request this path is not sure of (another handler in
// front of the gateway, a body, a percent-escaped target, internal paths,
// static mounts, a canary, an app without instances, a request the cache
// would not answer as a plain HIT, a rate limit reached) goes the usual way.

// hitCache is what an app's cache handler offers besides ServeHTTP when it
// can answer hits from bytes (httpcache's does): see httpcache's
// AppendHit. fields are the request's fields but Host, as name, value
// pairs.
type hitCache interface {
	AppendHit(dst []byte, host, target string, fields []string) (head, body []byte, status int, ok bool)
}

// hitPassCache is a hitCache that also says what its lookup of the key
// found (httpcache's AppendHitPass), so that a request it did not answer
// is not looked up again by Passing (passMarkCache) in ServeHTTP.
type hitPassCache interface {
	AppendHitPass(dst []byte, host, target string, fields []string) (head, body []byte, status int, ok, looked, marked bool)
}

// passHint is what the hit path's lookup found for the request it hands
// on to ServeHTTP: cache is the handler that looked (nil: none did).
type passHint struct {
	cache  any
	marked bool
}

// hitScratch is a connection's buffer for the fields of a request head,
// and its vectors for a writev.
type hitScratch struct {
	fields []string
	// When the path read a head's fields and left the request to
	// ServeHTTP, parseRequest takes them instead of reading them again:
	// n is that head's length (0: none), kept its fields (in the read
	// buffer), host and closeAfter what hitFields found.
	n          int
	kept       []string
	host       string
	closeAfter bool
	// rt is the route the path found for the request's host in tbl (nil:
	// it did not look), which ServeHTTP takes while tbl is current.
	rt   *route
	tbl  *table
	bufs [2][]byte
	vec  net.Buffers
	err  error // of the last writeBuffers
}

// hitWritev is the body size from which a hit is written with writev
// rather than copied into the write buffer behind its head.
const hitWritev = 8 << 10

// writeBuffers writes head and body with one writev when the connection
// offers it (the Guard's does), and reports whether it did; fc.hit.err is
// the write's error.
func (fc *frontConn) writeBuffers(head, body []byte) bool {
	h := &fc.hit
	h.bufs = [2][]byte{head, body}
	h.vec = h.bufs[:]
	switch c := fc.c.(type) {
	case interface {
		WriteBuffers(*net.Buffers) (int64, error)
	}:
		_, h.err = c.WriteBuffers(&h.vec)
	case *net.TCPConn:
		_, h.err = h.vec.WriteTo(c)
	default:
		return false
	}
	h.bufs = [2][]byte{} // holds no body
	return true
}

// maxHitFields bounds the fields of a request served by the hit path.
const maxHitFields = 64

// serveHit answers the request whose head is the first n buffered bytes
// from the cache, when it is a fresh hit. It reports whether it answered
// (the head is then consumed) and whether the connection may serve
// another request.
func (fc *frontConn) serveHit(n int) (served, keep bool) {
	f := fc.f
	g := f.g
	if g.cache == nil || !f.hitFirst {
		return false, false // another handler (tests) goes first
	}
	raw, err := fc.br.Peek(n)
	if err != nil {
		return false, false
	}
	var fields []string
	defer func() {
		if !served && fc.hit.n == n {
			fc.hit.kept = fields // for parseRequest, which clears them
		} else {
			fc.hit.n = 0
			clear(fields) // the kept array must not hold this head alive
		}
		if p := recover(); p != nil {
			// As serveRequest does with a handler's panic: logged, and
			// the connection closed.
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			f.log.Error("gateway: the cached-hit path panicked", "panic", p, "stack", string(buf))
			served, keep = true, false
		}
	}()
	// The head's strings point into the read buffer, which keeps those
	// bytes until the loop reads again, after this returns. Nothing keeps
	// them: the cache only compares them, the request id is copied into
	// the response, the access log gets copies.
	s := unsafe.String(unsafe.SliceData(raw), len(raw))
	line, rest, _ := strings.Cut(s, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	switch method {
	case http.MethodGet:
		method = http.MethodGet // not the buffer's bytes
	case http.MethodHead:
		method = http.MethodHead
	}
	if !ok1 || !ok2 || proto != "HTTP/1.1" || method != http.MethodGet && method != http.MethodHead ||
		!originForm(target) || strings.IndexByte(target, '%') >= 0 {
		return false, false
	}
	path, _, _ := strings.Cut(target, "?")
	if g.internal != nil && strings.HasPrefix(path, InternalPrefix) ||
		f.opts.WrapperPrefix != "" && strings.HasPrefix(path, f.opts.WrapperPrefix) {
		return false, false
	}
	fields, host, id, closeAfter, ok := hitFields(rest, fc.hit.fields[:0])
	fc.hit.fields = fields[:0] // the array, grown or not, serves the next request
	if !ok {
		return false, false
	}
	fc.hit.n, fc.hit.host, fc.hit.closeAfter = n, host, closeAfter
	tbl := g.table.Load()
	rt := tbl.lookup(normalizeHost(host))
	fc.hit.rt, fc.hit.tbl = rt, tbl // for ServeHTTP, if the request goes there
	if rt == nil || rt.canary != nil || len(rt.backends) == 0 {
		return false, false
	}
	hc, _ := rt.handler.(hitCache)
	if hc == nil {
		return false, false
	}
	for i := range rt.mounts {
		if _, ok := rt.mounts[i].match(path); ok {
			return false, false
		}
	}
	start := fc.start
	bw := fc.writer()
	var head, body []byte
	var status int
	if hp, _ := hc.(hitPassCache); hp != nil {
		var looked, marked bool
		head, body, status, ok, looked, marked = hp.AppendHitPass(bw.AvailableBuffer(), host, target, fields)
		if looked && !ok {
			fc.pass = passHint{cache: hc, marked: marked} // for ServeHTTP's Passing
		}
	} else {
		head, body, status, ok = hc.AppendHit(bw.AvailableBuffer(), host, target, fields)
	}
	if !ok {
		return false, false
	}
	if limits := g.limits.Load(); limits != nil && len(*limits) > 0 {
		if l := (*limits)[rt.app]; l != nil && l.wait(clientIP(fc.remote), start) > 0 {
			return false, false // ServeHTTP answers the 429
		}
	}
	rt.state.touchAt(monoAt(start))
	fc.br.Discard(n)

	head = append(head, "X-Request-Id: "...)
	if saneID(id) {
		head = append(head, id...)
	} else {
		// As requestIDs.next, without a string unless the access log
		// needs one.
		from := len(head)
		head = append(head, g.ids.prefix[:]...)
		head = strconv.AppendUint(head, g.ids.n.Add(1), 16)
		id = ""
		if g.access != nil {
			id = string(head[from:])
		}
	}
	if closeAfter {
		head = append(head, "\r\nConnection: close"...)
	}
	head = append(head, "\r\n\r\n"...)
	written := 0
	if method == http.MethodHead {
		body = nil
	}
	if len(body) >= hitWritev && bw.Buffered() == 0 && fc.writeBuffers(head, body) {
		// Sent at once, head and body in one writev, the body not
		// copied: nothing is left to flush.
		written, err = len(body), fc.hit.err
	} else {
		_, err = bw.Write(head)
		if err == nil {
			written, err = bw.Write(body)
		}
	}
	if g.observe != nil || g.access != nil {
		fc.observeHit(rt.app, method, host, path, status, int64(written), id, start)
	}
	if err != nil {
		return true, false
	}
	if fc.br.Buffered() == 0 || closeAfter {
		err := fc.flush()
		fc.releaseWriter() // idle connections hold no write buffer
		if err != nil {
			return true, false
		}
	}
	return true, !closeAfter
}

// hitFields reads the header lines of a request head (after the request
// line) as parseFields does, appending them but Host to fields as name,
// value pairs. ok is false for anything parseFields would not accept, and
// for requests with a body: those go the usual way.
func hitFields(s string, fields []string) (_ []string, host, id string, closeAfter, ok bool) {
	hosts, clSeen := 0, false
	for {
		// A line ends at the first CRLF; a bare LF before it would be in
		// its name or value, which refuse it.
		e := strings.IndexByte(s, '\n')
		if e < 1 || s[e-1] != '\r' {
			return fields, "", "", false, false
		}
		line := s[:e-1]
		s = s[e+1:]
		if line == "" {
			break
		}
		c := strings.IndexByte(line, ':')
		if c < 0 || !validFieldName(line[:c]) {
			return fields, "", "", false, false
		}
		k, v := line[:c], line[c+1:]
		for v != "" && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for n := len(v); n > 0 && (v[n-1] == ' ' || v[n-1] == '\t'); n-- {
			v = v[:n-1]
		}
		if !validValue(v) {
			return fields, "", "", false, false
		}
		// The names the path looks at, told apart by length first.
		switch len(k) {
		case len("Host"):
			if strings.EqualFold(k, "Host") {
				hosts++
				host = v
				if !validHost(v) {
					return fields, "", "", false, false
				}
				continue
			}
		case len("Content-Length"): // and Http2-Settings
			if strings.EqualFold(k, "Content-Length") {
				if n, ok := parseLen(v); !ok || n != 0 || clSeen {
					return fields, "", "", false, false // a body, or a length parseFields refuses
				}
				clSeen = true
			} else if strings.EqualFold(k, "Http2-Settings") {
				return fields, "", "", false, false
			}
		case len("Transfer-Encoding"):
			if strings.EqualFold(k, "Transfer-Encoding") {
				return fields, "", "", false, false
			}
		case len("Upgrade"):
			if strings.EqualFold(k, "Upgrade") {
				return fields, "", "", false, false
			}
		case len("Expect"):
			if strings.EqualFold(k, "Expect") {
				return fields, "", "", false, false
			}
		case len("Connection"):
			if strings.EqualFold(k, "Connection") {
				c, ok := connectionClose(v)
				if !ok {
					return fields, "", "", false, false
				}
				closeAfter = closeAfter || c
			}
		case len("X-Request-Id"):
			if id == "" && strings.EqualFold(k, "X-Request-Id") {
				id = v // the first, as ServeHTTP reads it
			}
		}
		if len(fields) >= 2*maxHitFields {
			return fields, "", "", false, false
		}
		fields = append(fields, k, v)
	}
	if hosts != 1 || s != "" {
		return fields, "", "", false, false
	}
	return fields, host, id, closeAfter, true
}

// observeHit reports a hit to the Observe hook and the access log, with
// what observedWriter.done reports for the same response.
func (fc *frontConn) observeHit(app, method, host, path string, status int, bytes int64, id string, start time.Time) {
	g := fc.f.g
	fc.end = time.Now()
	d := fc.end.Sub(start)
	if g.observe != nil {
		g.observe(app, status, bytes, d, CacheHit)
	}
	if g.access != nil {
		// Copies: the strings point into the connection's read buffer,
		// and a log handler may keep them.
		host, path, id = strings.Clone(host), strings.Clone(path), strings.Clone(id)
		g.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("app", app),
			slog.String("method", method),
			slog.String("host", host),
			slog.String("path", path),
			slog.Int("status", status),
			slog.Int64("bytes", bytes),
			slog.Duration("duration", d),
			slog.String("cache", CacheHit),
			slog.String("client", clientIP(fc.remote)),
			slog.String("id", id),
		)
	}
}
