package gateway

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Route is the desired routing for one app. The engine builds the full list
// and hands it to SetRoutes.
type Route struct {
	App string

	// Hosts are exact hosts ("blog.localhost", "blog.example.com") or
	// wildcards ("*.blogs.example.com", matching any host below that
	// suffix but not the suffix itself), without a port.
	Hosts []string

	// Backends are the addresses ("127.0.0.1:4567") of the app's ready web
	// instances.
	Backends []string

	// StaticDir, when set and Backends is empty, is a directory served by
	// the gateway itself: index.html for directories, no listings, nothing
	// outside the directory (symbolic links included).
	StaticDir string
}

// table is one immutable routing table. Requests read it without locks.
type table struct {
	exact map[string]*route // by host
	wild  map[string]*route // by the suffix after "*.": "blogs.example.com"
	byApp map[string]*route
}

var emptyTable = &table{}

// route is an app's entry in a table.
type route struct {
	app      string
	backends []*backend
	static   http.Handler // nil unless StaticDir is set
	next     atomic.Uint32
}

// lookup returns the route serving host (already normalized), or nil.
// Its cost depends on the number of labels in host, not on the table's size.
func (t *table) lookup(host string) *route {
	if rt, ok := t.exact[host]; ok {
		return rt
	}
	if len(t.wild) == 0 {
		return nil
	}
	for rest := host; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return nil
		}
		rest = rest[i+1:]
		if rt, ok := t.wild[rest]; ok {
			return rt
		}
	}
}

// normalizeHost strips the port from a Host header, lower-cases it and trims
// a trailing dot. It allocates only for hosts with upper-case letters.
func normalizeHost(h string) string {
	if strings.HasPrefix(h, "[") { // IPv6 literal, maybe with a port
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// unusedGrace is how long a backend absent from the table keeps its counters
// before it may be forgotten. It covers requests that picked it from an older
// table just before a swap.
const unusedGrace = 30 * time.Second

// SetRoutes builds a new routing table from routes and swaps it in
// atomically. When a host is claimed by more than one route the first one
// wins and a warning is logged. Backends are reused by address across tables,
// so in-flight counts survive swaps.
func (g *Gateway) SetRoutes(routes []Route) {
	g.mu.Lock()
	defer g.mu.Unlock()

	now := time.Now()
	t := &table{
		exact: make(map[string]*route),
		wild:  make(map[string]*route),
		byApp: make(map[string]*route, len(routes)),
	}
	used := make(map[*backend]bool)
	usedStatic := make(map[string]bool)
	var conflicts []string
	var invalid []string
	for i := range routes {
		r := &routes[i]
		rt := &route{app: r.App}
		for _, addr := range r.Backends {
			b := g.backends[addr]
			if b == nil {
				b = &backend{addr: addr}
				g.backends[addr] = b
			}
			if contains(rt.backends, b) {
				continue // listed twice
			}
			if !b.inTable {
				b.downUntil.Store(0) // a fresh instance may reuse an old address
			}
			used[b] = true
			rt.backends = append(rt.backends, b)
		}
		if r.StaticDir != "" {
			s := g.statics[r.StaticDir]
			if s == nil {
				s = &staticSite{dir: r.StaticDir, log: g.log}
				g.statics[r.StaticDir] = s
			}
			usedStatic[r.StaticDir] = true
			rt.static = s
		}
		if _, dup := t.byApp[r.App]; !dup {
			t.byApp[r.App] = rt
		}
		for _, h := range r.Hosts {
			m, key := t.exact, normalizeHost(h)
			if strings.HasPrefix(key, "*.") {
				m, key = t.wild, key[2:]
			}
			if key == "" || strings.Contains(key, "*") {
				invalid = append(invalid, h)
				continue
			}
			if prev, dup := m[key]; dup {
				if prev != rt {
					conflicts = append(conflicts, h+" ("+prev.app+" wins over "+r.App+")")
				}
				continue
			}
			m[key] = rt
		}
	}

	for addr, b := range g.backends {
		switch {
		case used[b]:
			b.inTable, b.unusedSince = true, time.Time{}
		case b.inTable:
			b.inTable, b.unusedSince = false, now
		case b.outstanding.Load() == 0 && now.Sub(b.unusedSince) > unusedGrace:
			delete(g.backends, addr)
		}
	}
	for dir := range g.statics {
		if !usedStatic[dir] {
			delete(g.statics, dir) // its os.Root is closed by the GC once unused
		}
	}
	g.table.Store(t)

	if len(conflicts) > 0 {
		g.log.Warn("gateway: hosts claimed by more than one app; the first route wins",
			"count", len(conflicts), "examples", firstFew(conflicts))
	}
	if len(invalid) > 0 {
		g.log.Warn("gateway: invalid hosts ignored", "count", len(invalid), "examples", firstFew(invalid))
	}
}

func firstFew(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// Outstanding reports the requests in flight to the backend at addr,
// including long-lived ones such as websockets and event streams. The engine
// waits for it to reach 0 before stopping an instance it routed away from.
func (g *Gateway) Outstanding(addr string) int64 {
	g.mu.Lock()
	b := g.backends[addr]
	g.mu.Unlock()
	if b == nil {
		return 0
	}
	return b.outstanding.Load()
}

// Lookup returns the app serving host. host may carry a port and upper-case
// letters, as in a Host header.
func (g *Gateway) Lookup(host string) (app string, ok bool) {
	rt := g.table.Load().lookup(normalizeHost(host))
	if rt == nil {
		return "", false
	}
	return rt.app, true
}
