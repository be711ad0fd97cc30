package gateway

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"pier/internal/httpcache"
)

// BenchmarkLookup resolves hosts in a table of 100,000 exact domains and
// 10,000 wildcards: exact hits, wildcard hits at two depths, and misses.
func BenchmarkLookup(b *testing.B) {
	const exact, wild = 100_000, 10_000
	routes := make([]Route, 0, exact+wild)
	for i := 0; i < exact; i++ {
		routes = append(routes, Route{App: fmt.Sprintf("site%d", i), Hosts: []string{fmt.Sprintf("site%d.example.com", i)}})
	}
	for i := 0; i < wild; i++ {
		routes = append(routes, Route{App: fmt.Sprintf("tenant%d", i), Hosts: []string{fmt.Sprintf("*.tenant%d.blogs.example.net", i)}})
	}
	g := New(Options{Logger: slog.New(slog.DiscardHandler)})
	g.SetRoutes(routes)

	hosts := []struct{ host, app string }{
		{"site4242.example.com", "site4242"},
		{"site99999.example.com:8080", "site99999"},
		{"alice.tenant777.blogs.example.net", "tenant777"},
		{"a.b.c.tenant9999.blogs.example.net", "tenant9999"},
		{"nobody.example.org", ""},
		{"x.y.z.unknown.blogs.example.net", ""},
	}
	for _, h := range hosts {
		if app, _ := g.Lookup(h.host); app != h.app {
			b.Fatalf("Lookup(%q) = %q, want %q", h.host, app, h.app)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		g.Lookup(hosts[i%len(hosts)].host)
	}
}

// BenchmarkSetRoutes builds and swaps a table of 10,000 apps.
func BenchmarkSetRoutes(b *testing.B) {
	routes := make([]Route, 0, 10_000)
	for i := 0; i < 10_000; i++ {
		routes = append(routes, Route{
			App:      fmt.Sprintf("site%d", i),
			Hosts:    []string{fmt.Sprintf("site%d.example.com", i), fmt.Sprintf("*.site%d.example.com", i)},
			Backends: []string{fmt.Sprintf("127.0.0.1:%d", 10000+i%5000)},
		})
	}
	g := New(Options{Logger: slog.New(slog.DiscardHandler)})
	b.ReportAllocs()
	for b.Loop() {
		g.SetRoutes(routes)
	}
}

// BenchmarkProxy passes small GET requests through the gateway to one
// instance, over real loopback connections with keep-alive: without a
// cache, with the cache and an app that sends no Cache-Control (every
// request a miss), and with cache hits.
func BenchmarkProxy(b *testing.B) {
	b.Run("nocache", func(b *testing.B) { benchProxy(b, nil, "") })
	b.Run("miss", func(b *testing.B) { benchProxy(b, testCache{httpcache.New(httpcache.Options{})}, "") })
	b.Run("hit", func(b *testing.B) { benchProxy(b, testCache{httpcache.New(httpcache.Options{})}, "max-age=600") })
}

func benchProxy(b *testing.B, cache Cache, cc string) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		io.WriteString(w, "hello, world\n")
	}))
	defer backend.Close()
	g := New(Options{Logger: slog.New(slog.DiscardHandler), Cache: cache})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{backend.Listener.Addr().String()}}})
	front := httptest.NewServer(g)
	defer front.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", front.URL+"/hello", nil)
			req.Host = "app.localhost"
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkFrontPass is the pass-through row of bench/gateway in one
// process: keep-alive clients on raw connections send GET /hello through
// Guard, Front, the gateway with the real cache and an Observe hook (as the
// engine wires them) to an app that answers no-store, so every request
// reaches the app. Run with -cpuprofile and -focus=gateway to see what the
// gateway's own share costs.
func BenchmarkFrontPass(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "hello, world\n")
	}))
	defer backend.Close()
	var observed atomic.Int64
	g := New(Options{
		Logger:  slog.New(slog.DiscardHandler),
		Cache:   testCache{httpcache.New(httpcache.Options{})},
		Observe: func(app string, status int, bytes int64, d time.Duration, cache string) { observed.Add(1) },
	})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{backend.Listener.Addr().String()}}})
	benchFrontGets(b, g)
	b.StopTimer()
	if observed.Load() == 0 {
		b.Error("Observe never called")
	}
}

// benchFrontGets serves g through Front on a free port and times keep-alive
// "GET /hello" requests from 8 parallel clients per CPU, each answer read
// whole and required to be a 200.
func benchFrontGets(b *testing.B, g *Gateway) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: g}
	go srv.Serve(g.Front(Guard(ln, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}), g, FrontOptions{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}))
	defer srv.Close()
	addr := ln.Addr().String()
	req := []byte("GET /hello HTTP/1.1\r\nHost: app.localhost\r\nUser-Agent: bench\r\n\r\n")
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
