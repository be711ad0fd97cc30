package deploy

import (
	"context"
	"slices"
	"testing"
	"time"

	"pier/internal/manifest"
	"pier/internal/store"
)

// TestRouterH2C: the protocol an instance speaks travels from its record
// to its route, for the current release and its canary apart; while a
// new release has no ready instance, the instances kept are those that
// speak as the newest of the others.
func TestRouterH2C(t *testing.T) {
	ctx := context.Background()
	_, apps, inst, log := runTestRouter(t)
	waitRoute := func(what string, ok func(Route) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(log.route("blog")) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; route %+v", what, log.route("blog"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog", Release: 1, Web: true, Hosts: []string{"blog.localhost"}, Canary: 2, CanaryWeight: 1000})
	store.PutJSON(ctx, inst, "blog.local.1.web.1", instanceRecord{App: "blog", Release: 1, Addr: "127.0.0.1:1001", Ready: true, Protocol: manifest.ProtocolH2C})
	store.PutJSON(ctx, inst, "blog.local.2.web.1", instanceRecord{App: "blog", Release: 2, Addr: "127.0.0.1:2001", Ready: true})
	waitRoute("an h2c release with an HTTP/1.1 canary", func(rt Route) bool {
		return slices.Equal(rt.Backends, []string{"127.0.0.1:1001"}) && rt.H2C &&
			slices.Equal(rt.Canary, []string{"127.0.0.1:2001"}) && !rt.CanaryH2C
	})

	// v3 is current but has no ready instance yet, and the canary ended:
	// v1 (h2c) and v2 (HTTP/1.1) are both left; v2 is the newer.
	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog", Release: 3, Web: true, Hosts: []string{"blog.localhost"}})
	waitRoute("the newest other release's instances", func(rt Route) bool {
		return rt.Release == 3 && slices.Equal(rt.Backends, []string{"127.0.0.1:2001"}) && !rt.H2C && rt.Canary == nil
	})

	store.PutJSON(ctx, inst, "blog.local.3.web.1", instanceRecord{App: "blog", Release: 3, Addr: "127.0.0.1:3001", Ready: true, Protocol: manifest.ProtocolH2C})
	waitRoute("v3's h2c instance", func(rt Route) bool {
		return slices.Equal(rt.Backends, []string{"127.0.0.1:3001"}) && rt.H2C
	})
}
