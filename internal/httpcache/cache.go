// Package httpcache is pier's shared HTTP cache, an http.Handler middleware
// the gateway puts in front of each app's proxy.
//
// It follows RFC 9111 as a shared cache: it stores responses that carry
// explicit freshness (s-maxage, max-age, Expires) and no reason not to
// (no-store, private, Set-Cookie or an authenticated request without public,
// Vary: *), selects variants by Vary, computes Age, revalidates stale
// responses with If-None-Match / If-Modified-Since, and serves stale
// responses within the app's stale-while-revalidate and stale-if-error
// windows. Per-app rules (from the manifest's cache: list) give chosen paths a
// TTL whatever the app's headers say, or keep them out of the cache.
//
// Concurrent misses on one key make one request to the app; the others wait
// for its response and are served from the cache. Stored responses live in
// memory, bounded in bytes, with W-TinyLFU admission and eviction (otter);
// with a disk tier (Open, disk.go) large bodies live in files, bounded in
// bytes too, and the memory tier keeps their heads.
// Responses can be purged by URL, by path prefix and by tag (the app's
// Cache-Tag or Surrogate-Key headers).
//
// Every response through the cache carries X-Cache: HIT (fresh, from the
// cache), MISS (from the app), STALE (served stale), REVALIDATED (from the
// cache after the app confirmed it with a 304) or BYPASS (not eligible: the
// method, a no-cache rule, an upgrade); HIT, STALE and REVALIDATED responses
// carry Age.
package httpcache

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// Options configures a Cache. The zero value is usable.
type Options struct {
	// MaxBytes bounds the memory the stored responses take, bodies and
	// headers included. If 0, 64 MiB.
	MaxBytes int64

	// MaxEntryBytes is the largest body stored; larger responses pass
	// through. If 0, 8 MiB or MaxBytes/8, whichever is smaller.
	MaxEntryBytes int64

	// StaleKeep is how long a stale response with a validator (ETag or
	// Last-Modified) is kept for revalidation after its freshness and
	// stale windows end. If 0, 10 minutes.
	StaleKeep time.Duration

	// RevalidateTimeout bounds a background revalidation
	// (stale-while-revalidate). If 0, 30 seconds.
	RevalidateTimeout time.Duration

	// Logger receives debug lines on stores and purges, and errors of
	// background revalidations. If nil, slog.Default() is used.
	Logger *slog.Logger

	// Now is the clock. If nil, time.Now.
	Now func() time.Time

	// Disk is the tier for large bodies (disk.go); Open sets it up, New
	// ignores it.
	Disk DiskOptions
}

// Rule sets how the cache treats the paths it matches, as the manifest's
// cache: list does.
type Rule struct {
	// Path is an exact URL path, or a prefix when it ends in "*".
	Path string
	// TTL is the freshness lifetime responses get whatever their headers
	// say, when Cache is true.
	TTL time.Duration
	// Cache is false for paths never served from or stored in the cache.
	Cache bool
}

func (r *Rule) matches(path string) bool {
	if prefix, ok := strings.CutSuffix(r.Path, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return path == r.Path
}

// Cache is a shared HTTP cache. Its methods are safe for concurrent use.
type Cache struct {
	log       *slog.Logger
	now       func() time.Time
	maxEntry  int64
	staleKeep time.Duration
	revalTime time.Duration
	mem       *otter.Cache[string, *object]
	clock     *otter.CoarseClock // mem's clock, see New
	disk      *diskTier          // nil without a disk tier; set by Open before any use

	// gen counts purges; a fill that saw a purge while it ran does not
	// store what it fetched.
	gen atomic.Uint64

	mu      sync.Mutex // guards flights
	flights map[string]*flight
}

// New returns an empty cache.
func New(opts Options) *Cache {
	c := &Cache{
		log:       opts.Logger,
		now:       opts.Now,
		maxEntry:  opts.MaxEntryBytes,
		staleKeep: opts.StaleKeep,
		revalTime: opts.RevalidateTimeout,
		flights:   make(map[string]*flight),
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	if c.maxEntry <= 0 {
		c.maxEntry = min(8<<20, maxBytes/8)
	}
	if c.staleKeep <= 0 {
		c.staleKeep = 10 * time.Minute
	}
	if c.revalTime <= 0 {
		c.revalTime = 30 * time.Second
	}
	// The memory tier reads its clock on every lookup, only to drop
	// objects past their keep: pier judges freshness with c.now itself.
	// A coarse clock makes that reading a load of a variable. Its time
	// lags the real one by up to memClockStep (more when its goroutine
	// runs late), and a write's deadline is counted from the precise time
	// on the clock's scale instead of the lagging one the write read, so
	// an object is never dropped before its keep, only up to about a step
	// later. baseNano is read after base, so the precise time it gives is
	// never behind the clock's own.
	base := time.Now()
	c.clock = otter.NewCoarseClock(memClockStep)
	baseNano := c.clock.NowNano()
	c.mem = otter.Must(&otter.Options[string, *object]{
		MaximumWeight: uint64(maxBytes),
		Weigher:       func(_ string, o *object) uint32 { return o.weight },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *object]) time.Duration {
			if e.Value.keep <= 0 {
				return e.Value.keep // no deadline (tests store such objects)
			}
			lag := baseNano + int64(time.Since(base)) - e.SnapshotAtNano
			return e.Value.keep + time.Duration(max(0, lag))
		}),
		Clock:            c.clock,
		OnAtomicDeletion: c.onDelete, // removes disk bodies as their objects go
	})
	return c
}

