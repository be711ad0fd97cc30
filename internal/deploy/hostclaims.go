package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"pier/internal/api"
	"pier/internal/store"
)

// Two apps never share a host name. An app has the hosts of its record (its
// own <name>.<domain> and its manifest's domains:, copied at each swap) and
// the domains attached to it through the API (DomainStore). A wildcard
// "*.example.com" has every name below example.com, at any depth, as the
// gateway routes it; so a wildcard overlaps the same wildcard, any name it
// covers and any wildcard it covers or that covers it. The gateway would
// route an overlap by its own rules (exact names before wildcards, longer
// wildcards before shorter ones); a deploy or `pier domains add` that would
// make one is refused instead, naming the other app, so that no request
// reaches an app its owner did not point at it.

// hostClaim is one host name or "*.suffix" wildcard an app has.
type hostClaim struct {
	host string // lower-case, as the manifest and the domains bucket hold it
	app  string
	api  bool // attached with pier domains add, not from the app's record
}

func (c hostClaim) describe() string {
	if c.api {
		return fmt.Sprintf("app %s has %s through pier domains add", c.app, c.host)
	}
	return fmt.Sprintf("app %s is served at %s", c.app, c.host)
}

// hostIndex finds the claims that overlap a host, in time that depends on
// the host's number of labels, not on the number of claims.
type hostIndex struct {
	exact map[string]hostClaim // by host
	wild  map[string]hostClaim // by the suffix after "*."
	all   []hostClaim
}

func newHostIndex(claims []hostClaim) *hostIndex {
	x := &hostIndex{exact: map[string]hostClaim{}, wild: map[string]hostClaim{}, all: claims}
	for _, c := range claims {
		if s, ok := strings.CutPrefix(c.host, "*."); ok {
			x.wild[s] = c
		} else {
			x.exact[c.host] = c
		}
	}
	return x
}

// parents calls fn with each proper suffix of name after a dot:
// "a.b.example.com" -> "b.example.com", "example.com", "com". It stops
// when fn returns true.
func parents(name string, fn func(string) bool) {
	for rest := name; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return
		}
		rest = rest[i+1:]
		if fn(rest) {
			return
		}
	}
}

// covering returns a claim that has host, or a wildcard claim that covers
// host (a name or a wildcard), if there is one.
func (x *hostIndex) covering(host string) (hostClaim, bool) {
	name, wild := strings.CutPrefix(host, "*.")
	if wild {
		if c, ok := x.wild[name]; ok {
			return c, true
		}
	} else if c, ok := x.exact[name]; ok {
		return c, true
	}
	var found hostClaim
	var ok bool
	parents(name, func(p string) bool {
		found, ok = x.wild[p]
		return ok
	})
	return found, ok
}

// overlaps lists, one line each, the hosts of app that overlap claims of
// other apps (claims of app itself are skipped), sorted.
func overlaps(app string, hosts []string, claims []hostClaim) []string {
	others := make([]hostClaim, 0, len(claims))
	for _, c := range claims {
		if c.app != app {
			others = append(others, c)
		}
	}
	x := newHostIndex(others)
	seen := map[string]bool{}
	var out []string
	add := func(host string, c hostClaim) {
		key := host + "\x00" + c.host + "\x00" + c.app
		if !seen[key] {
			seen[key] = true
			out = append(out, fmt.Sprintf("%s (%s)", host, c.describe()))
		}
	}
	mine := map[string]string{} // suffix -> "*.suffix", the wildcards of app
	for _, h := range hosts {
		h = strings.ToLower(h)
		if c, ok := x.covering(h); ok {
			add(h, c)
		}
		if s, ok := strings.CutPrefix(h, "*."); ok {
			mine[s] = h
		}
	}
	// Names and narrower wildcards of other apps under a wildcard of app.
	if len(mine) > 0 {
		for _, c := range others {
			name := strings.TrimPrefix(c.host, "*.")
			parents(name, func(p string) bool {
				if w, ok := mine[p]; ok {
					add(w, c)
					return true
				}
				return false
			})
		}
	}
	sort.Strings(out)
	return out
}

// loadClaims reads the hosts of every app but except from the apps bucket
// and, when domains is not nil, the domains attached through the API.
func loadClaims(ctx context.Context, apps, domains *store.Bucket, except string) ([]hostClaim, error) {
	names, err := apps.Keys(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	var out []hostClaim
	for _, name := range names {
		if name == except {
			continue
		}
		var a appRecord
		if _, err := store.GetJSON(ctx, apps, name, &a); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("reading app %s: %w", name, err)
		}
		for _, h := range a.Hosts {
			out = append(out, hostClaim{host: strings.ToLower(h), app: name})
		}
	}
	if domains == nil {
		return out, nil
	}
	keys, err := domains.Keys(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("listing domains: %w", err)
	}
	for _, k := range keys {
		var sh domainShard
		if _, err := store.GetJSON(ctx, domains, k, &sh); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("reading domains %s: %w", k, err)
		}
		for h, owner := range sh {
			if owner != except {
				out = append(out, hostClaim{host: h, app: owner, api: true})
			}
		}
	}
	return out, nil
}

// hostsOf is where app a is served once rel is its current release: its
// own name under the engine's domain, and rel's manifest domains unless a
// is a staging copy (they belong to production).
func (m *Manager) hostsOf(a appRecord, rel *releaseRecord) []string {
	if a.StagingOf != "" {
		return []string{rel.App + "." + m.cfg.Domain}
	}
	return m.hosts(rel)
}

// checkHosts refuses rel when a host it would serve app a at belongs to
// another app: api.ErrConflict naming the hosts and the other apps. Two
// deploys of different apps racing for one host can both pass it; the
// gateway then serves the host by its own rules until one of them changes.
func (m *Manager) checkHosts(ctx context.Context, a appRecord, rel *releaseRecord) error {
	claims, err := loadClaims(ctx, m.cfg.Apps, m.cfg.Domains, rel.App)
	if err != nil {
		return fmt.Errorf("checking the domains of %s v%d: %w", rel.App, rel.Number, err)
	}
	if bad := overlaps(rel.App, m.hostsOf(a, rel), claims); len(bad) > 0 {
		return fmt.Errorf("%w: %s v%d: %d of its hosts belong to other apps: %s; take them out of pier.yaml's domains: or away from the other app first",
			api.ErrConflict, rel.App, rel.Number, len(bad), sample(bad))
	}
	return nil
}
