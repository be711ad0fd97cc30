package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{
		{App: "blog", Hosts: []string{"blog.localhost", "blog.example.com"}},
		{App: "blogs", Hosts: []string{"*.blogs.example.com"}},
		{App: "deep", Hosts: []string{"*.x.blogs.example.com"}},
		{App: "tld", Hosts: []string{"*.test"}},
		{App: "upper", Hosts: []string{"Shop.Example.COM."}},
		{App: "late", Hosts: []string{"blog.localhost", "late.localhost"}}, // blog.localhost is blog's
		{App: "v6", Hosts: []string{"::1"}},
	})
	tests := []struct {
		host string
		want string // "" = no app
	}{
		{"blog.localhost", "blog"},
		{"blog.localhost:8080", "blog"},
		{"BLOG.LocalHost", "blog"},
		{"blog.example.com.", "blog"},
		{"Blog.Example.Com.:443", "blog"},
		{"a.blogs.example.com", "blogs"},
		{"a.b.blogs.example.com", "blogs"},
		{"A.Blogs.Example.Com:80", "blogs"},
		{"a.x.blogs.example.com", "deep"},
		{"x.blogs.example.com", "blogs"},
		{"blogs.example.com", ""},
		{"example.com", ""},
		{"anything.test", "tld"},
		{"test", ""},
		{"shop.example.com", "upper"},
		{"late.localhost", "late"},
		{"[::1]:8080", "v6"},
		{"unknown.example.org", ""},
		{"", ""},
		{".", ""},
	}
	for _, tt := range tests {
		got, ok := g.Lookup(tt.host)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tt.host, got, ok, tt.want)
		}
	}
}

func TestRoutingOverHTTP(t *testing.T) {
	blog := namedBackend(t, "blog")
	_, base, c := newTestGateway(t,
		Route{App: "blog", Hosts: []string{"blog.localhost"}, Backends: []string{blog}},
		Route{App: "sites", Hosts: []string{"*.sites.localhost"}, Backends: []string{blog}},
		Route{App: "idle", Hosts: []string{"idle.localhost"}},
	)
	tests := []struct {
		host       string
		wantStatus int
		wantBody   string
	}{
		{"blog.localhost", 200, "blog"},
		{"BLOG.localhost:1234", 200, "blog"},
		{"a.sites.localhost", 200, "blog"},
		{"nope.localhost", 404, `pier: no app is served at host "nope.localhost"` + "\n"},
		{"Nope.Localhost:99", 404, `pier: no app is served at host "nope.localhost"` + "\n"},
		{"idle.localhost", 503, `pier: app "idle" has no running web instances` + "\n"},
	}
	for _, tt := range tests {
		status, body, resp := get(t, c, base, "GET", tt.host, "/", nil)
		if status != tt.wantStatus || body != tt.wantBody {
			t.Errorf("GET %s: got %d %q, want %d %q", tt.host, status, body, tt.wantStatus, tt.wantBody)
		}
		if status == 503 && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("GET %s: Retry-After = %q, want 1", tt.host, resp.Header.Get("Retry-After"))
		}
		if status >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("GET %s: Content-Type = %q, want text/plain", tt.host, resp.Header.Get("Content-Type"))
		}
	}
}

func TestStaticDir(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "public")
	files := map[string]string{
		"public/index.html":       "home",
		"public/file.txt":         "file",
		"public/sub/index.html":   "sub home",
		"public/nolist/other.txt": "other",
		"secret.txt":              "SECRET",
		"outside/secret.txt":      "SECRET",
	}
	for name, content := range files {
		p := filepath.Join(top, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(top, "outside"), filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(top, "secret.txt"), filepath.Join(dir, "linkfile")); err != nil {
		t.Fatal(err)
	}

	_, base, c := newTestGateway(t, Route{App: "site", Hosts: []string{"site.localhost"}, StaticDir: dir})
	addr := strings.TrimPrefix(base, "http://")

	served := []struct {
		target, want string
	}{
		{"/", "home"},
		{"/file.txt", "file"},
		{"/sub/", "sub home"},
		{"/nolist/other.txt", "other"},
	}
	for _, tt := range served {
		status, body := rawGet(t, addr, "site.localhost", tt.target)
		if status != 200 || body != tt.want {
			t.Errorf("GET %s: got %d %q, want 200 %q", tt.target, status, body, tt.want)
		}
	}

	refused := []string{
		"/nolist/", // no index.html: no listing
		"/../secret.txt",
		"/../../../../etc/passwd",
		"/%2e%2e/secret.txt",
		"/%2E%2E/secret.txt",
		"/..%2fsecret.txt",
		"/..%2Fsecret.txt",
		"/sub/..%2f..%2fsecret.txt",
		"/%2e%2e%2fsecret.txt",
		"/sub/%2e%2e/%2e%2e/secret.txt",
		"/..\\secret.txt",
		"/linkdir/secret.txt",
		"/linkfile",
	}
	for _, target := range refused {
		status, body := rawGet(t, addr, "site.localhost", target)
		if status == 200 || strings.Contains(body, "SECRET") || strings.Contains(body, "other.txt") {
			t.Errorf("GET %s: got %d %q, want it refused", target, status, body)
		}
		if status >= 500 {
			t.Errorf("GET %s: got %d, want a 4xx", target, status)
		}
	}

	if status, _, _ := get(t, c, base, "POST", "site.localhost", "/file.txt", strings.NewReader("x")); status != http.StatusMethodNotAllowed {
		t.Errorf("POST: got %d, want 405", status)
	}
}

func TestStaticDirMissing(t *testing.T) {
	_, base, c := newTestGateway(t, Route{App: "site", Hosts: []string{"site.localhost"}, StaticDir: filepath.Join(t.TempDir(), "nope")})
	if status, _, _ := get(t, c, base, "GET", "site.localhost", "/", nil); status != http.StatusServiceUnavailable {
		t.Errorf("got %d, want 503", status)
	}
}
