package httpcache

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
)

// Handler returns the cache in front of next for app, with the app's rules
// (first match wins). next is the app's proxy; it may be called from a
// background goroutine with a context detached from the client's, for
// stale-while-revalidate.
func (c *Cache) Handler(app string, rules []Rule, next http.Handler) http.Handler {
	return &appHandler{c: c, app: app, rules: slices.Clone(rules), next: next}
}

type appHandler struct {
	c     *Cache
	app   string
	rules []Rule
	next  http.Handler
}

func (h *appHandler) rule(path string) *Rule {
	for i := range h.rules {
		if h.rules[i].matches(path) {
			return &h.rules[i]
		}
	}
	return nil
}

// flight is one request to the app that other requests for the same key
// wait for.
type flight struct {
	done chan struct{}
	once sync.Once
}

func (f *flight) release() { f.once.Do(func() { close(f.done) }) }

// join returns the key's flight and whether the caller leads it.
func (c *Cache) join(key string) (*flight, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.flights[key]; f != nil {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	return f, true
}

// leave ends the caller's flight and wakes its waiters.
func (c *Cache) leave(key string, f *flight) {
	c.mu.Lock()
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.mu.Unlock()
	f.release()
}

func (h *appHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := h.c
	rule := h.rule(r.URL.Path)
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || (rule != nil && !rule.Cache) ||
		r.Header.Get("Upgrade") != "" || noStoreRequest(r) {
		w.Header()["X-Cache"] = xBypass
		h.next.ServeHTTP(w, r)
		return
	}
	if rule != nil && rule.TTL <= 0 {
		rule = nil
	}
	key, host, target := keyOf(h.app, r)
	authenticated := r.Header.Get("Authorization") != ""
	for waited := false; ; waited = true {
		var stale *variant
		var obj *object
		if !authenticated {
			obj, _ = c.mem.GetIfPresent(key)
		}
		if obj != nil {
			v := obj.find(r)
			if v != nil && v.disk != nil {
				// A body on disk: open it now, or take it as missing.
				if v = c.pin(v); v != nil {
					defer v.fh.Close()
				}
			}
			if v != nil {
				now := c.now()
				age := v.age(now)
				switch {
				case age < v.fresh && !v.noCache:
					c.serve(w, r, v, age, xHit)
					return
				case !v.mustRevalidate && !v.noCache && age < v.fresh+v.swr:
					c.serve(w, r, v, age, xStale)
					h.revalidateLater(key, r, rule, v, obj)
					return
				case v.usable(age, c.staleKeep):
					stale = v
				}
			}
		}
		if stale == nil && (r.Method == http.MethodHead || r.Header.Get("Range") != "") {
			// Not worth a fill: pass through, do not store.
			w.Header()["X-Cache"] = xMiss
			h.next.ServeHTTP(w, r)
			return
		}
		if !authenticated && !waited && (obj == nil || !obj.pass) {
			f, leader := c.join(key)
			if !leader {
				select {
				case <-f.done:
					continue // look again: the leader may have stored it
				case <-r.Context().Done():
					return
				}
			}
			defer c.leave(key, f)
			h.fill(w, r, key, host, target, rule, stale, obj, f)
			return
		}
		h.fill(w, r, key, host, target, rule, stale, obj, nil)
		return
	}
}

// noStoreRequest reports a request that says no-store: it is neither
// answered from nor stored in the cache. Other request directives
// (no-cache, max-age=0) are ignored, as shared caches usually do, so a
// client cannot make every request reach the app.
func noStoreRequest(r *http.Request) bool {
	if len(r.Header["Cache-Control"]) == 0 {
		return false
	}
	return parseDirectives(r.Header).noStore
}

// fill sends r to the app, answering the client (w, nil for a background
// revalidation) and storing the response when it may. stale, when set, is
// the stored variant to revalidate, or to serve if the app fails and its
// stale-if-error window allows.
func (h *appHandler) fill(w http.ResponseWriter, r *http.Request, key, host, target string, rule *Rule, stale *variant, obj *object, fl *flight) {
	c := h.c
	gen := c.gen.Load()
	out := r
	revalidating := stale != nil && stale.hasValidator()
	if revalidating {
		out = r.Clone(r.Context())
		out.Header.Del("If-None-Match")
		out.Header.Del("If-Modified-Since")
		out.Header.Del("If-Match")
		out.Header.Del("If-Unmodified-Since")
		out.Header.Del("If-Range")
		out.Header.Del("Range")
		if stale.etag != "" {
			out.Header.Set("If-None-Match", stale.etag)
		}
		if stale.lastModified != "" {
			out.Header.Set("If-Modified-Since", stale.lastModified)
		}
	}
	cw := &captureWriter{
		c: c, w: w, req: r, rule: rule, fl: fl,
		revalidating: revalidating,
		guard:        stale != nil && !stale.mustRevalidate && stale.sie > 0 && stale.age(c.now()) < stale.fresh+stale.sie,
		reqTime:      c.now(),
	}
	defer cw.dropSpill() // a body written to disk and not stored goes
	if w != nil {
		cw.flusher, _ = w.(http.Flusher)
	}
	if cw.guard || w == nil {
		cw.header = make(http.Header)
	} else {
		cw.header = w.Header()
	}
	h.next.ServeHTTP(cw, out)
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}

	switch {
	case cw.notModified:
		v := c.refreshed(r, stale, cw.header, cw.reqTime, cw.respTime, rule)
		if c.gen.Load() == gen {
			c.put(key, host, target, h.app, v, obj, r)
		}
		if w != nil {
			c.serve(w, r, v, v.age(c.now()), xRevalidated)
		}
	case cw.failed:
		if w != nil {
			c.serve(w, r, stale, stale.age(c.now()), xStale)
		}
	case cw.plan.store && !cw.overflow && c.gen.Load() == gen && cw.complete():
		cw.stored["Content-Length"] = []string{strconv.Itoa(len(cw.buf))}
		v := &variant{
			status:       cw.status,
			header:       cw.stored,
			body:         cw.buf,
			etag:         cw.stored.Get("ETag"),
			lastModified: cw.stored.Get("Last-Modified"),
			tags:         cw.tags,
			reqTime:      cw.reqTime,
			respTime:     cw.respTime,
			initAge:      cw.initAge,
			plan:         cw.plan,
		}
		if cw.spill != nil && !cw.commitSpill(key, v) {
			break
		}
		c.put(key, host, target, h.app, v, obj, r)
		c.unmarkPath(h.app, target)
	case !cw.plan.store && cw.status != http.StatusNotModified:
		// A request Passing would take once marked marks its path, which
		// then stands for its key too (see pathPassKey).
		if !h.passFields(r) || !c.markPath(h.app, target) {
			c.markPass(key, host, target, h.app)
		}
	}
}

