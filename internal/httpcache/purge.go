package httpcache

import (
	"net/url"
	"slices"
	"strings"
)

// Purge selects stored responses of one app to drop. A URL or prefix is
// either a path with an optional query ("/posts/1?page=2"), matching on
// every host of the app, or an absolute URL ("https://blog.example.com/posts/"),
// matching on that host only. The fields add up: a response matching any of
// them goes.
type Purge struct {
	App      string   `json:"app"`
	URLs     []string `json:"urls,omitempty"`     // exact request targets
	Prefixes []string `json:"prefixes,omitempty"` // request target prefixes
	Tags     []string `json:"tags,omitempty"`     // Cache-Tag / Surrogate-Key values
	All      bool     `json:"all,omitempty"`      // everything the app has stored
}

// Empty reports whether p selects nothing.
func (p *Purge) Empty() bool {
	return !p.All && len(p.URLs) == 0 && len(p.Prefixes) == 0 && len(p.Tags) == 0
}

// pattern is one URL or prefix of a Purge, split into host and target.
type pattern struct{ host, target string }

func parsePatterns(list []string) []pattern {
	out := make([]pattern, 0, len(list))
	for _, s := range list {
		p := pattern{target: s}
		if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
			if u, err := url.Parse(s); err == nil {
				p.host = strings.ToLower(u.Hostname())
				p.target = u.RequestURI()
				if u.Path == "" && !strings.HasSuffix(s, "/") {
					p.target = "/" + strings.TrimPrefix(p.target, "/")
				}
			}
		}
		if !strings.HasPrefix(p.target, "/") {
			p.target = "/" + p.target
		}
		out = append(out, p)
	}
	return out
}

func (p pattern) hostOK(host string) bool { return p.host == "" || p.host == host }

// Purge drops the stored responses p selects and reports how many keys
// went. It takes effect for the next request: a response being fetched
// while it runs is not stored.
func (c *Cache) Purge(p Purge) int {
	if p.Empty() || p.App == "" {
		return 0
	}
	c.gen.Add(1)
	urls, prefixes := parsePatterns(p.URLs), parsePatterns(p.Prefixes)
	n := 0
	for key, o := range c.mem.All() {
		if o.app != p.App || !p.matches(o, urls, prefixes) {
			continue
		}
		// Marks go too (the app may answer differently now) but are not
		// counted: the count is of stored responses.
		if _, ok := c.mem.Invalidate(key); ok && len(o.variants) > 0 {
			n++
		}
	}
	c.gen.Add(1)
	c.log.Debug("httpcache: purged", "app", p.App, "keys", n, "urls", len(p.URLs), "prefixes", len(p.Prefixes), "tags", len(p.Tags), "all", p.All)
	return n
}

func (p *Purge) matches(o *object, urls, prefixes []pattern) bool {
	if p.All {
		return true
	}
	for _, u := range urls {
		if u.hostOK(o.host) && o.target == u.target {
			return true
		}
	}
	for _, u := range prefixes {
		if u.hostOK(o.host) && strings.HasPrefix(o.target, u.target) {
			return true
		}
	}
	if len(p.Tags) > 0 {
		for _, v := range o.variants {
			for _, t := range v.tags {
				if slices.Contains(p.Tags, t) {
					return true
				}
			}
		}
	}
	return false
}
