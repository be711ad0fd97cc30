package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// readFromListener's connections count the bytes handed to their ReadFrom
// as a file, alone or under one *io.LimitedReader: those sendfile sends.
type readFromListener struct {
	net.Listener
	n *atomic.Int64
}

func (l readFromListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &readFromConn{Conn: c, n: l.n}, nil
}

type readFromConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	src := r
	if lr, ok := r.(*io.LimitedReader); ok {
		src = lr.R
	}
	n, err := c.Conn.(io.ReaderFrom).ReadFrom(r)
	if _, ok := src.(*os.File); ok {
		c.n.Add(n)
	}
	return n, err
}

// TestFrontWriterReadFrom: large bodies of declared length and type go to
// the connection's ReadFrom (sendfile for files) after the head; every
// other body goes through Write. The bytes on the wire are the same, and a
// body shorter than declared closes the connection.
func TestFrontWriterReadFrom(t *testing.T) {
	dir := t.TempDir()
	// 2.5 MiB: Guard hands it to the kernel in 1 MiB steps.
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<19/16)
	for name, b := range map[string][]byte{"big.bin": big, "small.txt": big[:1000], "half.bin": big[:len(big)/2]} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile := func(w http.ResponseWriter, name string, declare int, typed bool) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if typed {
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		w.Header().Set("Content-Length", strconv.Itoa(declare))
		// As http.ServeContent does: the ResponseWriter's ReadFrom gets
		// the file under one limit (io.Copy(w, f) would take the file's
		// WriteTo, which hides the file from it).
		io.CopyN(w, f, int64(declare))
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/content": // static files are served so
			f, err := os.Open(filepath.Join(dir, "big.bin"))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			http.ServeContent(w, r, "big.bin", time.Time{}, f)
		case "/big":
			copyFile(w, "big.bin", len(big), true)
		case "/untyped":
			copyFile(w, "big.bin", len(big), false)
		case "/small":
			copyFile(w, "small.txt", 1000, true)
		case "/short":
			copyFile(w, "half.bin", len(big), true)
		case "/undeclared":
			w.Header().Set("Content-Type", "application/octet-stream")
			f, _ := os.Open(filepath.Join(dir, "big.bin"))
			defer f.Close()
			io.Copy(w, f)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var handed atomic.Int64
	g := New(Options{Logger: testLogger(t)})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(g.Front(Guard(readFromListener{ln, &handed}, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}), h,
		FrontOptions{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, Logger: testLogger(t)}))
	t.Cleanup(func() { srv.Close() })

	tests := []struct {
		method, path string
		rng          string // Range
		body         []byte
		handed       int64 // bytes sent as a file (sendfile)
		short        bool  // the body ends early and the connection closes
	}{
		{"GET", "/content", "", big, int64(len(big)), false},
		{"GET", "/content", "bytes=0-1500000", big[:1500001], 1500001, false}, // ServeContent limits the file
		{"GET", "/content", "bytes=1500000-", big[1500000:], int64(len(big) - 1500000), false},
		{"GET", "/big", "", big, int64(len(big)), false},
		{"HEAD", "/big", "", nil, 0, false},
		{"GET", "/untyped", "", big, 0, false}, // sniffed first: through Write
		{"GET", "/small", "", big[:1000], 0, false},
		{"GET", "/undeclared", "", big, 0, false}, // chunked: through Write
		{"GET", "/short", "", big[:len(big)/2], int64(len(big) / 2), true},
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, tt := range tests {
		before := handed.Load()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		rng := ""
		if tt.rng != "" {
			rng = "Range: " + tt.rng + "\r\n"
		}
		io.WriteString(c, tt.method+" "+tt.path+" HTTP/1.1\r\nHost: a.localhost\r\n"+rng+"\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: tt.method})
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		if tt.short != (err != nil) {
			t.Errorf("%s %s: reading the body: %v, want an early end %v", tt.method, tt.path, err, tt.short)
		}
		if !bytes.Equal(body, tt.body) {
			t.Errorf("%s %s %s: body of %d bytes, want %d", tt.method, tt.path, tt.rng, len(body), len(tt.body))
		}
		if got := handed.Load() - before; got != tt.handed {
			t.Errorf("%s %s %s: %d bytes sent as a file, want %d", tt.method, tt.path, tt.rng, got, tt.handed)
		}
		if tt.method == "GET" && resp.ContentLength != int64(len(tt.body)) && !tt.short && tt.path != "/undeclared" {
			t.Errorf("%s %s: Content-Length %d, want %d", tt.method, tt.path, resp.ContentLength, len(tt.body))
		}
		if tt.path == "/untyped" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("/untyped: Content-Type %q, want the sniffed text/plain", resp.Header.Get("Content-Type"))
		}
		if tt.short {
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("%s: the connection stays open after a short body (%v)", tt.path, err)
			}
		}
	}
}