// revalidateLater refreshes v in the background (stale-while-revalidate),
// unless a request for the key is already on its way to the app.
func (h *appHandler) revalidateLater(key string, r *http.Request, rule *Rule, v *variant, obj *object) {
	f, leader := h.c.join(key)
	if !leader {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.c.revalTime)
	out := r.Clone(ctx)
	_, host, target := keyOf(h.app, r)
	go func() {
		defer cancel()
		defer h.c.leave(key, f)
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				h.c.log.Error("httpcache: background revalidation panicked", "app", h.app, "target", target, "panic", fmt.Sprint(p))
			}
		}()
		h.fill(nil, out, key, host, target, rule, v, obj, nil)
	}()
}

// refreshed is stale updated by a 304 (RFC 9111 section 4.3.4): its
// header fields replaced by those of the 304, its age restarted.
func (c *Cache) refreshed(r *http.Request, stale *variant, h304 http.Header, reqTime, respTime time.Time, rule *Rule) *variant {
	header := make(http.Header, len(stale.header))
	for k, vv := range stale.header {
		header[k] = vv
	}
	for k, vv := range h304 {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Range", "Transfer-Encoding", "X-Request-Id", "X-Cache",
			"Set-Cookie", "Connection", "Keep-Alive", "Cache-Tag", "Surrogate-Key", "Age":
			continue
		}
		header[k] = vv[:len(vv):len(vv)]
	}
	v := *stale
	v.header = header
	v.reqTime, v.respTime = reqTime, respTime
	v.initAge = initialAge(h304, reqTime, respTime)
	if p := decide(r, stale.status, header, rule, respTime); p.store {
		v.plan = p
	} else {
		v.plan = plan{store: true, fresh: 0, noCache: true}
	}
	v.etag, v.lastModified = header.Get("ETag"), header.Get("Last-Modified")
	return &v
}

