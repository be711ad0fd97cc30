package httpcache

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHitKey: hitKey builds keyFor's key, on the stack or not.
func TestHitKey(t *testing.T) {
	long := "/" + string(make([]byte, 300))
	for _, tt := range []struct{ host, target string }{
		{"app.localhost", "/"},
		{"APP.Localhost:8080", "/a?b=c"},
		{"[::1]:80", "/x"},
		{"[::1]", "/x"},
		{"ÄPP.example", "/"},
		{"app.localhost", long},
		{"", "/"},
	} {
		var buf [256]byte
		got := hitKey(buf[:0], "app", tt.host, tt.target)
		want, _, _ := keyFor("app", tt.host, tt.target, false)
		if got != want {
			t.Errorf("hitKey(%q, %q) = %q, want %q", tt.host, tt.target, got, want)
		}
	}
}

func FuzzHitKey(f *testing.F) {
	f.Add("APP.localhost:8080", "/a?b=c")
	f.Add("[::1]:80", "/")
	f.Add("ÄPP", "/")
	f.Fuzz(func(t *testing.T, host, target string) {
		var buf [256]byte
		got := hitKey(buf[:0], "app", host, target)
		if want, _, _ := keyFor("app", host, target, false); got != want {
			t.Fatalf("hitKey(%q, %q) = %q, want %q", host, target, got, want)
		}
	})
}

// TestAppendHit: a stored response is answered from bytes, with no
// allocation, and only when ServeHTTP would answer it with a plain HIT.
func TestAppendHit(t *testing.T) {
	o := newOrigin(t, Options{}, []Rule{{Path: "/never", Cache: false}}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"t"`)
		io.WriteString(w, "body of "+r.URL.Path)
	})
	host := strings.TrimPrefix(o.url, "http://")
	h := o.cache.Handler("app", []Rule{{Path: "/never", Cache: false}}, nil).(*appHandler)
	expect(t, "fill", o.get("/x"), "MISS", "body of /x")
	buf := make([]byte, 0, 4096)
	// The response is stored once its last byte has gone to the client,
	// which may be just after the client has it.
	waitFor(t, "/x stored", func() bool {
		_, _, _, ok := h.AppendHit(buf[:0], host, "/x", []string{"Accept", "*/*"})
		return ok
	})
	o.clock.advance(3 * time.Second)
	head, body, status, ok := h.AppendHit(buf, host, "/x", []string{"Accept", "*/*"})
	if !ok || status != 200 || string(body) != "body of /x" {
		t.Fatalf("AppendHit: ok %v, status %d, body %q", ok, status, body)
	}
	for _, line := range []string{"HTTP/1.1 200 OK\r\n", "Content-Length: 10\r\n", "Etag: \"t\"\r\n", "Age: 3\r\n", "X-Cache: HIT\r\n", "Date: "} {
		if !strings.Contains(string(head), line) {
			t.Errorf("head %q lacks %q", head, line)
		}
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(head), "\r\n") || strings.HasSuffix(string(head), "\r\n\r\n") {
		t.Errorf("head %q: want a status line first and no final empty line", head)
	}
	if n := testing.AllocsPerRun(100, func() { h.AppendHit(buf[:0], host, "/x", []string{"Accept", "*/*"}) }); n != 0 {
		t.Errorf("AppendHit allocates %v times per hit", n)
	}
	head, _, status, ok = h.AppendHit(buf[:0], host, "/x", []string{"If-None-Match", `"t"`})
	if !ok || status != 304 || strings.Contains(string(head), "Content-Length") {
		t.Errorf("If-None-Match naming the tag: ok %v, status %d, head %q", ok, status, head)
	}
	for _, tt := range []struct {
		name, target string
		fields       []string
	}{
		{"not stored", "/y", nil},
		{"rule", "/never", nil},
		{"range", "/x", []string{"range", "bytes=0-1"}},
		{"authorization", "/x", []string{"Authorization", "x"}},
		{"cache-control", "/x", []string{"Cache-Control", "no-cache"}},
		{"other tag", "/x", []string{"If-None-Match", `"u"`}},
	} {
		if _, _, _, ok := h.AppendHit(buf[:0], host, tt.target, tt.fields); ok {
			t.Errorf("%s: answered, want ServeHTTP", tt.name)
		}
	}
	o.clock.advance(time.Minute)
	if _, _, _, ok := h.AppendHit(buf[:0], host, "/x", nil); ok {
		t.Errorf("stale: answered, want ServeHTTP")
	}
}
