package deploy

import (
	"context"
	"slices"
	"testing"
	"time"

	"pier/internal/store"
)

// TestRouter drives the router through the store, as the engine does, and
// checks the tables it hands to the gateway.
func TestRouter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := testBuckets(t, "apps", "instances")
	apps, inst := b[0], b[1]
	var log routeLog
	r := NewRouter(apps, inst, log.set, nil)
	// State from before the router starts is in its first table.
	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog", Release: 1, Web: true, Hosts: []string{"blog.localhost"}})
	store.PutJSON(ctx, inst, "blog.local.1.web.1", instanceRecord{App: "blog", Release: 1, Addr: "127.0.0.1:1001", Ready: true})
	store.PutJSON(ctx, inst, "blog.local.1.web.2", instanceRecord{App: "blog", Release: 1, Addr: "127.0.0.1:1002", Ready: false})
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	backends := func(app string) []string { return log.route(app).Backends }
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; backends %v", what, backends("blog"))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := backends("blog"); !slices.Equal(got, []string{"127.0.0.1:1001"}) {
		t.Fatalf("initial table: got %v, want only the ready instance", got)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := r.WaitRouted(wctx, "blog", 1); err != nil {
		t.Fatal(err)
	}

	// A swap to v2 before v2's instance records arrive keeps v1's backends:
	// the table never goes empty, and v2 is not reported as routed yet.
	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog", Release: 2, Web: true, Hosts: []string{"blog.localhost"}})
	routed := make(chan error, 1)
	go func() { routed <- r.WaitRouted(wctx, "blog", 2) }()
	time.Sleep(100 * time.Millisecond)
	if got := backends("blog"); !slices.Equal(got, []string{"127.0.0.1:1001"}) {
		t.Fatalf("after the swap, before v2 is ready: got %v, want v1's backend kept", got)
	}
	select {
	case err := <-routed:
		t.Fatalf("WaitRouted(v2) returned %v before v2 had a ready instance", err)
	default:
	}
	store.PutJSON(ctx, inst, "blog.local.2.web.1", instanceRecord{App: "blog", Release: 2, Addr: "127.0.0.1:2001", Ready: true})
	if err := <-routed; err != nil {
		t.Fatal(err)
	}
	if got := backends("blog"); !slices.Equal(got, []string{"127.0.0.1:2001"}) {
		t.Fatalf("v2 ready: got %v, want only v2's backend", got)
	}

	// An instance that stops being ready leaves the table; a deleted app
	// leaves it entirely.
	store.PutJSON(ctx, inst, "blog.local.2.web.2", instanceRecord{App: "blog", Release: 2, Addr: "127.0.0.1:2002", Ready: true})
	wait("two v2 backends", func() bool { return len(backends("blog")) == 2 })
	store.PutJSON(ctx, inst, "blog.local.2.web.2", instanceRecord{App: "blog", Release: 2, Addr: "127.0.0.1:2002", Ready: false})
	wait("the unready instance removed", func() bool { return len(backends("blog")) == 1 })
	apps.Delete(ctx, "blog")
	wait("the app removed", func() bool { return log.count() == 0 })
}

func TestShellJoin(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"echo", "hi"}, `'echo' 'hi'`},
		{[]string{"sh", "-c", "echo $HOME; exit 3"}, `'sh' '-c' 'echo $HOME; exit 3'`},
		{[]string{"it's"}, `'it'\''s'`},
	} {
		if got := shellJoin(tc.argv); got != tc.want {
			t.Errorf("shellJoin(%q): got %q, want %q", tc.argv, got, tc.want)
		}
	}
}
