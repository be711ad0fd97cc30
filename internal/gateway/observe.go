package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// ObserveFunc is told about one request answered for an app: its final
// status, the response body bytes, the time taken, and what the response
// cache did with it: one of the Cache* results, or "" when no cache was in
// front of the app (or the request never reached it).
type ObserveFunc func(app string, status int, bytes int64, d time.Duration, cache string)

// The cache results an ObserveFunc is given: the X-Cache values the cache
// sets (see httpcache). Canonical constants, so a hook can compare them
// without allocating.
const (
	CacheHit         = "HIT"         // fresh, from the cache
	CacheMiss        = "MISS"        // from the app, maybe stored
	CacheStale       = "STALE"       // served stale (app down or revalidating)
	CacheRevalidated = "REVALIDATED" // from the cache after the app's 304
	CacheBypass      = "BYPASS"      // not eligible for the cache
)

// cacheResult is the response's cache result: X-Cache as the cache set it,
// reduced to the known values so an app's own X-Cache header, passed
// through when no cache sits in front, reads as "" and not as a result.
func cacheResult(h http.Header) string {
	v := h["X-Cache"]
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case CacheHit:
		return CacheHit
	case CacheMiss:
		return CacheMiss
	case CacheStale:
		return CacheStale
	case CacheRevalidated:
		return CacheRevalidated
	case CacheBypass:
		return CacheBypass
	}
	return ""
}

// observedWriter records the final status and the body bytes of a response
// for Options.Observe. Pooled: observing costs no allocation per request.
type observedWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	fc     *frontConn // Front's connection, told the clock at the end; its ow is o (not pooled)
}

var observedPool = sync.Pool{New: func() any { return new(observedWriter) }}

func observe(w http.ResponseWriter) *observedWriter {
	o := observedPool.Get().(*observedWriter)
	o.ResponseWriter, o.status, o.bytes = w, 0, 0
	return o
}

// done reports the request to the Observe hook and the access log, and
// returns o to the pool.
func (o *observedWriter) done(g *Gateway, app string, r *http.Request, id string, start time.Time) {
	status := o.status
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	end := time.Now()
	if o.fc != nil {
		o.fc.end = end
	}
	d := end.Sub(start)
	cache := cacheResult(o.ResponseWriter.Header())
	if g.observe != nil {
		g.observe(app, status, o.bytes, d, cache)
	}
	if g.access != nil {
		g.access.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("app", app),
			slog.String("method", r.Method),
			slog.String("host", r.Host),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", o.bytes),
			slog.Duration("duration", d),
			slog.String("cache", cache),
			slog.String("client", clientIP(r.RemoteAddr)),
			slog.String("id", id),
		)
	}
	if o.fc != nil {
		o.ResponseWriter, o.fc = nil, nil
		return
	}
	o.ResponseWriter = nil
	observedPool.Put(o)
}

func (o *observedWriter) WriteHeader(code int) {
	if o.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		o.status = code // 1xx other than 101 are not final
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observedWriter) Write(p []byte) (int, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	n, err := o.ResponseWriter.Write(p)
	o.bytes += int64(n)
	return n, err
}

// ReadFrom keeps sendfile for static files.
func (o *observedWriter) ReadFrom(r io.Reader) (int64, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := o.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{o.ResponseWriter}, r)
	}
	o.bytes += n
	return n, err
}

func (o *observedWriter) Flush() {
	http.NewResponseController(o.ResponseWriter).Flush()
}

// Hijack is how websockets leave HTTP: the answer was a protocol switch.
func (o *observedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if o.status == 0 {
		o.status = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(o.ResponseWriter).Hijack()
}

func (o *observedWriter) Unwrap() http.ResponseWriter { return o.ResponseWriter }
