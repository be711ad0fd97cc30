package gateway

import (
	"maps"
	"net/http"
	"slices"
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

	// Static maps URL prefixes ("/static") to directories the gateway
	// serves itself, in front of the app's instances. A missing file is a
	// 404, except under "/", where the request goes to the app.
	Static map[string]string

	// Cache holds the app's cache rules (the manifest's cache: list), first
	// match first. They apply when Options.Cache is set.
	Cache []CacheRule

	// Wakeable marks an app that sleeps while idle: a request that finds
	// no Backends asks Options.Waker to start it and waits, instead of
	// getting a 503.
	Wakeable bool

	// Release is the number of the release Backends run. It names the
	// stable group in the canary cookie.
	Release int

	// Canary holds the addresses of ready instances of a release under
	// trial (CanaryRelease), which gets CanaryWeight basis points (1/100
	// of a percent) of the app's new clients; each client stays in its
	// group through the CanaryCookie. Empty or a zero weight = no canary.
	Canary        []string
	CanaryRelease int
	CanaryWeight  int

	// H2C says the instances at Backends speak HTTP/2 without TLS (prior
	// knowledge, "h2c"): requests go to them through the gateway's h2c
	// client (h2c.go), protocol switches (websockets) still over HTTP/1.1.
	// CanaryH2C says the same of the Canary instances, which run another
	// release and may speak otherwise.
	H2C, CanaryH2C bool
}

// CacheRule sets how the cache treats the paths it matches.
type CacheRule struct {
	Path  string        // exact path, or a prefix when it ends in "*"
	TTL   time.Duration // freshness whatever the app's headers say, when Cache is true
	Cache bool          // false: never served from or stored in the cache
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
	static   *staticSite  // nil unless StaticDir is set
	mounts   []mount      // Static, longest prefix first
	handler  http.Handler // the cache in front of the proxy; nil = the proxy alone
	next     atomic.Uint32
	state    *appState    // per app, shared by every table that lists it
	wakeable bool         // sleeps while idle: Options.Waker starts it
	canary   *canarySplit // nil = no canary

	h2c, canaryH2C bool // Route.H2C, Route.CanaryH2C
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
	usedCache := make(map[string]bool)
	usedApps := make(map[string]bool)
	var conflicts []string
	var invalid []string
	for i := range routes {
		r := &routes[i]
		rt := &route{app: r.App, wakeable: r.Wakeable, h2c: r.H2C, canaryH2C: r.CanaryH2C}
		if rt.state = g.apps[r.App]; rt.state == nil {
			rt.state = &appState{}
			g.apps[r.App] = rt.state
		}
		usedApps[r.App] = true
		rt.backends = g.backendList(r.Backends, used)
		if canary := g.backendList(r.Canary, used); len(canary) > 0 && r.CanaryWeight > 0 {
			rt.canary = newCanarySplit(canary, min(r.CanaryWeight, 10000), r.CanaryRelease, r.Release)
		}
		if r.StaticDir != "" {
			rt.static = g.staticSite(r.StaticDir, usedStatic)
		}
		for _, prefix := range slices.Sorted(maps.Keys(r.Static)) {
			p := "/" + strings.Trim(prefix, "/")
			rt.mounts = append(rt.mounts, mount{prefix: p, site: g.staticSite(r.Static[prefix], usedStatic), fallback: p == "/"})
		}
		slices.SortStableFunc(rt.mounts, func(a, b mount) int { return len(b.prefix) - len(a.prefix) })
		if g.cache != nil {
			rt.handler = g.cacheHandler(r.App, r.Cache, usedCache)
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
			b.pool.closeIdle()
		}
	}
	for dir := range g.statics {
		if !usedStatic[dir] {
			delete(g.statics, dir) // its os.Root is closed by the GC once unused
		}
	}
	for app := range g.caches {
		if !usedCache[app] {
			delete(g.caches, app)
		}
	}
	for app := range g.apps {
		if !usedApps[app] {
			delete(g.apps, app)
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

// backendList returns the backends at addrs, reused by address across
// tables, and marks them used. Called with g.mu held.
func (g *Gateway) backendList(addrs []string, used map[*backend]bool) []*backend {
	var list []*backend
	for _, addr := range addrs {
		b := g.backends[addr]
		if b == nil {
			b = &backend{addr: addr}
			g.backends[addr] = b
		}
		if contains(list, b) {
			continue // listed twice
		}
		if !b.inTable && !used[b] {
			b.downUntil.Store(0) // a fresh instance may reuse an old address
		}
		used[b] = true
		list = append(list, b)
	}
	return list
}

// staticSite returns the site serving dir, reused across tables. Called
// with g.mu held.
func (g *Gateway) staticSite(dir string, used map[string]bool) *staticSite {
	s := g.statics[dir]
	if s == nil {
		s = &staticSite{dir: dir, log: g.log, pool: &g.compress}
		g.statics[dir] = s
	}
	used[dir] = true
	return s
}

// appCache is an app's cache handler and the rules it was made with.
type appCache struct {
	rules   []CacheRule
	handler http.Handler
}

// cacheHandler returns app's cache handler, reused while its rules stay
// the same. Called with g.mu held.
func (g *Gateway) cacheHandler(app string, rules []CacheRule, used map[string]bool) http.Handler {
	used[app] = true
	if c, ok := g.caches[app]; ok && slices.Equal(c.rules, rules) {
		return c.handler
	}
	h := g.cache.Handler(app, rules, &appProxy{g: g, app: app})
	g.caches[app] = appCache{rules: slices.Clone(rules), handler: h}
	return h
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
