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
