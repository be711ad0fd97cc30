package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parseResponseHeadRef is the forwarder's first parser, kept as the
// plain statement of what parseResponseHead must do: it parses a response head, which ends with an empty line,
// into h (reset).
func parseResponseHeadRef(h *respHead, s string, method string) error {
	line, rest, _ := strings.Cut(s, "\n")
	line = strings.TrimSuffix(line, "\r")
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
	var conn []string
	var cl string
	clSeen, te := false, false
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !validFieldName(k) {
			return fmt.Errorf("%w: header line %q", errBadResponse, line)
		}
		k = canonicalKey(k)
		v = strings.Trim(v, " \t")
		if !validFieldValue(v) {
			return fmt.Errorf("%w: header line %q", errBadResponse, line)
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
			if proto != "HTTP/1.1" {
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
		}
		fields = append(fields, field{k, v})
	}
	if namedByConnection(conn, "close") {
		h.keepAlive = false
	} else if !h.keepAlive && namedByConnection(conn, "keep-alive") {
		h.keepAlive = true
	}
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
	h.fields = out
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

// parseBoth parses head with parseResponseHead and parseResponseHeadRef
// and reports how they differ, "" when they agree.
func parseBoth(head, method string) string {
	var got, want respHead
	got.reset()
	want.reset()
	gerr := parseResponseHead(&got, head, method)
	werr := parseResponseHeadRef(&want, head, method)
	if (gerr == nil) != (werr == nil) {
		return fmt.Sprintf("error %v, reference %v", gerr, werr)
	}
	if gerr != nil {
		return ""
	}
	if len(got.fields) == 0 && len(want.fields) == 0 {
		got.fields, want.fields = nil, nil
	}
	if len(got.announce) == 0 && len(want.announce) == 0 {
		got.announce, want.announce = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("got %+v\nreference %+v", got, want)
	}
	return ""
}

// TestParseSame: the forwarder's parser reads response heads exactly as
// its plain reference does: the same fields, framing, or refusal.
func TestParseSame(t *testing.T) {
	heads := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n\r\n",
		"HTTP/1.1 200 OK\r\ncontent-type:text/plain\r\ncache-control: \t no-store \t\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: a\r\nKeep-Alive: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTrailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Request-Id: app\r\nUpgrade: x\r\nTe: trailers\r\nProxy-Connection: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Spaces:   \r\nX-CR:\r\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r",
		"HTTP/1.1 200 OK\r\nX-A: 1",
		"HTTP/1.1 200 OK\r\nX-A\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n X-Fold: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Ctl: a\x01b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Del: a\x7fb\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Obs: caf\xc3\xa9\u0085\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain;\tcharset=utf-8\r\nDate: Mon, 02 Jan 2006\x7f15:04:05 GMT\r\n\r\n",
		"HTTP/1.1 200 OK\r\nCache-Control: no-store, no-cache\x01\r\n\r\n",
		"HTTP/1.1 200 OK\r\ncontent-type: a/b\r\nDATE: x\r\nEtag: \"e\"\r\nETag: \"f\"\r\nX-Request-Id: app\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length : 5\r\nContent-Type\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type:\r\n\r\nDate: x\r\n",
		"HTTP/1.1 200 OK\r\n\r\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 204\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 099 Low\r\n\r\n",
		"\r\n",
		"",
	}
	for _, head := range heads {
		for _, method := range []string{"GET", "HEAD"} {
			if diff := parseBoth(head, method); diff != "" {
				t.Errorf("%s %q: %s", method, head, diff)
			}
		}
	}
}

// FuzzParseSame: for any head, parseResponseHead and its reference agree.
func FuzzParseSame(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a:  2 \r\n\r\n", false)
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n", true)
	f.Add("HTTP/1.0 404 Not Found\r\nConnection: keep-alive, X-Hop\r\nX-Hop: a\r\n\r\n", false)
	f.Add("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", false)
	f.Fuzz(func(t *testing.T, head string, isHead bool) {
		method := http.MethodGet
		if isHead {
			method = http.MethodHead
		}
		if diff := parseBoth(head, method); diff != "" {
			t.Errorf("%s %q: %s", method, head, diff)
		}
	})
}

