package httpcache

import (
	"net/http"
	"strings"

	"github.com/maypok86/otter/v2"
)

// This file lets the gateway's forwarder take a request the cache would
// only pass to the app without the cache's own ResponseWriter in between:
// no capture of the response, no pass bookkeeping per request. The cache
// keeps deciding: Passing says which requests qualify, PassAnswered is
// told about each of their responses.

// Passing reports whether ServeHTTP would send r to the app at once and
// answer with the app's response and X-Cache: MISS, storing nothing and
// making nobody wait: a GET without the request fields that make the cache
// do more (slowFields: authentication, range, conditions, Cache-Control,
// protocol switch), no cache rule for its path, and a key whose last
// response was not storable, with nothing stored under it.
func (h *appHandler) Passing(r *http.Request) bool {
	if !h.passFields(r) {
		return false
	}
	var buf [256]byte
	obj, _ := h.c.mem.GetIfPresent(passKey(buf[:0], h.app, r))
	return obj != nil && obj.pass
}

// PassingMarked is Passing for a plain-HTTP request (r.TLS nil) whose key
// AppendHitPass looked up a moment before, from the same head: marked is
// what it found (looked true), used instead of a second lookup. Every
// other condition of Passing is checked on r as Passing does; without
// looked it is Passing.
func (h *appHandler) PassingMarked(r *http.Request, looked, marked bool) bool {
	if !looked || r.TLS != nil {
		return h.Passing(r)
	}
	return marked && h.passFields(r)
}

// passFields reports Passing's conditions but the key's mark: a GET, no
// cache rule for its path, no request field that makes the cache do more.
func (h *appHandler) passFields(r *http.Request) bool {
	if r.Method != http.MethodGet || h.rule(r.URL.Path) != nil {
		return false
	}
	for k := range r.Header {
		if slowField(k) {
			return false
		}
	}
	return true
}

// passKey is keyOf's key, built in buf when it fits and the host is
// ASCII (see appendKey).
func passKey(buf []byte, app string, r *http.Request) string {
	target := r.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	return appendKey(buf, app, r.Host, target, r.TLS != nil)
}

// PassAnswered is told about the response to a request Passing let
// through: its status, its Cache-Control values, and hs to build its whole
// header when those do not settle it. When ServeHTTP would have stored the
// response (the app now sends it cacheable), the key's pass mark goes, so
// that the next request goes through ServeHTTP and fills the cache: one
// response later than ServeHTTP alone would have stored it.
func (h *appHandler) PassAnswered(r *http.Request, status int, cacheControl []string, hs interface{ Header() http.Header }) {
	if !storableStatus(status) {
		return
	}
	if len(cacheControl) == 1 && (cacheControl[0] == "no-store" || cacheControl[0] == "private") {
		return // what parseDirectives would say, without its work: the common answers
	}
	// A one-entry header read by parseDirectives only: it stays on the
	// stack.
	if d := parseDirectives(http.Header{"Cache-Control": cacheControl}); d.noStore || d.private {
		return
	}
	if !decide(r, status, hs.Header(), nil, h.c.now()).store {
		return
	}
	key, _, _ := keyOf(h.app, r)
	// Only the mark goes: a response another request stored meanwhile stays.
	h.c.mem.Compute(key, func(old *object, found bool) (*object, otter.ComputeOp) {
		if found && old.pass {
			return old, otter.InvalidateOp
		}
		return old, otter.CancelOp
	})
	h.c.log.Debug("httpcache: a passed key became storable", "app", h.app, "target", strings.Clone(r.RequestURI))
}
