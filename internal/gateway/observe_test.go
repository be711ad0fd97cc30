package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestObserve checks what the observer hook is told for proxied answers.
func TestObserve(t *testing.T) {
	type seen struct {
		app    string
		status int
		bytes  int64
	}
	var mu sync.Mutex
	var got []seen
	g := New(Options{Logger: testLogger(t), Observe: func(app string, status int, bytes int64, d time.Duration) {
		mu.Lock()
		got = append(got, seen{app, status, bytes})
		mu.Unlock()
	}})
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "no")
			return
		}
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "hello world")
	}))
	g.SetRoutes([]Route{{App: "blog", Hosts: []string{"blog.localhost"}, Backends: []string{backend}}})
	srv := httptest.NewServer(g)
	defer srv.Close()
	for _, path := range []string{"/", "/missing"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = "blog.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Host = "unknown.localhost"
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// The hook runs after the response reached the client: wait for it.
	waitFor(t, "two observations", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 2 })
	mu.Lock()
	defer mu.Unlock()
	want := []seen{{"blog", 200, 11}, {"blog", 404, 2}}
	if len(got) != len(want) {
		t.Fatalf("observed %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: observed %+v, want %+v", i, got[i], want[i])
		}
	}
}
