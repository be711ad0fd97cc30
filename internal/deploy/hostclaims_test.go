package deploy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"pier/internal/api"
	"pier/internal/manifest"
	"pier/internal/store"
)

func TestOverlaps(t *testing.T) {
	claims := []hostClaim{
		{host: "shop.localhost", app: "shop"},
		{host: "shop.example.com", app: "shop"},
		{host: "*.shops.example.com", app: "shop"},
		{host: "a.customer.test", app: "sites", api: true},
		{host: "*.tenants.test", app: "sites", api: true},
		{host: "blog.example.com", app: "blog"}, // the deploying app's own: never a conflict
	}
	for _, tc := range []struct {
		name  string
		hosts []string
		want  []string // one line per conflict, sorted
	}{
		{"no overlap", []string{"blog.localhost", "blog.example.com", "*.blogs.example.com"}, nil},
		{"same name from a manifest", []string{"blog.localhost", "Shop.Example.com"},
			[]string{"shop.example.com (app shop is served at shop.example.com)"}},
		{"same name through the API", []string{"a.customer.test"},
			[]string{"a.customer.test (app sites has a.customer.test through pier domains add)"}},
		{"same wildcard", []string{"*.shops.example.com"},
			[]string{"*.shops.example.com (app shop is served at *.shops.example.com)"}},
		{"name under a wildcard", []string{"x.shops.example.com"},
			[]string{"x.shops.example.com (app shop is served at *.shops.example.com)"}},
		{"deep name under a wildcard", []string{"a.b.tenants.test"},
			[]string{"a.b.tenants.test (app sites has *.tenants.test through pier domains add)"}},
		{"the wildcard's own base name is not under it", []string{"shops.example.com", "tenants.test"}, nil},
		{"narrower wildcard under a wildcard", []string{"*.eu.shops.example.com"},
			[]string{"*.eu.shops.example.com (app shop is served at *.shops.example.com)"}},
		{"wildcard over another app's names", []string{"*.example.com"}, []string{
			"*.example.com (app shop is served at *.shops.example.com)",
			"*.example.com (app shop is served at shop.example.com)",
		}},
		{"wildcard over an attached name", []string{"*.customer.test"},
			[]string{"*.customer.test (app sites has a.customer.test through pier domains add)"}},
		{"sibling wildcard", []string{"*.example.org", "*.other.example.com"}, nil},
		{"no hosts", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := overlaps("blog", tc.hosts, claims)
			if !slices.Equal(got, tc.want) {
				t.Errorf("overlaps(%q):\ngot  %q\nwant %q", tc.hosts, got, tc.want)
			}
		})
	}
}

// FuzzOverlaps: any host overlaps itself held by another app, and a name
// overlaps every wildcard of one of its parents.
func FuzzOverlaps(f *testing.F) {
	for _, s := range []string{"a.example.com", "*.example.com", "x.y.z", "localhost"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, err := manifest.CheckDomain(s)
		if err != nil {
			return
		}
		if got := overlaps("a", []string{host}, []hostClaim{{host: host, app: "b"}}); len(got) != 1 {
			t.Fatalf("%q against itself: got %q, want one conflict", host, got)
		}
		name := strings.TrimPrefix(host, "*.")
		parents(name, func(p string) bool {
			w := []hostClaim{{host: "*." + p, app: "b"}}
			if got := overlaps("a", []string{host}, w); len(got) != 1 {
				t.Fatalf("%q under *.%s: got %q, want one conflict", host, p, got)
			}
			// And the other way round: the wildcard deployed over the host.
			if got := overlaps("b", []string{"*." + p}, []hostClaim{{host: host, app: "a"}}); len(got) != 1 {
				t.Fatalf("*.%s over %q: got %q, want one conflict", p, host, got)
			}
			return false
		})
	})
}

// TestCheckHosts: a release whose manifest domains another app has, from
// its manifest or through the API, is refused naming that app; a staging
// copy is checked at its own name alone.
func TestCheckHosts(t *testing.T) {
	ctx := context.Background()
	b := testBuckets(t, "apps", "domains")
	apps, doms := b[0], b[1]
	store.PutJSON(ctx, apps, "shop", appRecord{Name: "shop", Release: 1, Hosts: []string{"shop.localhost", "shop.example.com", "*.shops.example.com"}})
	store.PutJSON(ctx, apps, "sites", appRecord{Name: "sites", Release: 1, Hosts: []string{"sites.localhost"}})
	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog"})
	if _, err := NewDomainStore(doms, apps).AddDomains(ctx, "sites", []string{"a.customer.test", "*.tenants.test"}); err != nil {
		t.Fatal(err)
	}
	m := New(ctx, Config{Domain: "localhost", Apps: apps, Domains: doms})
	rel := func(domains ...string) *releaseRecord {
		return &releaseRecord{Release: api.Release{App: "blog", Number: 2}, Manifest: &manifest.Manifest{Name: "blog", Domains: domains}}
	}
	for _, tc := range []struct {
		name    string
		app     appRecord
		domains []string
		want    string // in the error; "" = accepted
	}{
		{"free domains", appRecord{Name: "blog"}, []string{"blog.example.com", "*.blogs.example.com"}, ""},
		{"another manifest's domain", appRecord{Name: "blog"}, []string{"blog.example.com", "shop.example.com"}, "shop.example.com (app shop is served at shop.example.com)"},
		{"under another manifest's wildcard", appRecord{Name: "blog"}, []string{"x.shops.example.com"}, "app shop is served at *.shops.example.com"},
		{"an attached domain", appRecord{Name: "blog"}, []string{"a.customer.test"}, "app sites has a.customer.test through pier domains add"},
		{"wildcard over attached ones", appRecord{Name: "blog"}, []string{"*.test"}, "app sites has *.tenants.test through pier domains add"},
		{"staging copy: manifest domains are not its", appRecord{Name: "blog", StagingOf: "x"}, []string{"shop.example.com"}, ""},
	} {
		err := m.checkHosts(ctx, tc.app, rel(tc.domains...))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: got %v, want no error", tc.name, err)
		case tc.want != "" && (!errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want a conflict with %q", tc.name, err, tc.want)
		}
	}

	// The other way round: pier domains add refuses a host under another
	// app's manifest wildcard, and a wildcard over another app's host.
	d := NewDomainStore(doms, apps)
	for _, tc := range []struct {
		hosts []string
		want  string
	}{
		{[]string{"ok.blog.test", "x.shops.example.com"}, "x.shops.example.com (app shop is served at *.shops.example.com)"},
		{[]string{"*.example.com"}, "app shop is served at shop.example.com"},
		{[]string{"b.tenants.test"}, "app sites has *.tenants.test through pier domains add"},
	} {
		_, err := d.AddDomains(ctx, "blog", tc.hosts)
		if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("domains add %q: got %v, want a conflict with %q", tc.hosts, err, tc.want)
		}
	}
	if ds, _ := d.ListDomains(ctx, "blog"); len(ds) != 0 {
		t.Errorf("after refused batches blog has %v, want none", ds)
	}
}