// BenchmarkParseResponseHead parses the head net/http sends for the bench
// app's /hello, with the forwarder's parser and with its reference.
func BenchmarkParseResponseHead(b *testing.B) {
	head := "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Sun, 22 Nov 2026 04:00:00 GMT\r\nContent-Length: 13\r\n\r\n"
	for _, p := range []struct {
		name  string
		parse func(*respHead, string, string) error
	}{{"new", parseResponseHead}, {"ref", parseResponseHeadRef}} {
		b.Run(p.name, func(b *testing.B) {
			var h respHead
			b.ReportAllocs()
			for b.Loop() {
				h.reset()
				if err := p.parse(&h, head, "GET"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestResponseHeadReads: the forwarder reads a response head whatever way
// it arrives: in the read buffer whole, in pieces, larger than the buffer,
// cut by the app's close; the client gets the app's fields and body, or a
// 502 for a cut head.
func TestResponseHeadReads(t *testing.T) {
	big := strings.Repeat("X-Big: "+strings.Repeat("b", 100)+"\r\n", 60) // ~6.5 KB: more than the 4 KiB buffer
	tests := []struct {
		name   string
		pieces []string // written with a pause between them
		status int
		body   string
	}{
		{"whole", []string{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"}, 200, "hello"},
		{"in pieces", []string{"HTTP/1.1 200 OK\r\nContent-Ty", "pe: text/plain\r\n", "Content-Length: 5\r\n\r", "\nhel", "lo"}, 200, "hello"},
		{"larger than the buffer", []string{"HTTP/1.1 200 OK\r\n" + big + "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"}, 200, "hello"},
		{"larger, in pieces", []string{"HTTP/1.1 200 OK\r\n" + big[:3000], big[3000:] + "Content-Type: text/plain\r\n", "Content-Length: 5\r\n\r\nhello"}, 200, "hello"},
		{"LF only", []string{"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\nhello"}, 200, "hello"},
		{"cut", []string{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"}, 502, ""},
		{"cut, larger", []string{"HTTP/1.1 200 OK\r\n" + big}, 502, ""},
		{"nothing", nil, 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := piecesApp(t, tt.pieces)
			for _, slow := range []bool{false, true} {
				g := New(Options{Logger: testLogger(t)})
				g.slow = slow
				g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.test"}, Backends: []string{app}}})
				c := dialFront(t, serveFront(t, g, g))
				w := c.send(t, "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")[0]
				if !strings.HasPrefix(w.status, fmt.Sprintf("HTTP/1.1 %d", tt.status)) {
					t.Fatalf("slow %v: status %q, want %d", slow, w.status, tt.status)
				}
				if tt.status != 200 {
					continue
				}
				if w.body != tt.body {
					t.Errorf("slow %v: body %q, want %q", slow, w.body, tt.body)
				}
				if strings.Contains(tt.pieces[0], "X-Big") && strings.Count(w.String(), "X-Big: ") != 60 {
					t.Errorf("slow %v: %d X-Big fields, want 60", slow, strings.Count(w.String(), "X-Big: "))
				}
			}
		})
	}
}

// piecesApp answers every request with pieces, written apart, then closes
// the connection.
func piecesApp(t *testing.T, pieces []string) string {
	return connApp(t, func(c net.Conn) {
		for i, p := range pieces {
			if i > 0 {
				time.Sleep(5 * time.Millisecond) // most likely a read of its own
			}
			io.WriteString(c, p)
		}
	})
}

// FuzzValidValue: the word-at-a-time check of a field value agrees with
// the byte-by-byte one.
func FuzzValidValue(f *testing.F) {
	for _, s := range []string{"", "text/plain; charset=utf-8", "a\tb\tc\td\te\tf", "0123456\x7f89", "01234567\x01", "caf\xc3\xa9 \xff\xfe\x80 0123456789", "\x1f\x20\x7e\x7f\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validValue(s), validFieldValue(s); got != want {
			t.Fatalf("validValue(%q) = %v, validFieldValue %v", s, got, want)
		}
	})
}
