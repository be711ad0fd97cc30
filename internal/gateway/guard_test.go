package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"
)

// echoBackend answers "METHOD PATH len=N body" and reports each request on
// the returned channel.
func echoBackend(t *testing.T) (string, chan string) {
	t.Helper()
	seen := make(chan string, 64)
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := fmt.Sprintf("%s %s len=%d %s", r.Method, r.URL.Path, r.ContentLength, b)
		seen <- s
		io.WriteString(w, s)
	}))
	return addr, seen
}

// rawConn dials addr and returns the connection with a reader of its
// answers; both are closed by the test's cleanup.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readAnswer reads one response from br: its status, body and whether the
// server said it closes the connection.
func readAnswer(t *testing.T, br *bufio.Reader) (int, string, bool) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading an answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), resp.Close
}

// TestGuardAmbiguous sends requests with both Content-Length and
// Transfer-Encoding, alone and after a good request on the same
// connection: each is answered 400, the connection is closed, and the app
// never sees it.
func TestGuardAmbiguous(t *testing.T) {
	app, seen := echoBackend(t)
	_, base, _ := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}})
	addr := strings.TrimPrefix(base, "http://")

	const host = "Host: app.localhost\r\n"
	bad := map[string]string{
		"CL then TE":  "POST /x HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"TE then CL":  "POST /x HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
		"lower case":  "POST /x HTTP/1.1\r\n" + host + "content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
		"bare LF":     "POST /x HTTP/1.1\n" + host + "Content-Length: 4\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
		"TE identity": "POST /x HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: identity\r\n\r\nabcd",
	}
	for name, raw := range bad {
		for _, split := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/split=%v", name, split), func(t *testing.T) {
				c, br := rawConn(t, addr)
				// A good request first, on the same connection and in
				// the same write: the refusal must not touch it.
				good := "POST /ok HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhi"
				if split {
					for _, b := range []byte(good + raw) { // one byte at a time
						c.Write([]byte{b})
					}
				} else {
					io.WriteString(c, good+raw)
				}
				if code, body, _ := readAnswer(t, br); code != 200 || body != "POST /ok len=2 hi" {
					t.Fatalf("good request: %d %q", code, body)
				}
				if got := <-seen; got != "POST /ok len=2 hi" {
					t.Fatalf("app saw %q", got)
				}
				code, _, closing := readAnswer(t, br)
				if code != http.StatusBadRequest || !closing {
					t.Errorf("ambiguous request: status %d, close %v; want 400 and a closed connection", code, closing)
				}
				fmt.Fprintf(c, "GET /after HTTP/1.1\r\n%s\r\n", host)
				if _, err := http.ReadResponse(br, nil); err == nil {
					t.Errorf("the connection stayed open after the 400")
				}
				select {
				case got := <-seen:
					t.Errorf("the ambiguous request reached the app: %q", got)
				default:
				}
			})
		}
	}
}

// TestGuardKeepAlive sends a mix of requests on one connection, in one
// write and byte by byte: bodies with a Content-Length, chunked bodies with
// extensions and trailers, and bodies that contain what looks like request
// heads. Each reaches the app intact.
func TestGuardKeepAlive(t *testing.T) {
	app, seen := echoBackend(t)
	_, base, _ := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}})
	addr := strings.TrimPrefix(base, "http://")
	const host = "Host: app.localhost\r\n"
	fake := "GET /smuggled HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	reqs := []struct{ raw, want string }{
		{"GET /a HTTP/1.1\r\n" + host + "\r\n", "GET /a len=0 "},
		{"POST /b HTTP/1.1\r\n" + host + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(fake)) + fake, "POST /b len=" + fmt.Sprint(len(fake)) + " " + fake},
		{"POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", "POST /c len=13 abc0123456789"},
		{"POST /d HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(fake), fake), "POST /d len=" + fmt.Sprint(len(fake)) + " " + fake},
		{"GET /e HTTP/1.1\r\n" + host + "\r\n", "GET /e len=0 "},
	}
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split=%v", split), func(t *testing.T) {
			c, br := rawConn(t, addr)
			var all strings.Builder
			for _, r := range reqs {
				all.WriteString(r.raw)
			}
			if split {
				for _, b := range []byte(all.String()) {
					c.Write([]byte{b})
				}
			} else {
				io.WriteString(c, all.String())
			}
			for _, r := range reqs {
				code, body, _ := readAnswer(t, br)
				if code != 200 || body != r.want {
					t.Fatalf("got %d %q, want 200 %q", code, body, r.want)
				}
				if got := <-seen; got != r.want {
					t.Fatalf("app saw %q, want %q", got, r.want)
				}
			}
		})
	}
}

// TestGuardSlowBody stops sending a body halfway: the gateway answers 408
// and closes the connection once BodyTimeout passes, for a body with a
// Content-Length (streamed to the app) and a chunked one (buffered).
func TestGuardSlowBody(t *testing.T) {
	app, _ := echoBackend(t)
	_, base, _ := newTestGatewayWith(t, Options{Logger: testLogger(t)}, GuardOptions{BodyTimeout: 100 * time.Millisecond},
		Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}})
	addr := strings.TrimPrefix(base, "http://")
	for name, raw := range map[string]string{
		"length":  "POST /x HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 10\r\n\r\nabc",
		"chunked": "POST /x HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, br := rawConn(t, addr)
			io.WriteString(c, raw)
			code, _, closing := readAnswer(t, br)
			if code != http.StatusRequestTimeout || !closing {
				t.Errorf("status %d, close %v; want 408 and a closed connection", code, closing)
			}
		})
	}
}

