package gateway

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"pier/internal/httpcache"
)

// writeFiles writes name -> content under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStaticMounts(t *testing.T) {
	dir := t.TempDir()
	css := strings.Repeat("body { color: red; }\n", 100)
	writeFiles(t, dir, map[string]string{
		"public/app.css":        css,
		"public/logo.png":       "\x89PNG0123456789",
		"public/big.js":         strings.Repeat("let x = 1;\n", 100),
		"public/big.js.gz":      "precompressed-gz",
		"public/big.js.br":      "precompressed-br",
		"public/sub/index.html": "sub index",
		"root/robots.txt":       "User-agent: *",
	})
	app := namedBackend(t, "app")
	_, base, c := newTestGateway(t, Route{
		App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app},
		Static: map[string]string{"/static": filepath.Join(dir, "public"), "/": filepath.Join(dir, "root")},
	})

	// Served by the gateway, with an ETag and a Content-Type.
	status, body, resp := get(t, c, base, "GET", "app.localhost", "/static/logo.png", nil)
	etag := resp.Header.Get("ETag")
	if status != 200 || body != "\x89PNG0123456789" || etag == "" || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("logo: %d %q etag %q type %q", status, body, etag, resp.Header.Get("Content-Type"))
	}
	req, _ := http.NewRequest("GET", base+"/static/logo.png", nil)
	req.Host = "app.localhost"
	req.Header.Set("If-None-Match", etag)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %v %v, want 304", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	req.Header.Del("If-None-Match")
	req.Header.Set("Range", "bytes=4-7")
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || string(b) != "0123" {
			t.Errorf("Range: %d %q, want 206 \"0123\"", resp.StatusCode, b)
		}
	}

	// Missing under /static: 404, not the app. Missing under "/": the app.
	if status, body, _ := get(t, c, base, "GET", "app.localhost", "/static/nope.css", nil); status != 404 || body == "app" {
		t.Errorf("missing static file: %d %q, want 404", status, body)
	}
	if _, body, _ := get(t, c, base, "GET", "app.localhost", "/robots.txt", nil); body != "User-agent: *" {
		t.Errorf("/robots.txt from the root mount: %q", body)
	}
	if _, body, _ := get(t, c, base, "GET", "app.localhost", "/anything", nil); body != "app" {
		t.Errorf("/anything: %q, want the app", body)
	}
	if _, body, _ := get(t, c, base, "POST", "app.localhost", "/robots.txt", strings.NewReader("x")); body != "app" {
		t.Errorf("POST under the root mount: %q, want the app", body)
	}
	if _, body, _ := get(t, c, base, "GET", "app.localhost", "/static/sub/", nil); body != "sub index" {
		t.Errorf("directory index: %q", body)
	}
	if _, body, _ := get(t, c, base, "GET", "app.localhost", "/staticx", nil); body != "app" {
		t.Errorf("/staticx is not under /static: %q", body)
	}

	fetch := func(path, ae string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Host = "app.localhost"
		req.Header.Set("Accept-Encoding", ae)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	// Precompressed copies.
	if resp, b := fetch("/static/big.js", "gzip, br"); resp.Header.Get("Content-Encoding") != "br" || string(b) != "precompressed-br" {
		t.Errorf("br precompressed: %q %q", resp.Header.Get("Content-Encoding"), b)
	}
	if resp, b := fetch("/static/big.js", "gzip"); resp.Header.Get("Content-Encoding") != "gzip" || string(b) != "precompressed-gz" {
		t.Errorf("gz precompressed: %q %q", resp.Header.Get("Content-Encoding"), b)
	}
	// On the fly.
	resp, b := fetch("/static/app.css", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("gzip on the fly: encoding %q vary %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := io.ReadAll(zr); string(plain) != css {
		t.Errorf("gunzipped body differs")
	}
	resp, b = fetch("/static/app.css", "br;q=1, gzip;q=0.5")
	if resp.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("brotli on the fly: encoding %q", resp.Header.Get("Content-Encoding"))
	}
	if plain, _ := io.ReadAll(brotli.NewReader(bytes.NewReader(b))); string(plain) != css {
		t.Errorf("unbrotlied body differs")
	}
	if resp, b := fetch("/static/app.css", "gzip;q=0"); resp.Header.Get("Content-Encoding") != "" || string(b) != css {
		t.Errorf("q=0 refuses gzip: got encoding %q", resp.Header.Get("Content-Encoding"))
	}
}

// FuzzStaticPath sends arbitrary paths to a static mount: nothing outside
// the directory is ever served, and no path makes the gateway fail.
func FuzzStaticPath(f *testing.F) {
	for _, s := range []string{"/", "/file.txt", "/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt",
		"/..\\secret.txt", "/link/secret.txt", "//secret.txt", "/.", "/\x00", "/sub/./../file.txt"} {
		f.Add(s)
	}
	top := f.TempDir()
	writeFilesF(f, top, map[string]string{"public/file.txt": "file", "public/sub/index.html": "sub", "secret.txt": "SECRET"})
	os.Symlink(top, filepath.Join(top, "public", "link"))
	g := New(Options{Logger: slog.New(slog.DiscardHandler)})
	g.SetRoutes([]Route{{App: "site", Hosts: []string{"site.localhost"}, StaticDir: filepath.Join(top, "public")}})
	f.Fuzz(func(t *testing.T, p string) {
		req := httptest.NewRequest("GET", "http://site.localhost/", nil)
		req.URL.Path = p
		req.URL.RawPath = ""
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if strings.Contains(w.Body.String(), "SECRET") {
			t.Fatalf("path %q served a file outside the directory", p)
		}
		if w.Code >= 500 {
			t.Fatalf("path %q: status %d", p, w.Code)
		}
	})
}

func writeFilesF(f *testing.F, dir string, files map[string]string) {
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}

func TestCacheInFront(t *testing.T) {
	hits := 0
	app := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "home")
		io.WriteString(w, "page")
	}))
	cache := httpcache.New(httpcache.Options{Logger: testLogger(t)})
	g := New(Options{Logger: testLogger(t), Cache: testCache{cache}})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app},
		Cache: []CacheRule{{Path: "/live", Cache: false}}}})
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	c := srv.Client()
	for i, want := range []string{"MISS", "HIT", "HIT"} {
		_, body, resp := get(t, c, srv.URL, "GET", "app.localhost", "/", nil)
		if got := resp.Header.Get("X-Cache"); got != want || body != "page" || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("request %d: X-Cache %q body %q id %q, want %s", i, got, body, resp.Header.Get("X-Request-Id"), want)
		}
	}
	if _, _, resp := get(t, c, srv.URL, "GET", "app.localhost", "/live", nil); resp.Header.Get("X-Cache") != "BYPASS" {
		t.Errorf("rule cache: false: X-Cache %q", resp.Header.Get("X-Cache"))
	}
	if n := cache.Purge(httpcache.Purge{App: "app", Tags: []string{"home"}}); n != 1 {
		t.Errorf("purge by tag dropped %d keys, want 1", n)
	}
	if _, _, resp := get(t, c, srv.URL, "GET", "app.localhost", "/", nil); resp.Header.Get("X-Cache") != "MISS" {
		t.Errorf("after purge: X-Cache %q", resp.Header.Get("X-Cache"))
	}
	if hits != 3 {
		t.Errorf("app answered %d requests, want 3", hits)
	}
}