// memClockStep is how often the memory tier's coarse clock reads the time.
const memClockStep = 100 * time.Millisecond

// Close stops the cache's background goroutines and drops its content.
func (c *Cache) Close() {
	c.mem.InvalidateAll()
	c.mem.StopAllGoroutines()
	c.clock.Stop()
	if c.disk != nil {
		c.disk.close()
	}
}

// Len reports the number of stored keys (URLs with all their variants).
func (c *Cache) Len() int { return c.mem.EstimatedSize() }

// object is what one key (app, scheme, host, request target) holds: the
// variants of a response, selected by the request headers its Vary names.
// Objects are immutable; a store replaces the whole object.
type object struct {
	app, host, target string   // what purges match
	vary              []string // canonical header names; nil = no Vary
	variants          []*variant
	pass              bool // the last response was not storable: do not make requests wait for one another
	keep              time.Duration
	weight            uint32
}

// maxVariants bounds the variants kept per key; the oldest go first.
const maxVariants = 8

// variant is one stored response.
type variant struct {
	varyKey      string // the request's values of the object's Vary headers
	status       int
	header       http.Header // as the app sent it, minus per-request fields
	body         []byte
	etag         string
	lastModified string
	tags         []string
	reqTime      time.Time // when the request that fetched it left
	respTime     time.Time // when its response arrived
	initAge      time.Duration
	plan

	// disk, when set, holds the body in a file and body is nil: such a
	// variant is served only after pin, which opens the file (fh) or
	// finds it gone (a miss). fh is set only on pin's per-request copy.
	disk *diskBody
	fh   *os.File

	// wire is the response's head as the gateway writes it (see wireHead),
	// for hits answered without a header map (AppendHit); nil = hits go
	// through ServeHTTP. wire304 is the head of its 304 to an
	// If-None-Match naming its tag (wireNotModified), or nil. hasDate: the
	// stored header has a Date field.
	wire, wire304 []byte
	hasDate       bool
}

// age is the variant's current_age at now (RFC 9111 section 4.2.3).
func (v *variant) age(now time.Time) time.Duration {
	return v.initAge + max(0, now.Sub(v.respTime))
}

func (v *variant) hasValidator() bool { return v.etag != "" || v.lastModified != "" }

// usable reports whether v may still serve some request at age, directly,
// stale, or after a revalidation.
func (v *variant) usable(age time.Duration, keep time.Duration) bool {
	return age < v.fresh+max(v.swr, v.sie) || (v.hasValidator() && age < v.fresh+max(v.swr, v.sie)+keep)
}

// find returns the variant matching r, or nil.
func (o *object) find(r *http.Request) *variant {
	if o.vary == nil {
		if len(o.variants) > 0 {
			return o.variants[0]
		}
		return nil
	}
	vk := varyKey(o.vary, r.Header)
	for _, v := range o.variants {
		if v.varyKey == vk {
			return v
		}
	}
	return nil
}

