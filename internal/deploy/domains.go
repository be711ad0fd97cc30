package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"pier/internal/api"
	"pier/internal/manifest"
	"pier/internal/store"
)

// DomainStore keeps the domains attached to apps through the API (pier
// domains add), beside the ones their manifests list: a publisher's tens of
// thousands of customer domains, which a 64 KiB manifest cannot hold.
//
// The domains bucket holds domainShards keys, "s00" to "sff", each a JSON
// object host -> app for the hosts whose sha256 starts with that byte. So
// one host has one place, where a compare-and-set write settles which app
// claims it; a batch of 70,000 hosts is 256 writes, and the router loads
// every domain at start by reading 256 keys.
type DomainStore struct {
	domains, apps *store.Bucket
}

// domainShard is what the domains bucket holds under one key: host -> app.
type domainShard map[string]string

// NewDomainStore returns the domain store over the domains bucket; apps is
// the apps bucket, checked for the app and for hosts other apps' manifests
// claim.
func NewDomainStore(domains, apps *store.Bucket) *DomainStore {
	return &DomainStore{domains: domains, apps: apps}
}

func domainShardKey(host string) string {
	sum := sha256.Sum256([]byte(host))
	return "s" + hex.EncodeToString(sum[:1])
}

// ListDomains lists the domains attached to app, or to every app when app
// is "", sorted by host.
func (d *DomainStore) ListDomains(ctx context.Context, app string) ([]api.Domain, error) {
	if app != "" {
		if _, err := d.app(ctx, app); err != nil {
			return nil, err
		}
	}
	shards, err := d.shards(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.Domain{}
	for _, sh := range shards {
		for host, owner := range sh {
			if app == "" || owner == app {
				out = append(out, api.Domain{Host: host, App: owner})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

// AddDomains attaches hosts to app, all or none: an invalid host is
// api.ErrBadRequest, a host another app claims (through the API or its
// manifest) api.ErrConflict. Hosts app has already are left as they are.
func (d *DomainStore) AddDomains(ctx context.Context, app string, hosts []string) (api.DomainChange, error) {
	ch := api.DomainChange{App: app}
	if _, err := d.app(ctx, app); err != nil {
		return ch, err
	}
	byShard, err := groupHosts(hosts)
	if err != nil {
		return ch, err
	}
	claims, err := loadClaims(ctx, d.apps, d.domains, app)
	if err != nil {
		return ch, err
	}
	var all []string
	for _, hs := range byShard {
		all = append(all, hs...)
	}
	// Another app's host, attached or from its manifest, or one a wildcard
	// of another app covers, or a wildcard covering one of theirs.
	if conflicts := overlaps(app, all, claims); len(conflicts) > 0 {
		return ch, fmt.Errorf("%w: %d of the hosts belong to other apps: %s", api.ErrConflict, len(conflicts), sample(conflicts))
	}
	// A writer that claims one of the hosts between the check above and
	// the writes below loses to the compare-and-set; the shards written
	// before it keep their hosts, and the error says so.
	for _, key := range sortedKeys(byShard) {
		hs := byShard[key]
		var added, same int
		_, err := store.Modify(ctx, d.domains, key, func(sh *domainShard, _ bool) error {
			added, same = 0, 0
			if *sh == nil {
				*sh = domainShard{}
			}
			for _, h := range hs {
				switch (*sh)[h] {
				case app:
					same++
				case "":
					(*sh)[h] = app
					added++
				default:
					return fmt.Errorf("%w: %s was claimed by app %s meanwhile", api.ErrConflict, h, (*sh)[h])
				}
			}
			return nil
		})
		if err != nil {
			return ch, fmt.Errorf("attaching domains to %s (%d added before this): %w", app, ch.Added, err)
		}
		ch.Added += added
		ch.Unchanged += same
	}
	ch.Total, err = d.count(ctx, app)
	return ch, err
}

// RemoveDomains detaches hosts from app, all or none: a host app does not
// have is api.ErrNotFound.
func (d *DomainStore) RemoveDomains(ctx context.Context, app string, hosts []string) (api.DomainChange, error) {
	ch := api.DomainChange{App: app}
	if _, err := d.app(ctx, app); err != nil {
		return ch, err
	}
	byShard, err := groupHosts(hosts)
	if err != nil {
		return ch, err
	}
	shards, err := d.shards(ctx)
	if err != nil {
		return ch, err
	}
	var missing []string
	for key, hs := range byShard {
		for _, h := range hs {
			if shards[key][h] != app {
				missing = append(missing, h)
			}
		}
	}
	if len(missing) > 0 {
		return ch, fmt.Errorf("%w: %s has no domain %s (see pier domains %s)", api.ErrNotFound, app, sample(missing), app)
	}
	for _, key := range sortedKeys(byShard) {
		hs := byShard[key]
		var removed int
		_, err := store.Modify(ctx, d.domains, key, func(sh *domainShard, _ bool) error {
			removed = 0
			for _, h := range hs {
				if (*sh)[h] == app {
					delete(*sh, h)
					removed++
				}
			}
			return nil
		})
		if err != nil {
			return ch, fmt.Errorf("detaching domains from %s: %w", app, err)
		}
		ch.Removed += removed
	}
	ch.Total, err = d.count(ctx, app)
	return ch, err
}

// RemoveApp detaches every domain of app, which is being destroyed.
func (d *DomainStore) RemoveApp(ctx context.Context, app string) error {
	shards, err := d.shards(ctx)
	if err != nil {
		return err
	}
	for key, sh := range shards {
		has := false
		for _, owner := range sh {
			if owner == app {
				has = true
				break
			}
		}
		if !has {
			continue
		}
		if _, err := store.Modify(ctx, d.domains, key, func(sh *domainShard, _ bool) error {
			for h, owner := range *sh {
				if owner == app {
					delete(*sh, h)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("detaching the domains of %s: %w", app, err)
		}
	}
	return nil
}

func (d *DomainStore) app(ctx context.Context, name string) (appRecord, error) {
	var a appRecord
	_, err := store.GetJSON(ctx, d.apps, name, &a)
	if errors.Is(err, store.ErrNotFound) {
		return a, fmt.Errorf("%w: no app named %q", api.ErrNotFound, name)
	}
	return a, err
}

// shards reads the whole domains bucket: shard key -> host -> app.
func (d *DomainStore) shards(ctx context.Context) (map[string]domainShard, error) {
	keys, err := d.domains.Keys(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make(map[string]domainShard, len(keys))
	for _, k := range keys {
		var sh domainShard
		if _, err := store.GetJSON(ctx, d.domains, k, &sh); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return nil, err
		}
		out[k] = sh
	}
	return out, nil
}

func (d *DomainStore) count(ctx context.Context, app string) (int, error) {
	shards, err := d.shards(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sh := range shards {
		for _, owner := range sh {
			if owner == app {
				n++
			}
		}
	}
	return n, nil
}

// groupHosts checks and lower-cases hosts as the manifest does, drops
// repeats, and groups them by shard key.
func groupHosts(hosts []string) (map[string][]string, error) {
	out := make(map[string][]string)
	seen := make(map[string]bool, len(hosts))
	var bad []string
	for _, h := range hosts {
		host, err := manifest.CheckDomain(strings.TrimSuffix(strings.TrimSpace(h), "."))
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		if seen[host] {
			continue
		}
		seen[host] = true
		key := domainShardKey(host)
		out[key] = append(out[key], host)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %d invalid hosts: %s", api.ErrBadRequest, len(bad), sample(bad))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no hosts", api.ErrBadRequest)
	}
	return out, nil
}

// sample joins the first few of items, saying how many more there are.
func sample(items []string) string {
	sort.Strings(items)
	const most = 5
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:most], ", ") + fmt.Sprintf(" and %d more", len(items)-most)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// domainHosts is the router's view of the domains bucket: the latest value
// of each shard, and from them the extra hosts of each app.
type domainHosts struct {
	shards map[string]domainShard
	byApp  map[string][]string // nil when shards changed since it was built
}

func newDomainHosts() *domainHosts { return &domainHosts{shards: map[string]domainShard{}} }

// apply records one change of the domains bucket.
func (d *domainHosts) apply(e store.Entry) error {
	d.byApp = nil
	if e.Deleted {
		delete(d.shards, e.Key)
		return nil
	}
	var sh domainShard
	if err := json.Unmarshal(e.Value, &sh); err != nil {
		delete(d.shards, e.Key)
		return err
	}
	d.shards[e.Key] = sh
	return nil
}

// hosts returns app -> its API domains, rebuilt only after a change.
func (d *domainHosts) hosts() map[string][]string {
	if d.byApp != nil {
		return d.byApp
	}
	d.byApp = map[string][]string{}
	for _, sh := range d.shards {
		for h, app := range sh {
			d.byApp[app] = append(d.byApp[app], h)
		}
	}
	return d.byApp
}
