package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fetch sends a request for app through the gateway and returns the
// status, body and X-Cache.
func (e *engine) fetch(method, app, path string) (int, string, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, "http://"+e.httpAddr+path, nil)
	req.Host = app + ".localhost"
	resp, err := httpClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header.Get("X-Cache")
}

// TestGatewayCache deploys examples/cache-demo and checks, through the real
// gateway: manifest rules, app headers, coalescing, purges from the CLI and
// from the app with its own token, and static files.
func TestGatewayCache(t *testing.T) {
	e := startEngine(t)
	dir := example(t, "cache-demo")
	e.must(dir, "deploy")
	const app = "cache-demo"

	expect := func(what, path, wantCache, wantBody string) {
		t.Helper()
		code, body, xc := e.fetch("GET", app, path)
		if code != 200 || xc != wantCache || (wantBody != "" && body != wantBody) {
			t.Fatalf("%s: GET %s = %d %q X-Cache %q, want %q %q", what, path, code, body, xc, wantCache, wantBody)
		}
	}

	// A manifest rule caches a path the app sends no headers for.
	_, first, _ := e.fetch("GET", app, "/comments/count")
	expect("rule", "/comments/count", "HIT", first)
	// A rule keeps another out of the cache despite max-age.
	expect("never cached", "/live", "BYPASS", "")
	expect("never cached", "/live", "BYPASS", "")

	// 100 concurrent misses on one key: one request reaches the app
	// (its counter moves by one).
	var wg sync.WaitGroup
	bodies := make([]string, 100)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, bodies[i], _ = e.fetch("GET", app, "/posts/7")
		}()
	}
	wg.Wait()
	for i, b := range bodies {
		if b != bodies[0] || !strings.HasPrefix(b, "post 7 render") {
			t.Fatalf("client %d got %q, client 0 got %q", i, b, bodies[0])
		}
	}
	expect("stored", "/posts/7", "HIT", bodies[0])

	// The CLI purges by URL.
	out := e.must(dir, "cache", "purge", "/comments/count")
	if !strings.Contains(out, "Purged 1") {
		t.Errorf("pier cache purge: %q", out)
	}
	if _, body, xc := e.fetch("GET", app, "/comments/count"); xc != "MISS" || body == first {
		t.Errorf("after purge: %q X-Cache %q, want a new count", body, xc)
	}

	// The app purges a tag with its own token.
	if code, body, _ := e.fetch("POST", app, "/write/7"); code != 200 || body != "purged 1" {
		t.Fatalf("app purge: %d %q", code, body)
	}
	if _, body, xc := e.fetch("GET", app, "/posts/7"); xc != "MISS" || body == bodies[0] {
		t.Errorf("after the app's purge: %q X-Cache %q", body, xc)
	}

	// --prefix
	e.fetch("GET", app, "/posts/8")
	expect("stored", "/posts/8", "HIT", "")
	e.must(dir, "cache", "purge", "--prefix", "/posts/")
	expect("prefix purge", "/posts/8", "MISS", "")

	// Static files from the manifest, served by the gateway.
	code, body, _ := e.fetch("GET", app, "/static/hello.txt")
	if code != 200 || body != "hello from the gateway\n" {
		t.Errorf("static file: %d %q", code, body)
	}
	if code, _, _ := e.fetch("GET", app, "/static/../app.py"); code == 200 {
		t.Errorf("path traversal served app.py")
	}
}

// TestSmuggling sends ambiguous requests on raw connections: each gets a
// 400 and a closed connection, and nothing reaches the app.
func TestSmuggling(t *testing.T) {
	e := startEngine(t)
	e.must(example(t, "cache-demo"), "deploy")
	cases := map[string]string{
		"CL and TE":      "POST /write/1 HTTP/1.1\r\nHost: cache-demo.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"two CL":         "POST /write/1 HTTP/1.1\r\nHost: cache-demo.localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"bad chunk":      "POST /write/1 HTTP/1.1\r\nHost: cache-demo.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
		"TE not chunked": "POST /write/1 HTTP/1.1\r\nHost: cache-demo.localhost\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", e.httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, raw)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest && !(name == "TE not chunked" && resp.StatusCode == http.StatusNotImplemented) {
				t.Errorf("status %d, want 400 (501 for an unknown transfer coding)", resp.StatusCode)
			}
			// The connection is closed: a second request gets nothing.
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: cache-demo.localhost\r\n\r\n")
			if _, err := http.ReadResponse(br, nil); err == nil {
				t.Errorf("the connection stayed open after the 400")
			}
		})
	}
}
