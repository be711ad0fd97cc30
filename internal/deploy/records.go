package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"pier/internal/api"
	"pier/internal/build"
	"pier/internal/manifest"
	"pier/internal/store"
)

// appRecord is an app's desired state as stored in the apps bucket.
type appRecord struct {
	Name        string            `json:"name"`
	Release     int               `json:"release"`      // current (routed) release, 0 = none yet
	NextRelease int               `json:"next_release"` // last number handed out
	Scale       map[string]int    `json:"scale"`        // explicit `pier scale`; else the manifest decides
	Config      map[string]string `json:"config"`       // config vars set with `pier env`
	Token       string            `json:"token"`        // the app's own API token
	// Routing of the current release, copied at the swap so the router
	// needs nothing but the apps and instances buckets.
	Hosts     []string  `json:"hosts"`
	StaticDir string    `json:"static_dir,omitempty"`
	Web       bool      `json:"web"` // the release has web instances to route to
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`

	// Static maps URL prefixes to directories of the release the gateway
	// serves itself; Cache is the manifest's cache rules. Copied at the swap.
	Static map[string]string    `json:"static,omitempty"`
	Cache  []manifest.CacheRule `json:"cache,omitempty"`

	// Wake is set when the web instances sleep while idle: the current
	// release's manifest asks for web min 0 and no `pier scale web=N`
	// overrides it. Asleep says they are stopped for that reason; the
	// first request starts them again, and a restore leaves them stopped.
	Wake   bool `json:"wake,omitempty"`
	Asleep bool `json:"asleep,omitempty"`

	// Canary is a release on trial beside Release, given CanaryWeight
	// basis points (1/100 of a percent) of new clients; 0 = none.
	Canary       int `json:"canary,omitempty"`
	CanaryWeight int `json:"canary_weight,omitempty"`

	// StagingOf, on the staging copy of an app (see staging.go), names the
	// production app. A staging copy is served at its own name only, never
	// at the domains of its manifest, which belong to production.
	StagingOf string `json:"staging_of,omitempty"`
}

// releaseRecord is an immutable release as stored in the releases bucket.
type releaseRecord struct {
	api.Release
	Build    int                `json:"build"`  // the release whose directory holds the build
	Config   map[string]string  `json:"config"` // config vars at the time
	Manifest *manifest.Manifest `json:"manifest"`
	Result   *build.Result      `json:"result,omitempty"`
}

// instanceRecord is what the router needs of one instance.
type instanceRecord struct {
	App      string `json:"app"`
	Release  int    `json:"release"`
	Process  string `json:"process"`
	Instance string `json:"instance"`
	Node     string `json:"node"`
	Addr     string `json:"addr,omitempty"`
	Ready    bool   `json:"ready"`
	State    string `json:"state"`
	// Protocol is what the instance speaks to the gateway: "h2c", or ""
	// for HTTP/1.1. It is the instance's, not the app's: during a deploy
	// or a canary that changes it, instances of both kinds are routed.
	Protocol string `json:"protocol,omitempty"`
}

func releaseKey(app string, n int) string { return fmt.Sprintf("%s.%d", app, n) }

func (m *Manager) getApp(ctx context.Context, name string) (appRecord, error) {
	var a appRecord
	_, err := store.GetJSON(ctx, m.cfg.Apps, name, &a)
	if errors.Is(err, store.ErrNotFound) {
		return a, fmt.Errorf("%w: no app named %q", api.ErrNotFound, name)
	}
	return a, err
}

func (m *Manager) getRelease(ctx context.Context, app string, n int) (releaseRecord, error) {
	var r releaseRecord
	_, err := store.GetJSON(ctx, m.cfg.Releases, releaseKey(app, n), &r)
	if errors.Is(err, store.ErrNotFound) {
		return r, fmt.Errorf("%w: %s has no release v%d", api.ErrNotFound, app, n)
	}
	return r, err
}

func (m *Manager) putRelease(ctx context.Context, r *releaseRecord) error {
	_, err := store.PutJSON(ctx, m.cfg.Releases, releaseKey(r.App, r.Number), r)
	return err
}

// setReleaseStatus records a status change of an immutable release (the
// only part of a release that changes).
func (m *Manager) setReleaseStatus(ctx context.Context, app string, n int, status, errMsg string) error {
	_, err := store.Modify(ctx, m.cfg.Releases, releaseKey(app, n), func(r *releaseRecord, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: %s has no release v%d", api.ErrNotFound, app, n)
		}
		r.Status, r.Error = status, errMsg
		return nil
	})
	return err
}

func (m *Manager) listReleases(ctx context.Context, app string) ([]releaseRecord, error) {
	keys, err := m.cfg.Releases.Keys(ctx, app+".*")
	if err != nil {
		return nil, err
	}
	out := make([]releaseRecord, 0, len(keys))
	for _, k := range keys {
		var r releaseRecord
		if _, err := store.GetJSON(ctx, m.cfg.Releases, k, &r); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number > out[j].Number })
	return out, nil
}

// toAPI is the app as users see it (no token).
func (m *Manager) toAPI(a appRecord, rel *releaseRecord) api.App {
	out := api.App{
		Name:    a.Name,
		Release: a.Release,
		Scale:   map[string]int{},
		Env:     a.Config,
		Created: a.Created,
		Updated: a.Updated,
		Canary:  a.Canary,

		StagingOf: a.StagingOf,
	}
	if a.Canary != 0 {
		out.CanaryShare = float64(a.CanaryWeight) / 100
	}
	if rel != nil && rel.Manifest != nil {
		if a.StagingOf == "" {
			out.Domains = rel.Manifest.Domains
		}
		for _, p := range processTypes(rel) {
			out.Scale[p] = desired(a, rel, p)
		}
	}
	for _, h := range a.Hosts {
		if strings.HasPrefix(h, "*.") {
			continue
		}
		url := "http://" + h
		if m.cfg.HTTPPort != 80 && m.cfg.HTTPPort != 0 {
			url += fmt.Sprintf(":%d", m.cfg.HTTPPort)
		}
		out.URLs = append(out.URLs, url)
	}
	return out
}

// processTypes lists a release's process types, web first.
func processTypes(r *releaseRecord) []string {
	var out []string
	for p := range r.Processes {
		if p != "web" {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	if _, ok := r.Processes["web"]; ok {
		out = append([]string{"web"}, out...)
	}
	return out
}

// desired is how many instances of process p the app wants. An app whose
// web instances sleep while idle wants one while awake.
func desired(a appRecord, r *releaseRecord, p string) int {
	if n, ok := a.Scale[p]; ok {
		return n
	}
	if p == "web" && wakes(a, r) {
		if a.Asleep {
			return 0
		}
		return 1
	}
	if r.Manifest != nil {
		if _, ok := r.Manifest.Scale[p]; ok {
			return r.Manifest.Desired(p)
		}
	}
	return 1
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// wakes reports whether the web instances of app running r sleep while
// idle and start on the first request: r's manifest asks for web min 0
// and no explicit scale (`pier scale web=N`, 0 included) overrides it.
func wakes(a appRecord, r *releaseRecord) bool {
	if _, explicit := a.Scale["web"]; explicit || r.Manifest == nil {
		return false
	}
	if _, ok := r.Processes["web"]; !ok {
		return false
	}
	s, ok := r.Manifest.Scale["web"]
	return ok && s.Min == 0
}
