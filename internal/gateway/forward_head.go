package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unsafe"
)

// The forwarder's reading of response heads from app instances: strict
// enough that every head it accepts reads the same in http.ReadResponse
// (FuzzParseResponseHead); anything else is a 502.

// field is one response header field.
type field struct{ key, value string }

// respHead is a parsed response head.
type respHead struct {
	status    int
	fields    []field   // the end-to-end fields, in order
	cc        [2]string // room for the Cache-Control values (cacheControl)
	trailer   []field   // trailer fields after a chunked body
	announce  []string  // the Trailer field's values
	length    int64     // -1: unknown (chunked or until close)
	chunked   bool
	noBody    bool // HEAD, 1xx, 204, 304
	keepAlive bool
	nothing   bool   // nothing was read: the connection ended first
	raw       string // the head, in the connection's buffer until own
}

func (h *respHead) announced(k string) bool {
	for _, a := range h.announce {
		if namedByConnection([]string{a}, k) {
			return true
		}
	}
	return false
}

// readHeadBytes reads a response head up to and including its empty line.
// A head that fits in the connection's read buffer is returned in place
// (its bytes stay valid until the next read from uc.br: the body's);
// a larger one is copied into uc.head line by line.
func readHeadBytes(uc *upConn) ([]byte, error) {
	br := uc.br
	from := 0
	for {
		buf, _ := br.Peek(br.Buffered())
		if n := headEnd(buf, from); n > 0 {
			br.Discard(n)
			return buf[:n:n], nil
		}
		if len(buf) >= br.Size() {
			return readHeadLines(uc) // larger than the buffer
		}
		from = len(buf)
		if _, err := br.Peek(len(buf) + 1); err != nil {
			// As readHeadLines ends: what came, and why no more did.
			buf, _ = br.Peek(br.Buffered())
			br.Discard(len(buf))
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
}

// headEnd returns the length of the head at the start of buf, up to and
// including the empty line that ends it, or 0 when buf holds no such
// line. Lines ending at from or later are looked at. As readHeadLines, it
// takes an empty first line for part of the head.
func headEnd(buf []byte, from int) int {
	for i := from; i < len(buf); {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j
		if i >= 1 && buf[i-1] == '\n' || i >= 2 && buf[i-1] == '\r' && buf[i-2] == '\n' {
			return i + 1
		}
		i++
	}
	return 0
}

// readHeadLines is readHeadBytes for a head larger than the read buffer:
// copied line by line into uc.head.
func readHeadLines(uc *upConn) ([]byte, error) {
	head := uc.head[:0]
	for {
		line, err := uc.br.ReadSlice('\n')
		if len(head)+len(line) > maxResponseHead {
			return nil, fmt.Errorf("%w: head larger than %d bytes", errBadResponse, maxResponseHead)
		}
		head = append(head, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			uc.head = head[:0]
			if err == io.EOF && len(head) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return head, err
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') && len(head) > len(line) {
			uc.head = head[:0]
			return head, nil
		}
	}
}

// readResponseHead reads and parses the app's response head to a request
// with method.
func readResponseHead(uc *upConn, method string) (*respHead, error) {
	raw, err := readHeadBytes(uc)
	h := &uc.resp
	h.reset()
	if err != nil {
		h.nothing = len(raw) == 0
		return h, err
	}
	// The fields point into the connection's read buffer (or head
	// buffer, for a large head) until own is called: valid until the
	// body is read. A response written directly needs no copy of its
	// head: writeDirect writes the head before reading the body.
	h.raw = unsafe.String(unsafe.SliceData(raw), len(raw))
	return h, parseResponseHead(h, h.raw, method)
}

// own moves h's strings off the connection's read (or head) buffer, which
// the body and the next response reuse, into a copy of their own: for a
// header map, which may outlive the exchange (a stored response).
func (h *respHead) own() {
	if h.raw == "" {
		return
	}
	old, cp := h.raw, strings.Clone(h.raw)
	h.raw = ""
	for i := range h.fields {
		f := &h.fields[i]
		f.key, f.value = rebase(f.key, old, cp), rebase(f.value, old, cp)
	}
	for i := range h.announce {
		h.announce[i] = rebase(h.announce[i], old, cp)
	}
}

// rebase returns v's bytes in cp when v lies in old, of which cp is a copy.
func rebase(v, old, cp string) string {
	if v == "" {
		return v
	}
	p, base := uintptr(unsafe.Pointer(unsafe.StringData(v))), uintptr(unsafe.Pointer(unsafe.StringData(old)))
	if p < base || p+uintptr(len(v)) > base+uintptr(len(old)) {
		return v // a string of its own (a canonicalized key)
	}
	off := int(p - base)
	return cp[off : off+len(v)]
}

// reset empties h for the next response on its connection, keeping its
// slices' arrays.
func (h *respHead) reset() {
	*h = respHead{fields: h.fields[:0], trailer: h.trailer[:0], announce: h.announce[:0], length: -1}
}

// values returns the fields' values, owned (see own), in one new array
// the header map they go to keeps.
func (h *respHead) values() []string {
	h.own()
	vals := make([]string, len(h.fields))
	for i := range h.fields {
		vals[i] = h.fields[i].value
	}
	return vals
}

// Header returns the end-to-end fields as a new header map.
func (h *respHead) Header() http.Header {
	hdr := make(http.Header, len(h.fields))
	vals := h.values()
	for i := range h.fields {
		f := &h.fields[i]
		if v, ok := hdr[f.key]; ok {
			hdr[f.key] = append(v, f.value)
		} else {
			hdr[f.key] = vals[i : i+1 : i+1]
		}
	}
	return hdr
}

// cacheControl returns the Cache-Control values, in h's own room when
// they fit.
func (h *respHead) cacheControl() []string {
	cc := h.cc[:0]
	for i := range h.fields {
		if h.fields[i].key == "Cache-Control" {
			cc = append(cc, h.fields[i].value)
		}
	}
	return cc
}

// parseResponseHead parses a response head, which ends with an empty line,
// into h (reset). It reads each header line in one pass over its bytes:
// the name is checked and tested for its canonical form as it is found,
// the value is found with one IndexByte, and no strings are made for
// fields that go through unchanged (parseResponseHeadRef in the tests is
// the plain version it must agree with, FuzzParseSame).
func parseResponseHead(h *respHead, s string, method string) error {
	line, rest := s, ""
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		line, rest = s[:i], s[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	proto, code, ok := strings.Cut(line, " ")
	if !ok || len(code) < 3 || (len(code) > 3 && code[3] != ' ') {
		return fmt.Errorf("%w: status line %q", errBadResponse, line)
	}
	switch proto {
	case "HTTP/1.1":
		h.keepAlive = true
	case "HTTP/1.0":
	default:
		return fmt.Errorf("%w: status line %q", errBadResponse, line)
	}
	http11 := h.keepAlive
	for i := 0; i < 3; i++ {
		if code[i] < '0' || code[i] > '9' {
			return fmt.Errorf("%w: status line %q", errBadResponse, line)
		}
		h.status = h.status*10 + int(code[i]-'0')
	}
	if h.status < 100 {
		return fmt.Errorf("%w: status line %q", errBadResponse, line)
	}
	fields := h.fields[:0]
	var connRoom [2]string
	conn := connRoom[:0]
	var cl string
	clSeen, te, hop := false, false, false
	for rest != "" {
		// The name: one that apps send most, as its constant, or token
		// bytes up to the colon, canonical or not.
		var k string
		i := strings.IndexByte(rest, ':')
		if i > 0 {
			k = commonName(rest[:i])
		}
		if k == "" {
			upper, canon := true, true
			for i = 0; i < len(rest); i++ {
				c := rest[i]
				if !tokenChars[c] {
					break
				}
				if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
					canon = false
				}
				upper = c == '-'
			}
			if i == 0 && (rest[0] == '\n' || len(rest) > 1 && rest[0] == '\r' && rest[1] == '\n' || rest == "\r") {
				break // the empty line
			}
			if i == 0 || i == len(rest) || rest[i] != ':' {
				return fmt.Errorf("%w: header line %q", errBadResponse, headLine(rest))
			}
			k = rest[:i]
			if !canon {
				k = http.CanonicalHeaderKey(k)
			}
		}
		// The value: to the end of the line, without its CR and the
		// spaces and tabs around it.
		v := rest[i+1:]
		rest = ""
		if j := strings.IndexByte(v, '\n'); j >= 0 {
			v, rest = v[:j], v[j+1:]
		}
		if n := len(v); n > 0 && v[n-1] == '\r' {
			v = v[:n-1]
		}
		for v != "" && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for n := len(v); n > 0 && (v[n-1] == ' ' || v[n-1] == '\t'); n-- {
			v = v[:n-1]
		}
		if !validValue(v) {
			return fmt.Errorf("%w: header line %q: bad value", errBadResponse, k)
		}
		switch k {
		case "Content-Length":
			if clSeen && v != cl {
				return fmt.Errorf("%w: Content-Length %q and %q", errBadResponse, cl, v)
			}
			clSeen, cl = true, v
			fields = append(fields, field{k, v})
			continue
		case "Transfer-Encoding":
			if !http11 {
				continue // ignored in HTTP/1.0, as net/http ignores it
			}
			te = true
			last := v
			if i := strings.LastIndexByte(v, ','); i >= 0 {
				last = v[i+1:]
			}
			if !strings.EqualFold(strings.TrimSpace(last), "chunked") {
				return fmt.Errorf("%w: Transfer-Encoding %q", errBadResponse, v)
			}
			h.chunked = true
			continue
		case "Connection":
			conn = append(conn, v)
			continue
		case "Trailer":
			h.announce = append(h.announce, v)
		case "X-Request-Id":
			continue // the gateway's own is on the response already
		default:
			hop = hop || isHopHeader(k)
		}
		fields = append(fields, field{k, v})
	}
	if namedByConnection(conn, "close") {
		h.keepAlive = false
	} else if !h.keepAlive && namedByConnection(conn, "keep-alive") {
		h.keepAlive = true
	}
	if hop || len(conn) > 0 || te {
		// Drop hop-by-hop fields, and those Connection names.
		out := fields[:0]
		for _, f := range fields {
			if f.key != "Trailer" && isHopHeader(f.key) || (len(conn) > 0 && namedByConnection(conn, f.key)) {
				continue
			}
			if f.key == "Content-Length" && te {
				continue // chunked wins; the length is not the body's
			}
			out = append(out, f)
		}
		fields = out
	}
	h.fields = fields
	if _, ok := parseLen(cl); clSeen && !ok {
		return fmt.Errorf("%w: Content-Length %q", errBadResponse, cl)
	}
	h.noBody = method == http.MethodHead || h.status < 200 || h.status == http.StatusNoContent || h.status == http.StatusNotModified
	switch {
	case h.noBody:
		h.length = 0
	case h.chunked:
	case clSeen:
		h.length, _ = parseLen(cl)
	default:
		h.keepAlive = false // the body ends when the connection does
	}
	return nil
}

// commonName returns n when it is one of the field names apps send most,
// spelled canonically, as a constant; "" otherwise. Such a name needs
// no byte-by-byte check.
func commonName(n string) string {
	switch n {
	case "Content-Type":
		return "Content-Type"
	case "Content-Length":
		return "Content-Length"
	case "Date":
		return "Date"
	case "Cache-Control":
		return "Cache-Control"
	case "Server":
		return "Server"
	case "Etag":
		return "Etag"
	case "Last-Modified":
		return "Last-Modified"
	case "Vary":
		return "Vary"
	case "Expires":
		return "Expires"
	case "Set-Cookie":
		return "Set-Cookie"
	case "Location":
		return "Location"
	case "Content-Encoding":
		return "Content-Encoding"
	case "Transfer-Encoding":
		return "Transfer-Encoding"
	case "Connection":
		return "Connection"
	case "Keep-Alive":
		return "Keep-Alive"
	case "Accept-Ranges":
		return "Accept-Ranges"
	case "Age":
		return "Age"
	case "X-Content-Type-Options":
		return "X-Content-Type-Options"
	case "X-Frame-Options":
		return "X-Frame-Options"
	case "X-Request-Id":
		return "X-Request-Id"
	}
	return ""
}

// validValue is validFieldValue eight bytes at a time: a word with no
// byte below 0x20 and none 0x7f is fine as it is; one that has some
// (a tab, maybe) is looked at byte by byte.
func validValue(v string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(v); i += 8 {
		x := uint64(v[i]) | uint64(v[i+1])<<8 | uint64(v[i+2])<<16 | uint64(v[i+3])<<24 |
			uint64(v[i+4])<<32 | uint64(v[i+5])<<40 | uint64(v[i+6])<<48 | uint64(v[i+7])<<56
		y := x ^ 0x7f*ones
		if (x-0x20*ones)&^x&highs != 0 || (y-ones)&^y&highs != 0 {
			return validFieldValue(v[i:])
		}
	}
	return validFieldValue(v[i:])
}

// headLine is the line at the start of s, for an error message.
func headLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, "\r")
}

func parseLen(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// validFieldName reports a token (RFC 9110 section 5.6.2).
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool { return tokenChars[c] }

// tokenChars marks the bytes of a token: letters, digits, "!#$%&'*+-.^_`|~".
var tokenChars = func() (t [256]bool) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		}
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

// canonicalKey is http.CanonicalHeaderKey without an allocation when k is
// canonical already.
func canonicalKey(k string) string {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return http.CanonicalHeaderKey(k)
		}
		upper = c == '-'
	}
	return k
}
