package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// GuardOptions configures Guard. The zero value only refuses ambiguous
// requests.
type GuardOptions struct {
	// BodyTimeout bounds the wait for each read of a request body, as
	// nginx's client_body_timeout does: a client that stops sending its
	// body for that long loses its connection. 0 = no bound.
	BodyTimeout time.Duration

	// SendTimeout bounds each write to the client, as nginx's send_timeout
	// does: a client that stops reading its response for that long loses
	// its connection. Streams and websockets are not cut while they
	// progress. 0 = no bound.
	SendTimeout time.Duration
}

// DefaultBodyTimeout and DefaultSendTimeout are nginx's defaults.
const (
	DefaultBodyTimeout = 60 * time.Second
	DefaultSendTimeout = 60 * time.Second
)

// Guard wraps the gateway's listener with the protections http.Server
// cannot give: it follows the HTTP/1.1 framing of what each client sends
// and refuses a request head carrying both Content-Length and
// Transfer-Encoding, which net/http would accept after dropping the
// Content-Length (RFC 9112 section 6.1 lets a server refuse it, and a
// smuggling attempt is the usual reason to send both). The refusal is made
// by net/http itself, in order on the connection: the guard spoils the
// offending header line before net/http reads it, so net/http answers
// "400 Bad Request" and closes the connection, and nothing reaches an app.
//
// It also applies the idle bounds of GuardOptions, which are between reads
// of a body and between writes, unlike http.Server's ReadTimeout and
// WriteTimeout, which bound whole requests and would cut streams.
//
// After a request asking for a protocol switch (Upgrade, CONNECT, an
// HTTP/2 preface) the connection is no longer followed: what comes next is
// not HTTP/1.1.
func Guard(ln net.Listener, opts GuardOptions) net.Listener {
	return &guardListener{Listener: ln, opts: opts}
}

type guardListener struct {
	net.Listener
	opts GuardOptions
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c, bodyTimeout: l.opts.BodyTimeout, sendTimeout: l.opts.SendTimeout}, nil
}

// maxGuardLine bounds a header or chunk-size line the guard holds while it
// waits for its end. Longer lines are left to net/http, which refuses
// them (431 or 400); the guard stops following the connection.
const maxGuardLine = 64 << 10

// Framing states of a guarded connection.
const (
	inHead      = iota // request line and header lines
	inBody             // a Content-Length body: left bytes to go
	inChunkSize        // a chunk-size line
	inChunkData        // chunk data: left bytes to go, then a CRLF line
	inChunkEnd         // the CRLF after chunk data
	inTrailer          // trailer lines, up to an empty one
	off                // not followed any more
)

// guardConn is one client connection. Reads happen on one goroutine at a
// time (net/http's reader or, after a hijack, its new owner); deadline
// setters and writes may run on others.
type guardConn struct {
	net.Conn
	bodyTimeout, sendTimeout time.Duration

	// Read side, owned by the reader.
	state     int
	left      int64  // bytes of body or chunk data still to come
	pend      []byte // an incomplete line, held until its end arrives
	out       []byte // checked bytes not yet handed to the reader
	held      []byte // out's backing array, reused
	rerr      error  // a read error to return once out is empty
	armed     bool   // the body deadline is set on the connection
	headLines int    // lines of the current head so far
	cl, te    bool   // the current head has Content-Length / Transfer-Encoding
	chunked   bool   // ... its last transfer coding is chunked
	upgrade   bool   // ... it asks for a protocol switch
	length    int64  // ... its Content-Length, -1 when invalid
	// drained: the last read(2) took less than it asked for, so the
	// socket was empty then and a wait for its next edge cannot miss
	// bytes (Front's netwait.Waiter).
	drained bool

	// clock, when set, is a clock reading its writer took a moment
	// before, which armWrite takes instead of reading the clock (Front
	// sets it around the flush that ends a response). Writer only.
	clock time.Time

	mu      sync.Mutex // guards rd, wd, lastArm
	rd, wd  time.Time  // deadlines set by the connection's users
	lastArm time.Time  // when the write deadline was last armed
}

