package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"pier/internal/gateway"
	"pier/internal/httpcache"
)

// purgeSubject carries cache purges to every node's gateway.
const purgeSubject = "pier.cache.purge"

// gatewayCache is the gateway's shared HTTP cache: internal/httpcache
// behind the gateway's Cache interface, plus its purge API.
type gatewayCache struct {
	c    *httpcache.Cache
	node string // this engine's id on the purge subject
	log  *slog.Logger
}

var _ gateway.Cache = (*gatewayCache)(nil)

func newGatewayCache(log *slog.Logger, cfg Config) (*gatewayCache, error) {
	b := make([]byte, 8)
	rand.Read(b)
	c, err := httpcache.Open(httpcache.Options{Logger: log, MaxBytes: cfg.CacheBytes, Disk: httpcache.DiskOptions{
		Dir: cfg.CacheDisk, MaxBytes: cfg.CacheDiskBytes, MinBytes: cfg.CacheDiskMin,
	}})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &gatewayCache{c: c, node: hex.EncodeToString(b), log: log}, nil
}

// Handler converts the gateway's rules to the cache's.
func (g *gatewayCache) Handler(app string, rules []gateway.CacheRule, next http.Handler) http.Handler {
	out := make([]httpcache.Rule, len(rules))
	for i, r := range rules {
		out[i] = httpcache.Rule{Path: r.Path, TTL: r.TTL, Cache: r.Cache}
	}
	return g.c.Handler(app, out, next)
}

// purgeMessage is a purge on the store's pub/sub.
type purgeMessage struct {
	Origin string          `json:"origin"`
	Purge  httpcache.Purge `json:"purge"`
}

// PurgeRequest is the body of POST /v1/apps/{app}/cache/purge.
type PurgeRequest struct {
	URLs     []string `json:"urls,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	All      bool     `json:"all,omitempty"`
}

// start mounts the purge API (admin token, or the app's own PIER_TOKEN)
// and follows purges made on other nodes; destroyed apps lose their
// stored responses.
func (g *gatewayCache) start(ctx context.Context, h *hub) error {
	err := h.store.Subscribe(ctx, purgeSubject, func(data []byte) {
		var m purgeMessage
		if err := json.Unmarshal(data, &m); err != nil {
			g.log.Warn("cache: bad purge message", "err", err)
			return
		}
		if m.Origin != g.node {
			g.c.Purge(m.Purge)
		}
	})
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	h.api.Handle("POST /v1/apps/{app}/cache/purge", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req PurgeRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			cacheJSON(w, http.StatusBadRequest, map[string]string{"error": "bad purge request: " + err.Error()})
			return
		}
		p := httpcache.Purge{App: r.PathValue("app"), URLs: req.URLs, Prefixes: req.Prefixes, Tags: req.Tags, All: req.All}
		if p.Empty() {
			cacheJSON(w, http.StatusBadRequest, map[string]string{"error": "nothing to purge: give urls, prefixes, tags or all"})
			return
		}
		// Here first, so the caller's next request sees it; then on
		// every other node.
		n := g.c.Purge(p)
		data, _ := json.Marshal(purgeMessage{Origin: g.node, Purge: p})
		if err := h.store.Publish(purgeSubject, data); err != nil {
			cacheJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		cacheJSON(w, http.StatusOK, map[string]int{"purged": n})
	}))
	h.destroys = append(h.destroys, func(app string) {
		p := httpcache.Purge{App: app, All: true}
		g.c.Purge(p)
		data, _ := json.Marshal(purgeMessage{Origin: g.node, Purge: p})
		h.store.Publish(purgeSubject, data)
	})
	return nil
}

func cacheJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