// put stores v under key, beside the other variants of the same object
// when the Vary header names did not change.
func (c *Cache) put(key, host, target, app string, v *variant, _ *object, r *http.Request) {
	vary := varyNames(v.header)
	if vary != nil {
		v.varyKey = varyKey(vary, r.Header)
	}
	v.wire = wireHead(v.status, v.header, len(v.body))
	if v.wire304 = nil; v.wire != nil && v.status == http.StatusOK && v.etag != "" {
		v.wire304 = wireNotModified(v.header, v.etag)
	}
	_, v.hasDate = v.header["Date"]
	if v.disk != nil {
		// Stored without the request's open file; hits take ServeHTTP.
		cp := *v
		v, cp.fh, cp.wire = &cp, nil, nil
	}
	var replaced, stored *object
	c.mem.Compute(key, func(old *object, found bool) (*object, otter.ComputeOp) {
		o := &object{app: app, host: host, target: target, vary: vary}
		if found {
			replaced, stored = old, o
		}
		if found && !old.pass && slices.Equal(old.vary, vary) && vary != nil {
			for _, ov := range old.variants {
				if ov.varyKey != v.varyKey {
					o.variants = append(o.variants, ov)
				}
			}
			if len(o.variants) >= maxVariants {
				o.variants = o.variants[len(o.variants)-maxVariants+1:]
			}
		}
		o.variants = append(o.variants, v)
		c.size(o)
		return o, otter.WriteOp
	})
	c.dropped(replaced, stored) // the disk bodies of the variants o did not keep
	c.log.Debug("httpcache: stored", "app", app, "host", host, "target", target, "status", v.status,
		"bytes", len(v.body), "fresh", v.fresh)
}

// passKeep is how long a key whose response was not storable lets its
// requests reach the app in parallel, without waiting for one another.
const passKeep = time.Minute

// markPass records that key's last response was not storable, unless a
// stored response is there.
func (c *Cache) markPass(key, host, target, app string) {
	c.mem.Compute(key, func(old *object, found bool) (*object, otter.ComputeOp) {
		if found {
			return old, otter.CancelOp // a stored response, or already marked
		}
		o := &object{app: app, host: host, target: target, pass: true, keep: passKeep}
		o.weight = uint32(len(key) + 64)
		return o, otter.WriteOp
	})
}

// size sets o's weight and how long the memory tier keeps it.
func (c *Cache) size(o *object) {
	w := len(o.host) + len(o.target) + len(o.app) + 128
	var keep time.Duration
	for _, v := range o.variants {
		w += len(v.body) + len(v.varyKey) + len(v.wire) + len(v.wire304) + 160
		for k, vv := range v.header {
			w += len(k) + 8
			for _, s := range vv {
				w += len(s) + 16
			}
		}
		life := v.fresh + max(v.swr, v.sie) - v.initAge
		if v.hasValidator() {
			life += c.staleKeep
		}
		keep = max(keep, life)
	}
	o.weight = uint32(min(w, 1<<31))
	o.keep = max(keep, time.Second)
}