func (c *guardConn) Read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.state == off && len(c.pend) == 0 {
			return c.connRead(p)
		}
		c.armBody()
		if len(c.pend) == 0 && len(p) >= 512 {
			// The common case: check in place, hold back a trailing
			// incomplete line, if any.
			n, err := c.connRead(p)
			k := c.scan(p[:n])
			if k < n {
				c.pend = append(c.pend[:0], p[k:n]...)
			}
			if err != nil {
				err = c.readError(err)
			}
			if k > 0 || err != nil {
				return k, err
			}
			continue
		}
		// Complete the held line (or serve a tiny read) from a buffer
		// of our own.
		if len(c.pend) > maxGuardLine {
			c.state, c.out, c.pend = off, c.pend, nil
			continue
		}
		bp := guardBufs.Get().(*[]byte)
		buf := append((*bp)[:0], c.pend...)
		buf = slices.Grow(buf, 4096)
		n, err := c.connRead(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		k := c.scan(buf)
		c.out = append(c.held[:0], buf[:k]...)
		c.held = c.out[:0]
		c.pend = append(c.pend[:0], buf[k:]...)
		*bp = buf[:0]
		guardBufs.Put(bp)
		if err != nil {
			if err = c.readError(err); err != nil && len(c.out) == 0 {
				return 0, err
			}
		}
	}
}

func (c *guardConn) connRead(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.drained = err == nil && n < len(p)
	return n, err
}

// empty reports that the next Read has nothing held (not even part of a
// line) and would start with a read(2) of a socket that was empty at its
// last read.
func (c *guardConn) empty() bool {
	return c.drained && len(c.out) == 0 && len(c.pend) == 0 && c.rerr == nil
}

// guardBufs are the buffers of reads that complete a held line, or are too
// small to check in place (net/http's one-byte background reads).
var guardBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// readError decides what a read error means. A timeout may be temporary
// (net/http aborts its background read with a past deadline): it is
// returned and the held bytes stay. Anything else ends the connection: the
// held bytes go to the reader first, then the error.
func (c *guardConn) readError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	c.rerr = err
	if len(c.pend) > 0 {
		c.out, c.pend, c.state = append(c.out, c.pend...), nil, off
		return nil
	}
	return err
}

// scan follows the framing of b and returns how many bytes of it are
// checked; b[k:] is an incomplete line, to present again with what follows.
func (c *guardConn) scan(b []byte) int {
	i := 0
	for i < len(b) {
		switch c.state {
		case off:
			return len(b)
		case inBody, inChunkData:
			k := min(int64(len(b)-i), c.left)
			c.left -= k
			i += int(k)
			if c.left == 0 {
				if c.state == inBody {
					c.endMessage()
				} else {
					c.state = inChunkEnd
				}
			}
			continue
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return i
		}
		c.line(b[i : i+j+1])
		i += j + 1
	}
	return i
}

// line handles one complete line, "\n" included, in a line state. It may
// spoil the line in place.
func (c *guardConn) line(l []byte) {
	text := l
	for n := len(text); n > 0 && (text[n-1] == '\n' || text[n-1] == '\r'); n-- {
		text = text[:n-1] // bytes.TrimRight(l, "\r\n") without its cutset's set
	}
	switch c.state {
	case inHead:
		c.headLine(l, text)
	case inChunkSize:
		size, ok := chunkSize(text)
		switch {
		case !ok:
			c.state = off // net/http refuses it
		case size == 0:
			c.state = inTrailer
		default:
			c.state, c.left = inChunkData, size
		}
	case inChunkEnd:
		c.state = inChunkSize
		if len(text) != 0 {
			c.state = off // net/http refuses it
		}
	case inTrailer:
		if len(text) == 0 {
			c.endMessage()
		}
	}
}

// headLine handles a line of a request head.
func (c *guardConn) headLine(l, text []byte) {
	if len(text) == 0 {
		if c.headLines > 0 {
			c.endHead()
		}
		return // empty lines before a request line are net/http's business
	}
	c.headLines++
	if c.headLines == 1 {
		c.upgrade = bytes.HasPrefix(text, []byte("CONNECT ")) || bytes.HasPrefix(text, []byte("PRI "))
		return
	}
	if b := text[0] | 0x20; b != 'c' && b != 't' && b != 'u' {
		// Not one of the names below, whose first letters fold only to
		// themselves (no other rune does to c, t or u, as ſ does to s):
		// most lines (Host, Accept..., User-Agent) end here, without a
		// look for their colon.
		return
	}
	c.headField(l, text)
}

