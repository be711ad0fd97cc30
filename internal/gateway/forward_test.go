package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestParseResponseHead: the forwarder reads what apps send, and refuses
// (502) what it cannot frame for sure.
func TestParseResponseHead(t *testing.T) {
	tests := []struct {
		name, head string
		method     string
		ok         bool
		status     int
		length     int64
		chunked    bool
		keep       bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", true, 200, 5, false, true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", true, 200, -1, true, true},
		{"chunked wins over length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", true, 200, -1, true, true},
		{"until close", "HTTP/1.1 200 OK\r\n\r\n", "GET", true, 200, -1, false, false},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", "GET", true, 200, 1, false, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", true, 200, 1, false, false},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", "GET", true, 200, 1, false, true},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", true, 200, 0, false, true},
		{"304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "GET", true, 304, 0, false, true},
		{"no reason", "HTTP/1.1 204\r\n\r\n", "GET", true, 204, 0, false, true},
		{"LF only", "HTTP/1.1 200 OK\nContent-Length: 2\n\n", "GET", true, 200, 2, false, true},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "GET", false, 0, 0, false, false},
		{"same length twice", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", "GET", true, 200, 2, false, true},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "GET", false, 0, 0, false, false},
		{"gzip coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", false, 0, 0, false, false},
		{"bad name", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "GET", false, 0, 0, false, false},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", "GET", false, 0, 0, false, false},
		{"HTTP/2", "HTTP/2 200 OK\r\n\r\n", "GET", false, 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &respHead{}
			h.reset()
			err := parseResponseHead(h, tt.head, tt.method)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if h.status != tt.status || h.length != tt.length || h.chunked != tt.chunked || h.keepAlive != tt.keep {
				t.Errorf("got status %d length %d chunked %v keep %v, want %d %d %v %v",
					h.status, h.length, h.chunked, h.keepAlive, tt.status, tt.length, tt.chunked, tt.keep)
			}
		})
	}
}

// FuzzParseResponseHead: a response head the forwarder accepts is one
// net/http reads too, with the same status, framing and end-to-end fields.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nConnection: keep-alive, X-Hop\r\nX-Hop: a\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		i := bytes.Index(data, []byte("\n\r\n"))
		j := bytes.Index(data, []byte("\n\n"))
		switch {
		case i >= 0 && (j < 0 || i < j):
			data = data[:i+3]
		case j >= 0:
			data = data[:j+2]
		default:
			return
		}
		h := &respHead{}
		h.reset()
		if parseResponseHead(h, string(data), "GET") != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("forwarder accepts %q, net/http refuses it: %v", data, err)
		}
		if resp.StatusCode != h.status {
			t.Fatalf("%q: status %d, net/http %d", data, h.status, resp.StatusCode)
		}
		chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[len(resp.TransferEncoding)-1] == "chunked"
		if h.status >= 200 && h.status != 204 && h.status != 304 && (chunked != h.chunked || !chunked && resp.ContentLength != h.length) {
			t.Fatalf("%q: length %d chunked %v, net/http %d %v", data, h.length, h.chunked, resp.ContentLength, chunked)
		}
		for _, fl := range h.fields {
			if fl.key == "Content-Length" || fl.key == "Trailer" {
				continue
			}
			found := false
			for _, v := range resp.Header[fl.key] {
				found = found || strings.TrimSpace(v) == fl.value
			}
			if !found {
				t.Fatalf("%q: field %s: %q not in net/http's %q", data, fl.key, fl.value, resp.Header[fl.key])
			}
		}
	})
}

// TestLargeRequestHead: a request head larger than the forwarder's 4 KiB
// write buffer (net/http serves it) reaches the app whole.
func TestLargeRequestHead(t *testing.T) {
	app := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %d %s", len(r.Header["X-Big"]), len(r.Header.Get("X-Long")), r.Header.Get("X-Last"))
	}))
	_, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.test"}, Backends: []string{app}})
	req, err := http.NewRequest("GET", base+"/big", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app.test"
	for i := 0; i < 100; i++ {
		req.Header.Add("X-Big", strings.Repeat("v", 100))
	}
	req.Header.Set("X-Long", strings.Repeat("l", 9000))
	req.Header.Set("X-Last", "last")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "100 9000 last" {
		t.Errorf("app saw %q, want %q", body, "100 9000 last")
	}
}

// TestWriteRequestHead: the request line and header the app gets, the
// target as URL.RequestURI spells it, with and without a query, and no
// allocation for a request as Front parses it (unless its path is escaped).
func TestWriteRequestHead(t *testing.T) {
	for _, target := range []string{"/hello", "/search?q=pier&page=2", "/a/b?q=1&r=%20", "/a!b?", "/%41%2f?x", "/%41", "/sp%20ace", "/?"} {
		fc := &frontConn{f: &front{}, remote: "192.0.2.1:1234"}
		r := fc.parseRequest([]byte("GET " + target + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: id1\r\n\r\n"))
		if r == nil {
			t.Fatalf("%s: not parsed", target)
		}
		var out bytes.Buffer
		bw := bufio.NewWriterSize(&out, 4096)
		writeRequestHead(bw, r, "127.0.0.1:9")
		bw.Flush()
		want := "GET " + r.URL.RequestURI() + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: id1\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Host: app.test\r\nX-Forwarded-Proto: http\r\n\r\n"
		if out.String() != want {
			t.Errorf("%s: wrote %q, want %q", target, out.String(), want)
		}
		allocs := testing.AllocsPerRun(100, func() {
			writeRequestHead(bw, r, "127.0.0.1:9")
			bw.Reset(io.Discard)
		})
		if allocs != 0 && !strings.Contains(target, "%") { // escaped paths: EscapedPath's own
			t.Errorf("%s: %v allocations per request head, want 0", target, allocs)
		}
	}
}
