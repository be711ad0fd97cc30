package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	"pier/internal/manifest"
	"pier/internal/store"
)

// Route is what the gateway needs to serve one app.
type Route struct {
	App       string
	Hosts     []string
	Backends  []string // addresses of ready web instances
	StaticDir string
	Static    map[string]string    // URL prefix -> directory served by the gateway
	Cache     []manifest.CacheRule // the manifest's cache rules
	Wakeable  bool                 // sleeps while idle: a request starts it (Manager.Wake)
	Release   int                  // the current release, which Backends run

	// Canary holds the ready web instances of a release on trial, which
	// gets CanaryWeight basis points (1/100 %) of new clients.
	Canary        []string
	CanaryRelease int
	CanaryWeight  int

	// H2C says the instances at Backends speak HTTP/2 without TLS (the
	// manifest's processes.web.protocol: h2c); CanaryH2C says it of the
	// Canary instances.
	H2C, CanaryH2C bool
}

// Router builds the route table from the store: the apps bucket says which
// release each app serves on which hosts, the instances bucket which
// instances are ready. Every node's gateway runs one, so a change made on any
// node reaches all of them.
type Router struct {
	apps, instances *store.Bucket
	domains         *store.Bucket // hosts attached through the API; nil = none
	set             func([]Route)
	log             *slog.Logger

	updates chan update

	mu       sync.Mutex     // guards routed, canaries, changed
	routed   map[string]int // app -> release the applied table serves
	canaries map[string]int // app -> canary release the applied table serves
	changed  chan struct{}  // closed (and replaced) after each applied table
}

type update struct {
	instance bool
	domain   bool // an entry of the domains bucket
	entry    store.Entry
}

// NewRouter returns a router that hands each new table to set.
func NewRouter(apps, instances *store.Bucket, set func([]Route), log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{
		apps: apps, instances: instances, set: set, log: log,
		updates: make(chan update, 1024),
		routed:  make(map[string]int),
		changed: make(chan struct{}),
	}
}

// WithDomains makes the router add the domains attached through the API
// (see DomainStore) to their apps' hosts. Call it before Run.
func (r *Router) WithDomains(domains *store.Bucket) *Router {
	r.domains = domains
	return r
}

// Run watches the store until ctx ends. It returns once the first table,
// built from the current contents of both buckets, has been applied.
func (r *Router) Run(ctx context.Context) error {
	ready := make(chan struct{}, 3)
	watch := func(b *store.Bucket, instance, domain bool) error {
		return b.Watch(ctx, "", func(e store.Entry) {
			if e.Key == "" {
				ready <- struct{}{}
				return
			}
			select {
			case r.updates <- update{instance: instance, domain: domain, entry: e}:
			case <-ctx.Done():
			}
		})
	}
	if err := watch(r.apps, false, false); err != nil {
		return err
	}
	if err := watch(r.instances, true, false); err != nil {
		return err
	}
	watches := 2
	if r.domains != nil {
		if err := watch(r.domains, false, true); err != nil {
			return err
		}
		watches++
	}
	domains := newDomainHosts()
	apps := map[string]appRecord{}
	inst := map[string]map[string]instanceRecord{} // app -> key -> record
	apply := func(u update) {
		if u.domain {
			if err := domains.apply(u.entry); err != nil {
				r.log.Warn("bad domains record", "key", u.entry.Key, "err", err)
			}
			return
		}
		if u.instance {
			app, _, _ := strings.Cut(u.entry.Key, ".")
			if u.entry.Deleted {
				delete(inst[app], u.entry.Key)
				return
			}
			var rec instanceRecord
			if err := json.Unmarshal(u.entry.Value, &rec); err != nil {
				r.log.Warn("bad instance record", "key", u.entry.Key, "err", err)
				return
			}
			if inst[app] == nil {
				inst[app] = map[string]instanceRecord{}
			}
			inst[app][u.entry.Key] = rec
			return
		}
		if u.entry.Deleted {
			delete(apps, u.entry.Key)
			return
		}
		var rec appRecord
		if err := json.Unmarshal(u.entry.Value, &rec); err != nil {
			r.log.Warn("bad app record", "key", u.entry.Key, "err", err)
			return
		}
		apps[u.entry.Key] = rec
	}
	// Initial values: everything the buckets hold before the end markers.
	for got := 0; got < watches; {
		select {
		case u := <-r.updates:
			apply(u)
		case <-ready:
			got++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for len(r.updates) > 0 {
		apply(<-r.updates)
	}
	r.publish(apps, inst, domains.hosts())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case u := <-r.updates:
				apply(u)
				// Coalesce a burst of changes into one table.
				for n := len(r.updates); n > 0; n-- {
					apply(<-r.updates)
				}
				r.publish(apps, inst, domains.hosts())
			}
		}
	}()
	return nil
}

