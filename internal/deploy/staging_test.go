package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"pier/internal/api"
	"pier/internal/store"
)

// TestStagingCopy: the first staging deploy makes the copy with the app's
// config vars; bad uses are refused with the reason before anything is
// built. (test/e2e TestStaging deploys and promotes for real.)
func TestStagingCopy(t *testing.T) {
	ctx := context.Background()
	apps := testBuckets(t, "apps")[0]
	store.PutJSON(ctx, apps, "shop", appRecord{Name: "shop", Release: 2, Config: map[string]string{"GREETING": "hi"}})
	store.PutJSON(ctx, apps, "blog", appRecord{Name: "blog", Release: 1})
	store.PutJSON(ctx, apps, "blog-staging", appRecord{Name: "blog-staging", Release: 1}) // an app of its own
	long := strings.Repeat("a", 33)
	store.PutJSON(ctx, apps, long, appRecord{Name: long, Release: 1})
	m := New(ctx, Config{Domain: "localhost", Apps: apps})

	stage, err := m.ensureStaging(ctx, "shop")
	if err != nil || stage != "shop-staging" {
		t.Fatalf("ensureStaging(shop): %q, %v", stage, err)
	}
	s, err := m.getApp(ctx, stage)
	if err != nil || s.StagingOf != "shop" || s.Config["GREETING"] != "hi" || !strings.HasPrefix(s.Token, "shop-staging.") {
		t.Fatalf("the copy's record: %+v, %v; want staging_of shop, shop's config, its own token", s, err)
	}
	// Its config is its own: a second staging deploy keeps it.
	modifyApp(ctx, m, stage, func(a *appRecord, _ bool) error { a.Config = map[string]string{"GREETING": "staged"}; return nil })
	if _, err := m.ensureStaging(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if s, _ := m.getApp(ctx, stage); s.Config["GREETING"] != "staged" {
		t.Errorf("the copy's config after another staging deploy: %v, want its own", s.Config)
	}
	if got := m.stagingOf(ctx, "shop"); got != "shop-staging" {
		t.Errorf("stagingOf(shop) = %q", got)
	}
	if got := m.stagingOf(ctx, "blog"); got != "" {
		t.Errorf("stagingOf(blog) = %q: blog-staging is not its copy", got)
	}

	for _, tc := range []struct {
		name string
		app  string
		want error
		msg  string
	}{
		{"unknown app", "nope", api.ErrNotFound, `no app named "nope": deploy it without --to staging first`},
		{"a copy of a copy", "shop-staging", api.ErrBadRequest, "shop-staging is the staging copy of shop"},
		{"name taken by another app", "blog", api.ErrConflict, "an app named blog-staging exists and is not the staging copy of blog"},
		{"name too long", long, api.ErrBadRequest, "would be longer than 40 characters"},
		{"invalid name", "Shop", api.ErrBadRequest, "app name"},
	} {
		_, err := m.ensureStaging(ctx, tc.app)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %v with %q", tc.name, err, tc.want, tc.msg)
		}
	}

	// Promote refusals that need no build.
	store.PutJSON(ctx, apps, "news", appRecord{Name: "news", Release: 1})
	if _, err := m.ensureStaging(ctx, "news"); err != nil { // a copy never deployed
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, app, from string
		msg             string
	}{
		{"other environment", "shop", "qa", `promote from "qa": the only environment to promote from is staging`},
		{"no copy", "blog", "staging", "blog has no staging copy to promote"},
		{"copy without a release", "news", "staging", "the staging copy news-staging has no working release yet"},
	} {
		_, err := m.PromoteFrom(ctx, tc.app, tc.from, nil)
		if !errors.Is(err, api.ErrBadRequest) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want a bad request with %q", tc.name, err, tc.msg)
		}
	}
}
