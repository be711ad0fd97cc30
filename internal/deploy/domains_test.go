package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pier/internal/api"
	"pier/internal/store"
)

// TestDomainStore attaches and detaches domains through the store and
// checks the router serves them with their app's hosts.
func TestDomainStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := testBuckets(t, "apps", "instances", "domains")
	apps, inst, doms := b[0], b[1], b[2]
	store.PutJSON(ctx, apps, "shop", appRecord{Name: "shop", Release: 1, Web: true, Hosts: []string{"shop.localhost"}})
	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog", Release: 1, Web: true, Hosts: []string{"blog.localhost", "blog.example.com"}})
	d := NewDomainStore(doms, apps)

	// Attached before the router starts: in its first table.
	if _, err := d.AddDomains(ctx, "shop", []string{"A.example.com", "b.example.com."}); err != nil {
		t.Fatal(err)
	}
	var log routeLog
	r := NewRouter(apps, inst, log.set, nil).WithDomains(doms)
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	hosts := func(app string) []string {
		if h := log.route(app).Hosts; h != nil {
			return slices.Sorted(slices.Values(h))
		}
		return nil
	}
	wait := func(app string, want []string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Equal(hosts(app), want) {
			if time.Now().After(deadline) {
				t.Fatalf("hosts of %s: got %v, want %v", app, hosts(app), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wait("shop", []string{"a.example.com", "b.example.com", "shop.localhost"})

	for _, tc := range []struct {
		name  string
		app   string
		hosts []string
		want  error
	}{
		{"invalid host", "shop", []string{"c.example.com", "http://x.example.com"}, api.ErrBadRequest},
		{"bad wildcard", "shop", []string{"a.*.example.com"}, api.ErrBadRequest},
		{"claimed through the API", "blog", []string{"c.example.com", "a.example.com"}, api.ErrConflict},
		{"claimed by a manifest", "shop", []string{"blog.example.com"}, api.ErrConflict},
		{"no such app", "nope", []string{"d.example.com"}, api.ErrNotFound},
	} {
		if _, err := d.AddDomains(ctx, tc.app, tc.hosts); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// All or nothing: c.example.com came in none of the failed batches.
	if ds, _ := d.ListDomains(ctx, ""); len(ds) != 2 {
		t.Fatalf("after failed batches: %v, want the 2 first domains only", ds)
	}

	ch, err := d.AddDomains(ctx, "shop", []string{"a.example.com", "*.shops.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Added != 1 || ch.Unchanged != 1 || ch.Total != 3 {
		t.Errorf("add: got %+v, want 1 added, 1 unchanged, 3 in all", ch)
	}
	wait("shop", []string{"*.shops.example.com", "a.example.com", "b.example.com", "shop.localhost"})

	if _, err := d.RemoveDomains(ctx, "shop", []string{"a.example.com", "zzz.example.com"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("removing a domain the app lacks: got %v, want not found", err)
	}
	if _, err := d.RemoveDomains(ctx, "blog", []string{"a.example.com"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("removing another app's domain: got %v, want not found", err)
	}
	if ch, err := d.RemoveDomains(ctx, "shop", []string{"A.example.com"}); err != nil || ch.Removed != 1 {
		t.Fatalf("remove: %+v, %v", ch, err)
	}
	wait("shop", []string{"*.shops.example.com", "b.example.com", "shop.localhost"})
	// Now free for another app.
	if _, err := d.AddDomains(ctx, "blog", []string{"a.example.com"}); err != nil {
		t.Fatal(err)
	}
	wait("blog", []string{"a.example.com", "blog.example.com", "blog.localhost"})

	if err := d.RemoveApp(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if ds, _ := d.ListDomains(ctx, ""); !slices.Equal(ds, []api.Domain{{Host: "a.example.com", App: "blog"}}) {
		t.Errorf("after RemoveApp(shop): %v", ds)
	}
	wait("shop", []string{"shop.localhost"})
}

// TestDomainStoreBatch attaches many domains in one batch.
func TestDomainStoreBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	b := testBuckets(t, "apps", "domains")
	apps, doms := b[0], b[1]
	store.PutJSON(ctx, apps, "sites", appRecord{Name: "sites"})
	d := NewDomainStore(doms, apps)
	hosts := make([]string, 20000)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("t%05d.minisites.test", i)
	}
	start := time.Now()
	ch, err := d.AddDomains(ctx, "sites", hosts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attached %d domains in %v", ch.Added, time.Since(start))
	if ch.Added != len(hosts) || ch.Total != len(hosts) {
		t.Errorf("got %+v, want %d added", ch, len(hosts))
	}
}
