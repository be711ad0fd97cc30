package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bigApp answers /big with 256 KiB (the hex SHA-256 of 0, 1, 2, ...),
// cacheable for five minutes, and /hits with how many times it answered
// /big.
const bigApp = `import hashlib, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIG = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() for i in range(4096))
hits = 0

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global hits
        if self.path == "/big":
            hits += 1
            body, cc = BIG, "max-age=300"
        else:
            body, cc = str(hits).encode(), "no-store"
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Cache-Control", cc)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`

// TestCacheDisk: with pier up --cache-disk, a large cacheable body is
// stored as a file in the directory and served from it (HIT, the same
// bytes, Range); stopping the engine removes the file, and a start finds
// no stale body to trust.
func TestCacheDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bodies")
	e := startEngine(t, "--cache-disk", dir, "--cache-disk-min", "1KiB", "--cache-disk-size", "64M")
	app := writeApp(t, map[string]string{
		"pier.yaml": "name: big\nprocesses:\n  web: python3 app.py\n",
		"app.py":    bigApp,
	})
	e.must(app, "deploy")

	var want strings.Builder
	for i := range 4096 {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		want.WriteString(hex.EncodeToString(sum[:]))
	}
	get := func(rng string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+e.httpAddr+"/big", nil)
		req.Host = "big.localhost"
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b), resp.Header.Get("X-Cache")
	}
	check := func(what string, wantCache string) {
		t.Helper()
		code, body, xc := get("")
		if code != 200 || xc != wantCache || body != want.String() {
			t.Fatalf("%s: %d X-Cache %q, %d bytes (same: %v); want 200 %s and the app's %d bytes",
				what, code, xc, len(body), body == want.String(), wantCache, want.Len())
		}
	}
	bodies := func() map[string]int64 {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, en := range entries {
			if strings.HasSuffix(en.Name(), ".body") {
				if fi, err := en.Info(); err == nil {
					out[en.Name()] = fi.Size()
				}
			}
		}
		return out
	}

	check("first", "MISS")
	waitFor(t, 10*time.Second, "the body file", func() bool { return len(bodies()) == 1 })
	for name, size := range bodies() {
		if size != int64(want.Len()) {
			t.Errorf("%s: %d bytes, want %d", name, size, want.Len())
		}
	}
	check("second", "HIT")
	check("third", "HIT")
	if code, body, xc := get("bytes=1000-1999"); code != http.StatusPartialContent || xc != "HIT" || body != want.String()[1000:2000] {
		t.Errorf("Range: %d X-Cache %q %d bytes, want 206 HIT bytes 1000-1999", code, xc, len(body))
	}
	if _, hits := e.get("big", "/hits"); hits != "1" {
		t.Errorf("the app answered /big %s times, want 1", hits)
	}

	e.must(app, "cache", "purge", "/big")
	if n := len(bodies()); n != 0 {
		t.Errorf("%d body files after the purge", n)
	}
	check("after the purge", "MISS")
	waitFor(t, 10*time.Second, "the body file again", func() bool { return len(bodies()) == 1 })

	// A clean stop leaves nothing; a start after a crash does not trust
	// what it finds.
	e.stop()
	if n := len(bodies()); n != 0 {
		t.Errorf("%d body files after the engine stopped", n)
	}
	stale := filepath.Join(dir, "00112233445566778899aabb-1.body")
	if err := os.WriteFile(stale, []byte("not the body"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.start()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a body file of an earlier run survived the start: %v", err)
	}
	waitFor(t, 30*time.Second, "the app back", func() bool { code, _ := e.get("big", "/hits"); return code == 200 })
	check("after the restart", "MISS")
	check("after the restart", "HIT")
}