// headField handles a header line that may name a field the guard follows.
func (c *guardConn) headField(l, text []byte) {
	name, value, ok := bytes.Cut(text, []byte(":"))
	if !ok || text[0] == ' ' || text[0] == '\t' {
		return // net/http decides about malformed and folded lines
	}
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		if c.cl {
			c.length = -1 // net/http refuses differing values and decides about equal ones
		} else {
			c.cl, c.length = true, contentLength(value)
		}
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		c.te = true
		v := bytes.TrimSpace(value)
		if i := bytes.LastIndexByte(v, ','); i >= 0 {
			v = bytes.TrimSpace(v[i+1:])
		}
		c.chunked = bytes.EqualFold(v, []byte("chunked"))
	case bytes.EqualFold(name, []byte("Upgrade")):
		c.upgrade = true
	default:
		return
	}
	if c.cl && c.te {
		// Ambiguous framing. An invalid field name makes net/http
		// refuse the request with 400 and close the connection.
		l[0] = '('
		c.state = off
	}
}

// endHead chooses how to follow what comes after a request head.
func (c *guardConn) endHead() {
	switch {
	case c.upgrade, c.te && !c.chunked, c.cl && c.length < 0:
		c.state = off // a switch, or a request net/http refuses
	case c.te:
		c.state = inChunkSize
	case c.cl && c.length > 0:
		c.state, c.left = inBody, c.length
	default:
		c.endMessage()
	}
	c.headLines, c.cl, c.te, c.chunked, c.upgrade, c.length = 0, false, false, false, false, 0
}

// endMessage is the end of a request: the next one's head follows.
func (c *guardConn) endMessage() {
	c.state = inHead
	if c.armed {
		c.armed = false
		c.mu.Lock()
		rd := c.rd
		c.mu.Unlock()
		c.Conn.SetReadDeadline(rd)
	}
}

// armBody bounds the next read when it is one of a request body.
func (c *guardConn) armBody() {
	if c.bodyTimeout <= 0 || c.state == inHead || c.state == off {
		return
	}
	d := time.Now().Add(c.bodyTimeout)
	c.mu.Lock()
	if !c.rd.IsZero() && c.rd.Before(d) {
		d = c.rd
	}
	c.mu.Unlock()
	c.armed = true
	c.Conn.SetReadDeadline(d)
}

// armWrite bounds the next write. It re-arms at most once a second: a
// deadline armed less than a second ago is still at least SendTimeout-1s
// ahead.
func (c *guardConn) armWrite() {
	if c.sendTimeout <= 0 {
		return
	}
	now := c.clock
	if now.IsZero() {
		now = time.Now()
	}
	c.mu.Lock()
	if now.Sub(c.lastArm) < time.Second {
		c.mu.Unlock()
		return
	}
	c.lastArm = now
	d := now.Add(c.sendTimeout)
	if !c.wd.IsZero() && c.wd.Before(d) {
		d = c.wd
	}
	c.mu.Unlock()
	c.Conn.SetWriteDeadline(d)
}

func (c *guardConn) Write(p []byte) (int, error) {
	c.armWrite()
	return c.Conn.Write(p)
}

// WriteBuffers writes bufs with one writev where the connection allows it:
// Front's hit path sends a stored head and a large body without copying
// the body into its write buffer.
func (c *guardConn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	c.armWrite()
	return bufs.WriteTo(c.Conn)
}

// sendfileStep is how much ReadFrom hands to the kernel per write deadline.
const sendfileStep = 1 << 20

// ReadFrom keeps sendfile and splice for static files and proxied bodies,
// re-arming the write deadline between steps.
func (c *guardConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	if c.sendTimeout <= 0 {
		return rf.ReadFrom(r)
	}
	var total int64
	for {
		c.armWrite()
		n, err := readFromLimit(rf, r, sendfileStep)
		total += n
		if err != nil || n < sendfileStep {
			return total, err
		}
	}
}

// CloseWrite lets net/http half-close the connection before closing it.
func (c *guardConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *guardConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *guardConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t) // a body read re-arms its own bound
}

func (c *guardConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wd, c.lastArm = t, time.Time{}
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// contentLength parses a Content-Length value, -1 when invalid.
func contentLength(v []byte) int64 {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return -1
		}
		n = n*10 + int64(b-'0')
	}
	return n
}

// chunkSize parses a chunk-size line, extensions aside.
func chunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, b := range line {
		switch {
		case '0' <= b && b <= '9':
			n = n<<4 | int64(b-'0')
		case 'a' <= b && b <= 'f':
			n = n<<4 | int64(b-'a'+10)
		case 'A' <= b && b <= 'F':
			n = n<<4 | int64(b-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}
