package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"pier/internal/httpcache"
	"pier/internal/metrics"
)

// TestObserve checks what the observer hook is told for proxied answers,
// with the real cache in front of the app and without one.
func TestObserve(t *testing.T) {
	type seen struct {
		app    string
		status int
		bytes  int64
		cache  string
	}
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/own":
			// An app's own X-Cache (its own cache layer, say) is not
			// pier's cache result.
			w.Header().Set("X-Cache", "HIT from upstream")
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "no")
			return
		case "/cached":
			w.Header().Set("Cache-Control", "max-age=600")
		}
		if r.URL.Path == "/hints" {
			// A 1xx is not the final status. (ReverseProxy clears the
			// response's headers after one, the cache's X-Cache with
			// them: only the no-cache case asks for hints.)
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		}
		io.WriteString(w, "hello world")
	}))
	type request struct{ method, path string }
	for _, tc := range []struct {
		name  string
		cache Cache
		reqs  []request
		want  []seen
	}{
		{
			name: "no cache",
			reqs: []request{{"GET", "/hints"}, {"GET", "/missing"}, {"GET", "/cached"}, {"GET", "/own"}},
			want: []seen{{"blog", 200, 11, ""}, {"blog", 404, 2, ""}, {"blog", 200, 11, ""}, {"blog", 200, 11, ""}},
		},
		{
			name:  "cache",
			cache: testCache{httpcache.New(httpcache.Options{Logger: testLogger(t)})},
			reqs: []request{
				{"GET", "/cached"}, {"GET", "/cached"}, {"POST", "/cached"},
				{"GET", "/missing"}, {"GET", "/own"},
			},
			want: []seen{
				{"blog", 200, 11, CacheMiss}, {"blog", 200, 11, CacheHit},
				{"blog", 200, 11, CacheBypass}, {"blog", 404, 2, CacheMiss},
				{"blog", 200, 11, CacheMiss},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []seen
			g := New(Options{Logger: testLogger(t), Cache: tc.cache, Observe: func(app string, status int, bytes int64, d time.Duration, cache string) {
				mu.Lock()
				got = append(got, seen{app, status, bytes, cache})
				mu.Unlock()
			}})
			g.SetRoutes([]Route{{App: "blog", Hosts: []string{"blog.localhost"}, Backends: []string{backend}}})
			srv := httptest.NewServer(g)
			defer srv.Close()
			for i, rq := range tc.reqs {
				req, _ := http.NewRequest(rq.method, srv.URL+rq.path, nil)
				req.Host = "blog.localhost"
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				// The hook runs after the response reached the client:
				// wait for it, so observations come in request order.
				waitFor(t, "an observation", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > i })
			}
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Host = "unknown.localhost"
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != len(tc.want) {
				t.Fatalf("observed %+v, want %+v", got, tc.want)
			}
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Errorf("request %d: observed %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// so that a benchmark measures the gateway and not a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkObserveOverhead measures what observing adds to a request: the
// same request to a gateway with the engine's metrics hook
// (metrics.Observe) and to one without, in alternating batches of 1,000 so
// both meet the same load on a shared machine. It reports the median
// batch's ns per request of each and their difference, the hook's cost:
// for a cheap answer (an app without instances: 503), and for a request
// proxied to an app over loopback, whose own cost is mostly the app's and
// the round trip's.
func BenchmarkObserveOverhead(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the bench backend\n")
	}))
	defer backend.Close()
	for _, tc := range []struct {
		name     string
		backends []string
	}{
		{"answer", nil},
		{"proxied", []string{backend.Listener.Addr().String()}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchObserveOverhead(b, tc.backends) })
	}
}

func benchObserveOverhead(b *testing.B, backends []string) {
	m := metrics.New(metrics.Options{})
	gateways := map[bool]*Gateway{}
	for _, on := range []bool{false, true} {
		opts := Options{Logger: slog.New(slog.DiscardHandler)}
		if on {
			opts.Observe = m.Observe
		}
		g := New(opts)
		g.SetRoutes([]Route{{App: "blog", Hosts: []string{"blog.localhost"}, Backends: backends}})
		gateways[on] = g
	}
	req := httptest.NewRequest("GET", "http://blog.localhost/", nil)
	w := &discardWriter{h: http.Header{}}
	const batch = 1000
	var times = map[bool][]float64{}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		on := i%2 == 1
		g := gateways[on]
		start := time.Now()
		for range batch {
			clear(w.h)
			g.ServeHTTP(w, req)
		}
		times[on] = append(times[on], float64(time.Since(start).Nanoseconds())/batch)
	}
	m.Collect(time.Now())
	if q := m.Query("blog", time.Minute); len(times[true]) > 0 && (len(q.Processes) == 0 || q.Processes[0].Points[0].Requests == 0) {
		b.Fatalf("the hook saw no request: %+v", q)
	}
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	on, off := median(times[true]), median(times[false])
	b.ReportMetric(on, "ns-on/req")
	b.ReportMetric(off, "ns-off/req")
	b.ReportMetric(on-off, "ns-hook/req")
}
