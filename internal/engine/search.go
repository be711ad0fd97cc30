package engine

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"pier/internal/search"
)

// searchPrefix is where the Elasticsearch-compatible API answers, on every
// gateway host and on the API listener.
const searchPrefix = "/_pier/search"

// startSearch plugs full-text search (issue #7) into the hub: each app's
// indexes under $PIER_HOME/search/<app>/, the Elasticsearch-compatible API
// under /_pier/search/ (gateway and API listener, HTTP basic auth with the
// app's name and token), ELASTICSEARCH_URL for every process, and the same
// API for the admin under /v1/apps/{app}/search/ (what `pier search` uses).
func startSearch(ctx context.Context, h *hub) error {
	svc, err := search.Open(search.Options{
		Dir:       filepath.Join(h.home, "search"),
		Logger:    h.log.With("part", "search"),
		IdleClose: h.searchIdle,
	})
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	h.stops = append(h.stops, func() {
		if err := svc.Close(); err != nil {
			h.log.Warn("close search indexes", "err", err)
		}
	})
	check := func(ctx context.Context, app, password string) bool {
		got, ok := h.appToken(ctx, password)
		return ok && got == app
	}
	public := svc.Handler(search.BasicAuth(searchPrefix, check))
	h.internal.Handle(searchPrefix+"/", public)
	h.api.HandlePublic(searchPrefix+"/", public)
	admin := svc.Handler(func(r *http.Request) (string, string, error) {
		app := r.PathValue("app")
		return app, strings.TrimPrefix(r.URL.Path, "/v1/apps/"+app+"/search"), nil
	})
	h.api.Handle("/v1/apps/{app}/search/", admin)
	base, err := url.Parse(h.gatewayURL + searchPrefix)
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	h.env = append(h.env, func(app, token, _ string) map[string]string {
		u := *base
		u.User = url.UserPassword(app, token)
		return map[string]string{"ELASTICSEARCH_URL": u.String()}
	})
	h.destroys = append(h.destroys, func(app string) {
		if err := svc.DropApp(context.WithoutCancel(ctx), app); err != nil {
			h.log.Warn("drop search indexes", "app", app, "err", err)
		}
	})
	return nil
}