// TestGuardSendTimeout checks that a write to a client that does not read
// fails once SendTimeout passes, and that deadlines set by the
// connection's user still apply.
func TestGuardSendTimeout(t *testing.T) {
	client, server := net.Pipe() // writes block until the other side reads
	defer client.Close()
	g := &guardConn{Conn: server, sendTimeout: 50 * time.Millisecond}
	defer g.Close()
	if _, err := g.Write([]byte("nobody reads this")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write to a client that does not read: %v, want a deadline error", err)
	}
	g.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := g.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write after a past deadline: %v, want a deadline error", err)
	}
	g.SetWriteDeadline(time.Time{})
	go io.Copy(io.Discard, client)
	if _, err := g.Write([]byte("read this")); err != nil {
		t.Errorf("write to a reading client: %v", err)
	}
}

func TestChunkSize(t *testing.T) {
	tests := []struct {
		in   string
		n    int64
		good bool
	}{
		{"0", 0, true}, {"a", 10, true}, {"FF", 255, true}, {"1f;name=v", 31, true}, {" 3 ", 3, true},
		{"", 0, false}, {"zz", 0, false}, {"-1", 0, false}, {"1234567890abcdef", 0, false},
	}
	for _, tt := range tests {
		n, ok := chunkSize([]byte(tt.in))
		if n != tt.n || ok != tt.good {
			t.Errorf("chunkSize(%q) = %d, %v; want %d, %v", tt.in, n, ok, tt.n, tt.good)
		}
	}
}

// BenchmarkGuardScan: what the Guard's following of a GET head costs, for
// wrk's head (a Host line) and a browser-like one.
func BenchmarkGuardScan(b *testing.B) {
	for _, tt := range []struct{ name, head string }{
		{"wrk", "GET /hello HTTP/1.1\r\nHost: benchapp.localhost\r\n\r\n"},
		{"browser", "GET /hello HTTP/1.1\r\nHost: app.localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
			"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n" +
			"Accept-Encoding: gzip, deflate, br, zstd\r\nConnection: keep-alive\r\nCookie: session=0123456789abcdef\r\n" +
			"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Site: none\r\n" +
			"Priority: u=0, i\r\n\r\n"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			head := []byte(tt.head)
			var c guardConn
			for b.Loop() {
				if k := c.scan(head); k != len(head) || c.state != inHead {
					b.Fatalf("scanned %d of %d bytes, state %d", k, len(head), c.state)
				}
			}
		})
	}
}

// TestGuardNameLetters: headLine looks at a header line only when its first
// byte folds to c, t or u, which holds for every spelling bytes.EqualFold
// matches to the names it follows only if no rune but those letters' two
// cases folds to them.
func TestGuardNameLetters(t *testing.T) {
	for _, name := range []string{"Content-Length", "Transfer-Encoding", "Upgrade"} {
		first := rune(name[0])
		for r := unicode.SimpleFold(first); r != first; r = unicode.SimpleFold(r) {
			if r > unicode.MaxASCII {
				t.Errorf("%U folds to %q, the first letter of %s", r, first, name)
			}
		}
	}
}

// FuzzGuardLine: a header line goes through headLine's first-letter check
// to the same outcome as straight to headField, the unchecked reading:
// the same framing state and the same line bytes (spoiled or not).
func FuzzGuardLine(f *testing.F) {
	for _, s := range []string{"Host: a", "Content-Length: 5", "transfer-encoding: chunked", "UPGRADE: h2c",
		"Tranſfer-Encoding: chunked", "Cookie: a=b", " Content-Length: 1", "content-length 3", "T: x", "u:"} {
		f.Add(s, false, false)
		f.Add(s, true, false)
		f.Add(s, false, true)
	}
	f.Fuzz(func(t *testing.T, line string, cl, te bool) {
		if line == "" || strings.ContainsAny(line, "\r\n") {
			return
		}
		newConn := func() *guardConn {
			c := &guardConn{state: inHead, headLines: 1, cl: cl, te: te}
			if cl {
				c.length = 7
			}
			return c
		}
		a, b := newConn(), newConn()
		la, lb := []byte(line+"\r\n"), []byte(line+"\r\n")
		a.headLine(la, la[:len(line)])
		b.headLines++
		b.headField(lb, lb[:len(line)])
		if string(la) != string(lb) {
			t.Errorf("line %q: %q, unchecked %q", line, la, lb)
		}
		if a.state != b.state || a.headLines != b.headLines || a.cl != b.cl || a.te != b.te ||
			a.chunked != b.chunked || a.upgrade != b.upgrade || a.length != b.length {
			t.Errorf("line %q: state %d, %d lines, cl %v te %v chunked %v upgrade %v length %d; unchecked %d, %d lines, cl %v te %v chunked %v upgrade %v length %d",
				line, a.state, a.headLines, a.cl, a.te, a.chunked, a.upgrade, a.length,
				b.state, b.headLines, b.cl, b.te, b.chunked, b.upgrade, b.length)
		}
	})
}