// varyKey joins a request's values of the headers in names. Values are
// compared as sent, whitespace around commas aside.
func varyKey(names []string, h http.Header) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(0)
		}
		for j, v := range h[n] {
			if j > 0 {
				b.WriteByte(',')
			}
			for v != "" {
				var item string
				item, v = nextItem(v)
				b.WriteString(strings.TrimSpace(item))
				if v != "" {
					b.WriteByte(',')
				}
			}
		}
	}
	return b.String()
}

// keyOf is the cache key of r for app: scheme, host (lower case, no port)
// and request target.
func keyOf(app string, r *http.Request) (key, host, target string) {
	target = r.RequestURI
	if !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	return keyFor(app, r.Host, target, r.TLS != nil)
}

// keyFor is the cache key of a request for app with the Host field
// hostport and the origin-form target, over TLS or not.
func keyFor(app, hostport, target string, tls bool) (key, host, _ string) {
	host = hostport
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.ToLower(host)
	scheme := "h"
	if tls {
		scheme = "s"
	}
	return app + "\x00" + scheme + host + "\x00" + target, host, target
}

// appendKey is keyFor's key, built in buf when it fits and the host is
// ASCII: a lookup key, not kept, so it may point into the caller's stack.
// Otherwise keyFor makes it (strings.ToLower's Unicode rules).
func appendKey(buf []byte, app, hostport, target string, tls bool) string {
	host := hostport
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if len(app)+len(host)+len(target)+3 > cap(buf) {
		key, _, _ := keyFor(app, hostport, target, tls)
		return key
	}
	b := append(buf, app...)
	b = append(b, 0, 'h')
	if tls {
		b[len(b)-1] = 's'
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c >= 0x80 {
			key, _, _ := keyFor(app, hostport, target, tls)
			return key
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, 0)
	b = append(b, target...)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

var (
	xHit         = []string{"HIT"}
	xMiss        = []string{"MISS"}
	xStale       = []string{"STALE"}
	xBypass      = []string{"BYPASS"}
	xRevalidated = []string{"REVALIDATED"}
)

// serve answers r from v, from memory or from its pinned disk file.
// Conditional and range requests are answered by http.ServeContent; others
// by a plain write of the stored response.
func (c *Cache) serve(w http.ResponseWriter, r *http.Request, v *variant, age time.Duration, result []string) {
	h := w.Header()
	for k, vv := range v.header {
		h[k] = vv
	}
	h["X-Cache"] = result
	h["Age"] = []string{strconv.FormatInt(int64(age/time.Second), 10)}
	if v.status == http.StatusOK && (r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" ||
		r.Header.Get("If-Modified-Since") != "" || r.Header.Get("If-Match") != "" || r.Header.Get("If-Unmodified-Since") != "") {
		var mod time.Time
		if v.lastModified != "" {
			mod, _ = http.ParseTime(v.lastModified)
		}
		if h.Get("Content-Type") == "" {
			h["Content-Type"] = nil // ServeContent must not sniff one
		}
		var content io.ReadSeeker = bytes.NewReader(v.body)
		if v.fh != nil {
			content = io.NewSectionReader(v.fh, 0, v.disk.size)
		}
		http.ServeContent(w, r, "", mod, content)
		return
	}
	w.WriteHeader(v.status)
	switch {
	case r.Method == http.MethodHead:
	case v.fh != nil:
		c.disk.copyBody(w, v)
	default:
		w.Write(v.body)
	}
}

// storedHeader copies the header of a response to store: without the
// fields that belong to one request or one hop, and with a Content-Length
// that matches the body.
func storedHeader(h http.Header, bodyLen int) http.Header {
	out := make(http.Header, len(h))
	for k, vv := range h {
		switch k {
		case "X-Request-Id", "X-Cache", "Age", "Set-Cookie", "Connection", "Keep-Alive",
			"Transfer-Encoding", "Cache-Tag", "Surrogate-Key", "Content-Length":
			continue
		}
		out[k] = vv[:len(vv):len(vv)]
	}
	out["Content-Length"] = []string{strconv.Itoa(bodyLen)}
	return out
}

// tagsOf reads the Cache-Tag (comma-separated) and Surrogate-Key
// (space-separated) headers.
func tagsOf(h http.Header) []string {
	var tags []string
	for _, name := range []string{"Cache-Tag", "Surrogate-Key"} {
		for _, v := range h[name] {
			tags = append(tags, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })...)
		}
	}
	return tags
}
