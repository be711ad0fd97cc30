package gateway

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// frontWriter is the loop's http.ResponseWriter, reused by the requests of
// a connection.
type frontWriter struct {
	fc          *frontConn
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool  // the final status is chosen
	committed   bool  // the head is written
	bodyOK      bool  // the status allows a body
	cl          int64 // the handler's Content-Length, -1 = none
	written     int64
	chunked     bool
	closeAfter  bool
	pend        []byte // body held until the head is written
	err         error  // the connection failed
}

var (
	_ http.Flusher  = (*frontWriter)(nil)
	_ io.ReaderFrom = (*frontWriter)(nil)
)

func (w *frontWriter) reset(fc *frontConn, r *http.Request) {
	h := w.header
	if h == nil {
		h = make(http.Header)
	} else {
		clear(h)
	}
	*w = frontWriter{fc: fc, req: r, header: h, cl: -1, pend: w.pend[:0], closeAfter: r.Close}
}

func (w *frontWriter) Header() http.Header { return w.header }

func (w *frontWriter) WriteHeader(code int) {
	if w.wroteHeader || w.err != nil {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Informational: sent at once, with the header as it is.
		bw := w.fc.writer()
		writeStatusLine(bw, code)
		writeHeaderMap(bw, w.header, false)
		bw.WriteString("\r\n")
		if err := bw.Flush(); err != nil {
			w.err = err
		}
		return
	}
	w.wroteHeader, w.status = true, code
	w.bodyOK = code != http.StatusNoContent && code != http.StatusNotModified && code >= 200
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, ok := parseLen(v[0]); ok && len(v) == 1 {
			w.cl = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if v := w.header["Connection"]; len(v) > 0 && namedByConnection(v, "close") {
		w.closeAfter = true
	}
}

func (w *frontWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyOK {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if len(w.pend)+len(p) <= frontPend {
			w.pend = append(w.pend, p...)
			return len(p), nil
		}
		w.commit(false, p)
		if w.err != nil {
			return 0, w.err
		}
	}
	w.body(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// body writes body bytes after the head (nothing for HEAD).
func (w *frontWriter) body(p []byte) {
	if len(p) == 0 || w.req.Method == http.MethodHead || w.err != nil {
		return
	}
	bw := w.fc.writer()
	if w.chunked {
		var nb [16]byte
		bw.Write(strconv.AppendInt(nb[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, w.err = bw.WriteString("\r\n")
		return
	}
	_, w.err = bw.Write(p)
}

// commit writes the head, then the held body. final says the handler has
// ended: the body is whole, its length known. next is body about to be
// written, sniffed for a Content-Type when nothing is held.
func (w *frontWriter) commit(final bool, next []byte) {
	w.committed = true
	h := w.header
	bw := w.fc.writer()
	delete(h, "Transfer-Encoding")
	_, trailers := h["Trailer"]
	var extra [4]field
	ex := extra[:0]
	if _, ok := h["Date"]; !ok {
		ex = append(ex, field{"Date", httpDate()})
	}
	if w.bodyOK {
		if _, ok := h["Content-Type"]; !ok && len(w.pend)+len(next) > 0 {
			sniff := w.pend
			if len(sniff) == 0 {
				sniff = next
			}
			ex = append(ex, field{"Content-Type", http.DetectContentType(sniff)})
		}
		switch {
		case w.cl >= 0:
		case final && !trailers && (w.req.Method != http.MethodHead || len(w.pend) > 0):
			ex = append(ex, field{"Content-Length", strconv.Itoa(len(w.pend))})
		case w.req.Method == http.MethodHead:
		default:
			w.chunked = true
			ex = append(ex, field{"Transfer-Encoding", "chunked"})
		}
	}
	if w.closeAfter {
		delete(h, "Connection")
		ex = append(ex, field{"Connection", "close"})
	}
	writeStatusLine(bw, w.status)
	writeHeaderMap(bw, h, trailers)
	for _, f := range ex {
		bw.WriteString(f.key)
		bw.WriteString(": ")
		bw.WriteString(f.value)
		bw.WriteString("\r\n")
	}
	_, w.err = bw.WriteString("\r\n")
	pend := w.pend
	w.pend = pend[:0]
	w.body(pend)
}

// frontDirectMin is the smallest body ReadFrom hands to the connection:
// smaller ones fit the write buffer, and leave with the head in one write.
const frontDirectMin = 32 << 10

// ReadFrom copies r's bytes as body. A large body whose length the handler
// declared, with its type, goes from r to the connection's ReadFrom after
// the head is flushed: an *os.File (a static file, a body of the cache's
// disk tier) leaves by sendfile(2) instead of through the write buffer.
// It stops at the declared length, as Write refuses to pass it.
func (w *frontWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	rf, direct := w.fc.c.(io.ReaderFrom)
	_, typed := w.header["Content-Type"]
	if !direct || w.err != nil || !w.bodyOK || w.cl-w.written < frontDirectMin || w.chunked ||
		w.req.Method == http.MethodHead || !w.committed && (!typed || len(w.pend) > 0) {
		return io.Copy(struct{ io.Writer }{w}, r) // Write's framing and checks
	}
	if !w.committed {
		w.commit(false, nil)
	}
	if w.err == nil {
		w.err = w.fc.writer().Flush()
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := readFromLimit(rf, r, w.cl-w.written)
	w.written += n
	if err != nil {
		// Reading r or writing the connection: either way the response
		// is cut, and finish closes the connection for a short body.
		w.err = err
	}
	return n, err
}

// readFromLimit hands at most n bytes of r to rf. A limited reader is
// flattened, since sendfile and splice see through one *io.LimitedReader,
// not two, and its limit is kept: decreased by what was read.
func readFromLimit(rf io.ReaderFrom, r io.Reader, n int64) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return rf.ReadFrom(&io.LimitedReader{R: r, N: n})
	}
	if lr.N <= 0 {
		return 0, nil
	}
	m, err := rf.ReadFrom(&io.LimitedReader{R: lr.R, N: min(lr.N, n)})
	lr.N -= m
	return m, err
}

// Flush sends what was written so far: the body becomes chunked unless the
// handler set a Content-Length.
func (w *frontWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	if w.err == nil {
		w.err = w.fc.writer().Flush()
	}
}

// finish ends the response after the handler returned.
func (w *frontWriter) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true, nil)
	}
	if w.cl >= 0 && w.written < w.cl && w.req.Method != http.MethodHead && w.bodyOK {
		w.closeAfter = true // the body is short: the connection cannot carry another
	}
	if w.chunked && w.err == nil {
		bw := w.fc.writer()
		bw.WriteString("0\r\n")
		for k, vv := range w.header {
			name, prefixed := strings.CutPrefix(k, http.TrailerPrefix)
			if !prefixed && !declaredTrailer(w.header["Trailer"], k) {
				continue
			}
			for _, v := range vv {
				bw.WriteString(name)
				bw.WriteString(": ")
				writeValue(bw, v)
				bw.WriteString("\r\n")
			}
		}
		_, w.err = bw.WriteString("\r\n")
	}
}

func declaredTrailer(decl []string, k string) bool {
	return len(decl) > 0 && namedByConnection(decl, k)
}

// writeHeaderMap writes h's fields, skipping invalid names and, when
// trailers is set, the fields its Trailer field declares (sent after the
// body).
func writeHeaderMap(bw *bufio.Writer, h http.Header, trailers bool) {
	for k, vv := range h {
		if !validFieldName(k) || trailers && k != "Trailer" && declaredTrailer(h["Trailer"], k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeValue(bw, strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
}

// statusLines are the status lines of the codes net/http has a text for.
var statusLines = func() (lines [600]string) {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			lines[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return lines
}()

func writeStatusLine(bw *bufio.Writer, code int) {
	if code < len(statusLines) && statusLines[code] != "" {
		bw.WriteString(statusLines[code])
		return
	}
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n")
}

// appendStatusLine is writeStatusLine appending to b.
func appendStatusLine(b []byte, code int) []byte {
	if code < len(statusLines) && statusLines[code] != "" {
		return append(b, statusLines[code]...)
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, " status code "...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, "\r\n"...)
}

// httpDate is the Date field's value, formatted once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &cachedDate{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

type cachedDate struct {
	sec int64
	s   string
}

var dateCache atomic.Pointer[cachedDate]
