package gateway

import (
	"fmt"
	"log/slog"
	"testing"
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