// captureWriter is the ResponseWriter of a fill: it forwards the app's
// response to the client (when there is one and it should) while keeping a
// copy of a storable response.
type captureWriter struct {
	c       *Cache
	w       http.ResponseWriter // the client; nil in the background
	flusher http.Flusher
	req     *http.Request
	rule    *Rule
	fl      *flight // released early when the response is not storable

	revalidating bool // the request carries the stored validators
	guard        bool // a 5xx may be replaced by the stale response

	header      http.Header // w.Header(), or a separate one when the response may be swallowed
	wroteHeader bool
	status      int
	plan        plan
	stored      http.Header
	tags        []string
	buf         []byte
	written     int64
	overflow    bool
	swallow     bool // the response is not for the client: 304 or a replaced error
	notModified bool
	failed      bool
	forwardErr  error
	spill       *spill // the body being written to the disk tier

	reqTime, respTime time.Time
	initAge           time.Duration
}

func (cw *captureWriter) Header() http.Header { return cw.header }

func (cw *captureWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		if !cw.wroteHeader && cw.w != nil && !cw.guard {
			cw.w.WriteHeader(code) // informational: pass it through
		}
		return
	}
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader = true
	cw.status = code
	cw.respTime = cw.c.now()
	switch {
	case code == http.StatusNotModified && cw.revalidating:
		cw.swallow, cw.notModified = true, true
		return
	case cw.guard && isServerError(code):
		cw.swallow, cw.failed = true, true
		return
	}
	cw.plan = decide(cw.req, code, cw.header, cw.rule, cw.respTime)
	if cw.plan.store {
		cw.stored = storedHeader(cw.header, 0)
		cw.initAge = initialAge(cw.header, cw.reqTime, cw.respTime)
		cw.tags = tagsOf(cw.header)
		if cl := cw.header.Get("Content-Length"); cl != "" {
			if n, ok := parseLength(cl); ok && !cw.c.fits(n) {
				cw.overflow = true
			}
		}
	} else if cw.fl != nil {
		cw.fl.release() // the waiters go to the app themselves
	}
	if cw.w == nil {
		cw.swallow = true
		return
	}
	dst := cw.w.Header()
	if cw.guard {
		for k, vv := range cw.header {
			dst[k] = vv
		}
	}
	if cw.plan.store {
		delete(dst, "Cache-Tag")
		delete(dst, "Surrogate-Key")
	}
	dst["X-Cache"] = xMiss
	cw.w.WriteHeader(code)
}

func isServerError(code int) bool {
	return code == 500 || code == 502 || code == 503 || code == 504
}

func (cw *captureWriter) Write(p []byte) (int, error) {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	cw.written += int64(len(p))
	if cw.plan.store && !cw.overflow && !cw.notModified && !cw.failed && (cw.c.disk == nil || !cw.toDisk(p)) {
		if int64(len(cw.buf)+len(p)) > cw.c.maxEntry {
			cw.overflow, cw.buf = true, nil
		} else {
			cw.buf = append(cw.buf, p...)
		}
	}
	if cw.swallow {
		return len(p), nil
	}
	n, err := cw.w.Write(p)
	if err != nil && cw.forwardErr == nil {
		cw.forwardErr = err
	}
	return n, err
}

// Flush passes flushes (streamed responses) to the client.
func (cw *captureWriter) Flush() {
	if !cw.swallow && cw.flusher != nil && cw.wroteHeader {
		cw.flusher.Flush()
	}
}

// Unwrap lets http.ResponseController reach the client's connection
// (deadlines).
func (cw *captureWriter) Unwrap() http.ResponseWriter { return cw.w }

// complete reports whether the whole body arrived: as long as its
// Content-Length said, when it said one.
func (cw *captureWriter) complete() bool {
	if cl := cw.header.Get("Content-Length"); cl != "" {
		n, ok := parseLength(cl)
		return ok && n == cw.written
	}
	return true
}

func parseLength(s string) (int64, bool) {
	var n int64
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}
