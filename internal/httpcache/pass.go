package httpcache

import (
	"net/http"
	"strings"
	"unsafe"

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
	if obj == nil {
		return h.pathPassed(buf[:0], r.RequestURI)
	}
	return obj.pass
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
	key, _, target := keyOf(h.app, r)
	// Only the marks go: a response another request stored meanwhile stays.
	h.c.mem.Compute(key, func(old *object, found bool) (*object, otter.ComputeOp) {
		if found && old.pass {
			return old, otter.InvalidateOp
		}
		return old, otter.CancelOp
	})
	h.c.unmarkPath(h.app, target)
	h.c.log.Debug("httpcache: a passed key became storable", "app", h.app, "target", strings.Clone(r.RequestURI))
}

// Path marks: a key the cache has not seen yet is passed like a marked one
// when its path (in any host, with any query) lately answered a request
// Passing qualifies with a response that was not storable. Without them,
// the first request of every new host and query string went through
// ServeHTTP — a flight, a capturing writer, a mark stored — which doubled
// the gateway's CPU for such a request: an app with many domains, or whose
// URLs carry search terms or tracking parameters, paid it on most of its
// traffic. A response PassAnswered finds storable removes its path's mark
// (and the next request of its key fills the cache); so a path whose
// responses differ by host or query loses coalescing only for the requests
// that reach it before that response, and its mark then stays off for
// passKeep (unmarkPath).

// pathPassKey is the key of path's mark for app: keyFor's layout with 'p'
// where the scheme goes and no host, so it matches no request's key. path
// is a request target; its query is left out. Built in buf when it fits.
func pathPassKey(buf []byte, app, path string) string {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if len(app)+len(path)+3 > cap(buf) {
		return app + "\x00p\x00" + path
	}
	b := append(buf, app...)
	b = append(b, 0, 'p', 0)
	b = append(b, path...)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// pathPassed reports whether target's path is marked (see pathPassKey).
func (h *appHandler) pathPassed(buf []byte, target string) bool {
	if !strings.HasPrefix(target, "/") {
		return false // absolute-form: Passing's key says
	}
	obj, _ := h.c.mem.GetIfPresent(pathPassKey(buf, h.app, target))
	return obj != nil && obj.pass
}

// markPath marks target's path (see pathPassKey) and reports whether it is
// marked now.
func (c *Cache) markPath(app, target string) bool {
	if !strings.HasPrefix(target, "/") {
		return false
	}
	var buf [256]byte
	if obj, _ := c.mem.GetIfPresent(pathPassKey(buf[:0], app, target)); obj != nil {
		return obj.pass
	}
	path, _, _ := strings.Cut(target, "?")
	key := strings.Clone(pathPassKey(buf[:0], app, path))
	marked := false
	c.mem.Compute(key, func(old *object, found bool) (*object, otter.ComputeOp) {
		if found {
			marked = old.pass
			return old, otter.CancelOp
		}
		marked = true
		return &object{app: app, target: path, pass: true, keep: passKeep, weight: uint32(len(key) + 64)}, otter.WriteOp
	})
	return marked
}

// unmarkPath ends target's path mark, if there is one, for passKeep: its
// responses are storable for some hosts or queries and not for others, so
// each key goes by its own mark (a path whose mark came back with the next
// response not storable would make every new key of its storable ones
// pass once more).
func (c *Cache) unmarkPath(app, target string) {
	if !strings.HasPrefix(target, "/") {
		return
	}
	var buf [256]byte
	if obj, _ := c.mem.GetIfPresent(pathPassKey(buf[:0], app, target)); obj == nil || !obj.pass {
		return
	}
	path, _, _ := strings.Cut(target, "?")
	key := strings.Clone(pathPassKey(buf[:0], app, path))
	c.mem.Compute(key, func(old *object, found bool) (*object, otter.ComputeOp) {
		if !found || !old.pass {
			return old, otter.CancelOp
		}
		return &object{app: app, target: path, keep: passKeep, weight: old.weight}, otter.WriteOp
	})
}