// publish builds the table and hands it over. An app whose current release
// has no ready instance yet keeps the ready instances of its other releases,
// so a table never goes empty between a swap and the instance records that
// the swap waited for.
//
// extra holds each app's domains attached through the API, served beside
// the hosts of its record.
func (r *Router) publish(apps map[string]appRecord, inst map[string]map[string]instanceRecord, extra map[string][]string) {
	routes := make([]Route, 0, len(apps))
	routed := make(map[string]int, len(apps))
	canaries := make(map[string]int)
	names := make([]string, 0, len(apps))
	for name := range apps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a := apps[name]
		if a.Release == 0 {
			continue
		}
		var cur, canary []string
		var curH2C, canaryH2C bool
		newest := 0 // among other: the release whose protocol is routed
		otherH2C := map[int]bool{}
		for _, rec := range inst[name] {
			if !rec.Ready || rec.Addr == "" {
				continue
			}
			h2c := rec.Protocol == manifest.ProtocolH2C
			switch rec.Release {
			case a.Release:
				cur, curH2C = append(cur, rec.Addr), h2c
			case a.Canary:
				canary, canaryH2C = append(canary, rec.Addr), h2c
			default:
				otherH2C[rec.Release] = h2c
				newest = max(newest, rec.Release)
			}
		}
		backends := cur
		if len(backends) == 0 {
			// Instances of other releases may speak differently (a
			// deploy that changed the protocol): route those that
			// speak as the newest of them does.
			curH2C = otherH2C[newest]
			for _, rec := range inst[name] {
				if rec.Ready && rec.Addr != "" && rec.Release != a.Release && rec.Release != a.Canary &&
					(rec.Protocol == manifest.ProtocolH2C) == curH2C {
					backends = append(backends, rec.Addr)
				}
			}
		}
		sort.Strings(backends)
		sort.Strings(canary)
		if len(cur) > 0 || !a.Web {
			routed[name] = a.Release
		}
		hosts := a.Hosts
		if more := extra[name]; len(more) > 0 {
			hosts = append(slices.Clip(a.Hosts), more...)
		}
		rt := Route{App: name, Hosts: hosts, Backends: backends, StaticDir: a.StaticDir,
			Static: a.Static, Cache: a.Cache, Wakeable: a.Wake && a.Web, Release: a.Release, H2C: curH2C}
		if a.Canary != 0 && len(canary) > 0 {
			rt.Canary, rt.CanaryRelease, rt.CanaryWeight = canary, a.Canary, a.CanaryWeight
			rt.CanaryH2C = canaryH2C
			canaries[name] = a.Canary
		}
		routes = append(routes, rt)
	}
	r.set(routes)
	r.mu.Lock()
	r.routed, r.canaries = routed, canaries
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// WaitRouted blocks until the applied table serves release of app, as its
// current release or as its canary.
func (r *Router) WaitRouted(ctx context.Context, app string, release int) error {
	for {
		r.mu.Lock()
		got, canary, ch := r.routed[app], r.canaries[app], r.changed
		r.mu.Unlock()
		if got == release || canary == release {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the route of %s v%d: %w", app, release, ctx.Err())
		}
	}
}
