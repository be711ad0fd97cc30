package deploy

import (
	"context"
	"slices"
	"testing"
	"time"

	"pier/internal/api"
	"pier/internal/manifest"
	"pier/internal/store"
)

// TestRouterCanaryAndWake: the router gives a canary's ready instances
// their own backend set with the weight, reports the canary as routed, and
// marks apps that sleep while idle as wakeable.
func TestRouterCanaryAndWake(t *testing.T) {
	ctx := context.Background()
	r, apps, inst, log := runTestRouter(t)
	route := func() Route { return log.route("blog") }

	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog", Release: 1, Web: true, Hosts: []string{"blog.localhost"}, Canary: 2, CanaryWeight: 1000})
	store.PutJSON(ctx, inst, "blog.local.1.web.1", instanceRecord{App: "blog", Release: 1, Addr: "127.0.0.1:1001", Ready: true})
	store.PutJSON(ctx, inst, "blog.local.2.web.1", instanceRecord{App: "blog", Release: 2, Addr: "127.0.0.1:2001", Ready: true})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := r.WaitRouted(wctx, "blog", 2); err != nil {
		t.Fatalf("canary never routed: %v", err)
	}
	got := route()
	if !slices.Equal(got.Backends, []string{"127.0.0.1:1001"}) || !slices.Equal(got.Canary, []string{"127.0.0.1:2001"}) ||
		got.CanaryRelease != 2 || got.CanaryWeight != 1000 || got.Release != 1 || got.Wakeable {
		t.Fatalf("route with a canary: %+v", got)
	}

	// Asleep: no backends, but wakeable.
	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog", Release: 1, Web: true, Hosts: []string{"blog.localhost"}, Wake: true, Asleep: true})
	inst.Delete(ctx, "blog.local.1.web.1")
	inst.Delete(ctx, "blog.local.2.web.1")
	deadline := time.Now().Add(10 * time.Second)
	for got = route(); len(got.Backends) > 0 || len(got.Canary) > 0 || !got.Wakeable; got = route() {
		if time.Now().After(deadline) {
			t.Fatalf("sleeping app's route: %+v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDesiredWeb(t *testing.T) {
	min0 := &releaseRecord{Release: api.Release{Processes: map[string]string{"web": "x", "worker": "y"}},
		Manifest: &manifest.Manifest{Processes: map[string]string{"web": "x", "worker": "y"}, Scale: map[string]manifest.Scale{"web": {Min: 0, Max: 2}, "worker": {Min: 0, Max: 1}}}}
	min2 := &releaseRecord{Release: api.Release{Processes: map[string]string{"web": "x"}},
		Manifest: &manifest.Manifest{Processes: map[string]string{"web": "x"}, Scale: map[string]manifest.Scale{"web": {Min: 2, Max: 4}}}}
	for _, tc := range []struct {
		name  string
		a     appRecord
		r     *releaseRecord
		p     string
		want  int
		wakes bool
	}{
		{"min 0 awake", appRecord{}, min0, "web", 1, true},
		{"min 0 asleep", appRecord{Asleep: true}, min0, "web", 0, true},
		{"min 0 worker stays 0", appRecord{}, min0, "worker", 0, true},
		{"scaled to 0 for real", appRecord{Scale: map[string]int{"web": 0}}, min0, "web", 0, false},
		{"scaled up", appRecord{Scale: map[string]int{"web": 3}}, min0, "web", 3, false},
		{"min 2", appRecord{}, min2, "web", 2, false},
	} {
		if got := desired(tc.a, tc.r, tc.p); got != tc.want {
			t.Errorf("%s: desired = %d, want %d", tc.name, got, tc.want)
		}
		if got := wakes(tc.a, tc.r); got != tc.wakes {
			t.Errorf("%s: wakes = %v, want %v", tc.name, got, tc.wakes)
		}
	}
}
