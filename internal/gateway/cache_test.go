package gateway

import (
	"net/http"

	"pier/internal/httpcache"
)

// testCache puts the real httpcache behind the gateway's Cache interface,
// as the engine does.
type testCache struct{ c *httpcache.Cache }

func (t testCache) Handler(app string, rules []CacheRule, next http.Handler) http.Handler {
	out := make([]httpcache.Rule, len(rules))
	for i, r := range rules {
		out[i] = httpcache.Rule{Path: r.Path, TTL: r.TTL, Cache: r.Cache}
	}
	return t.c.Handler(app, out, next)
}
