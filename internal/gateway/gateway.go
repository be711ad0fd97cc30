// Package gateway routes HTTP requests by host to the instances of pier's apps.
//
// The engine describes the desired routing as a list of Route values and hands
// it to SetRoutes, which builds an immutable table and swaps it in atomically;
// requests read the current table without taking a lock. A host is matched
// exactly first and then against wildcards from the most specific suffix, so a
// lookup costs a few map probes whatever the number of routes.
//
// Requests to an app go to the ready backend with the fewest requests in
// flight. An attempt that never reached an instance (the dial failed) is
// retried on another backend of the same app, and so is an idempotent request
// whose connection broke before any response byte, which is what makes the loss
// of one instance invisible to clients. Apps without backends may be served from
// a static directory.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Options configures a Gateway. The zero value is usable.
type Options struct {
	// Logger receives the gateway's logs. Per-request lines are logged at
	// Debug only. If nil, slog.Default() is used.
	Logger *slog.Logger

	// Transport carries requests to app instances. If nil, a *http.Transport
	// tuned for many keep-alive connections to local instances is used (see
	// NewTransport).
	Transport http.RoundTripper

	// Internal serves paths under InternalPrefix on every host. If nil,
	// those paths are proxied to apps like any other.
	Internal http.Handler

	// Cache, when set, is put in front of every app's proxy.
	Cache Cache

	// Observe, when set, is told about every request answered for an app
	// (see ObserveFunc). It runs on the request's goroutine after the
	// response: it must be quick.
	Observe ObserveFunc

	// AccessLog, when set, gets one Info line per request answered for an
	// app: app, method, host, path, status, bytes, duration, cache result
	// (X-Cache), client address and request id. nil = no access log.
	AccessLog *slog.Logger

	// MaxBodyBytes bounds a request body, as nginx's client_max_body_size
	// does: a larger one is answered 413 and its connection closed. If 0,
	// DefaultMaxBodyBytes; if negative, no bound (bodies without a
	// Content-Length are still buffered, up to DefaultMaxBodyBytes).
	MaxBodyBytes int64

	// Waker starts apps whose route is Wakeable when a request finds them
	// without backends; the request waits for it. If nil, such requests
	// get a 503 like any app without running instances.
	Waker Waker

	// WakeTimeout bounds the wait of a request for its app to start. If 0,
	// DefaultWakeTimeout.
	WakeTimeout time.Duration
}

// DefaultMaxBodyBytes is the request body bound when Options.MaxBodyBytes
// is 0.
const DefaultMaxBodyBytes = 16 << 20

// Cache is a shared HTTP cache the gateway puts in front of an app's proxy.
type Cache interface {
	// Handler returns the cache for app in front of next, with the app's
	// rules. next may be called after the request ended (a background
	// revalidation), with the request's context values.
	Handler(app string, rules []CacheRule, next http.Handler) http.Handler
}

// NewTransport returns the transport a Gateway uses when Options.Transport is
// nil: no proxy from the environment, 2 s dial timeout, up to 256 idle
// connections per instance kept for 90 s, HTTP/1.1 only, and no transparent
// compression (the client's Accept-Encoding goes through untouched).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0, // no overall limit; bounded per host
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		ForceAttemptHTTP2:     false,
		DisableCompression:    true,
	}
}

// Gateway is an http.Handler that routes requests by host to app instances.
// Its methods are safe for concurrent use.
type Gateway struct {
	log   *slog.Logger
	proxy *httputil.ReverseProxy
	table atomic.Pointer[table]

	// mu guards backends, statics, caches and apps, and serializes
	// SetRoutes. Request handling never takes it.
	mu       sync.Mutex
	backends map[string]*backend // by address, reused across tables
	statics  map[string]*staticSite
	caches   map[string]appCache  // by app
	apps     map[string]*appState // by app, reused across tables

	waker       Waker // nil = sleeping apps are not started
	wakeTimeout time.Duration

	cache    Cache // nil = no cache
	compress compressors

	internal http.Handler // serves InternalPrefix on every host; nil = none

	dial dialer                 // the forwarder's; nil = every request goes through proxy
	h2c  *httputil.ReverseProxy // to apps that speak h2c (h2c.go)

	// slow turns the cache's pass path and the forwarder's direct answers
	// off (forward_direct.go), and onDirect is told about each direct
	// answer: tests compare both ways.
	slow     bool
	onDirect func()

	observe ObserveFunc                // nil = none
	access  *slog.Logger               // nil = no access log
	maxBody int64                      // < 0 = no bound
	limits  atomic.Pointer[limitTable] // nil or empty = no limits
	ids     requestIDs
}

// InternalPrefix is the path prefix the gateway keeps for the engine's own
// services (error ingestion, the task API) on every host, so app code can
// reach them at the address it is served at. Apps never see these paths.
const InternalPrefix = "/_pier/"

// New returns a Gateway with an empty routing table: every host answers 404
// until SetRoutes is called.
func New(opts Options) *Gateway {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	inner := opts.Transport
	if inner == nil {
		inner = NewTransport()
	}
	g := &Gateway{
		internal: opts.Internal,
		log:      log,
		backends: make(map[string]*backend),
		statics:  make(map[string]*staticSite),
		caches:   make(map[string]appCache),
		apps:     make(map[string]*appState),
		cache:    opts.Cache,
		waker:    opts.Waker,
		observe:  opts.Observe,
		access:   opts.AccessLog,
		maxBody:  opts.MaxBodyBytes,
	}
	if g.maxBody == 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	g.wakeTimeout = opts.WakeTimeout
	if g.wakeTimeout <= 0 {
		g.wakeTimeout = DefaultWakeTimeout
	}
	g.ids.init()
	// The forwarder dials as the transport would; a RoundTripper of
	// another kind keeps every request (it may be a test's fake).
	switch t := opts.Transport.(type) {
	case nil:
		g.dial = defaultDialer()
	case *http.Transport:
		if g.dial = t.DialContext; g.dial == nil {
			g.dial = defaultDialer()
		}
	}
	g.h2c = g.newH2CProxy(g.dial, log)
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      &retryTransport{g: g, inner: inner},
		FlushInterval:  -1,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ErrorHandler:   g.proxyError,
		ModifyResponse: modifyResponse,
		BufferPool:     copyBuffers{},
	}
	g.table.Store(emptyTable)
	return g
}

// copyBuffers lends the proxy its 32 KiB copy buffers; ReverseProxy
// allocates one per response without it.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { return new([32 << 10]byte) }}

func (copyBuffers) Get() []byte  { return copyBufferPool.Get().(*[32 << 10]byte)[:] }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put((*[32 << 10]byte)(b[:32<<10])) }

// stateKey is the context key of a request's *proxyState.
type stateKey struct{}

// proxyState follows one proxied request through the ReverseProxy and its
// transport. It is used by one request at a time.
type proxyState struct {
	app    string
	route  *route // the route the request was matched to
	canary bool   // the request goes to the route's canary backends
	tried  [maxAttempts]*backend

	bodyErr error // the client's request body failed to arrive

	// fc is Front's connection when the request is the one it serves: the
	// forwarder's waits for the app are registered with it (gone.go).
	fc *frontConn

	// pass, when set, is the app's cache, which let the request through
	// (passCache): the response gets X-Cache: MISS, as the cache gives
	// it, and the cache is told about it.
	pass passCache

	// now, when not zero, is the clock (monoNow's scale) when the request
	// came in: the forwarder's pool takes it for now. A connection put
	// back counts as idle since then, which is early by the exchange's
	// length: at worst one more liveness check, or a pooled connection
	// closed early, after a long exchange.
	now int64
}

// clock is st.now when set, monoNow otherwise.
func (st *proxyState) clock() int64 {
	if st.now != 0 {
		return st.now
	}
	return monoNow()
}

// passCache is what an app's cache handler offers besides ServeHTTP when
// it can leave a request it would only pass on to the forwarder alone
// (httpcache's does): Passing reports such a request; PassAnswered is
// told about its response (status, Cache-Control values, and the whole
// header from hs when those do not settle it).
type passCache interface {
	Passing(r *http.Request) bool
	PassAnswered(r *http.Request, status int, cacheControl []string, hs interface{ Header() http.Header })
}

// passMarkCache is a passCache that takes the verdict of its own lookup of
// the request's key made by the hit path (hitPassCache) instead of looking
// again: httpcache's PassingMarked.
type passMarkCache interface {
	PassingMarked(r *http.Request, looked, marked bool) bool
}

// passing asks pc, the handler of rt, whether it lets r through, with the
// hit path's lookup when that cache made it for this very request.
func passing(pc passCache, r *http.Request, hint passHint) bool {
	if hint.cache != nil && hint.cache == any(pc) {
		if pm, ok := pc.(passMarkCache); ok {
			return pm.PassingMarked(r, true, hint.marked)
		}
	}
	return pc.Passing(r)
}

func stateFrom(ctx context.Context) *proxyState {
	st, _ := ctx.Value(stateKey{}).(*proxyState)
	return st
}

// ServeHTTP routes r by its Host header.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var hint passHint
	var fc *frontConn // Front's connection, when r is the request it parsed
	if fw, ok := w.(*frontWriter); ok && fw.fc != nil {
		hint = fw.fc.pass // Front's loop: the hit path may have looked r's key up
		if fw.fc.req != nil && &fw.fc.req.r == r {
			fc = fw.fc
		}
	}
	var ids []string // one value, shared by the request's and the response's header
	if client := r.Header["X-Request-Id"]; len(client) > 0 && saneID(client[0]) {
		ids = client[:1:1]
	} else if fc != nil {
		ids = fc.req.newID(&g.ids)
	} else {
		ids = g.ids.nextSlice()
	}
	id := ids[0]
	w.Header()["X-Request-Id"] = ids
	r.Header["X-Request-Id"] = ids // what the app is sent
	if g.internal != nil && strings.HasPrefix(r.URL.Path, InternalPrefix) {
		g.internal.ServeHTTP(w, r)
		return
	}

	var rt *route
	if fc != nil && fc.hit.rt != nil && fc.hit.tbl == g.table.Load() {
		rt = fc.hit.rt // Front's hit path looked r's host up a moment ago
	} else {
		host := normalizeHost(r.Host)
		if rt = g.table.Load().lookup(host); rt == nil {
			writeText(w, http.StatusNotFound, "pier: no app is served at host "+strconv.Quote(host))
			return
		}
	}
	// The clock, read once for the request: Front's loop read it when
	// the request was in.
	var start time.Time
	if fc != nil {
		start = fc.start
	} else {
		start = time.Now()
	}
	if g.observe != nil || g.access != nil {
		var ow *observedWriter
		if fc != nil {
			ow = &fc.ow // the connection's own: no pool
			*ow = observedWriter{ResponseWriter: w, fc: fc}
		} else {
			ow = observe(w)
		}
		defer ow.done(g, rt.app, r, id, start)
		w = ow
	}
	if g.limited(w, r, rt.app) {
		return
	}
	rt.state.touchAt(monoAt(start))
	if len(rt.backends) == 0 && rt.static != nil && !rt.wakeable {
		rt.static.serve(w, r, r.URL.Path, false)
		return
	}
	for i := range rt.mounts {
		m := &rt.mounts[i]
		if name, ok := m.match(r.URL.Path); ok && m.site.serve(w, r, name, m.fallback && (len(rt.backends) > 0 || rt.wakeable)) {
			return
		}
	}
	if len(rt.backends) == 0 && rt.wakeable && g.waker != nil {
		if rt = g.wake(w, r, rt); rt == nil {
			return
		}
		start = time.Time{} // the start took time: the forwarder reads the clock
	}
	if len(rt.backends) == 0 {
		w.Header().Set("Retry-After", "1")
		writeText(w, http.StatusServiceUnavailable, "pier: app "+strconv.Quote(rt.app)+" has no running web instances")
		return
	}
	if r.ContentLength > 0 && g.maxBody > 0 && r.ContentLength > g.maxBody {
		w.Header().Set("Connection", "close")
		writeText(w, http.StatusRequestEntityTooLarge, "pier: request body too large")
		return
	}
	if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		if !g.bufferBody(w, r) {
			return
		}
		start = time.Time{} // as after a wake
	}
	canary := rt.canary != nil && rt.canary.choose(w, r)
	if rt.handler != nil {
		if pc, ok := rt.handler.(passCache); ok && !g.slow && !canary && g.dial != nil && !rt.speaksH2C(false) && passing(pc, r, hint) {
			// The cache would only pass r on: the forwarder answers it
			// with X-Cache: MISS and tells the cache about the response.
			g.forwardFast(w, r, rt, false, pc, start)
			if fc != nil {
				fc.spare, fc.spareReq = r.Header, fc.req // the forwarder keeps nothing of them
			}
			return
		}
		if canary {
			r = r.WithContext(context.WithValue(r.Context(), canaryKey{}, true))
		}
		rt.handler.ServeHTTP(w, r) // the cache: a hit never reaches the proxy
		return
	}
	if g.forward(w, r, rt, canary, start) && fc != nil {
		fc.spare, fc.spareReq = r.Header, fc.req // the forwarder keeps nothing of them
	}
}

// forward proxies r to one of rt's backends, or of its canary's: with the
// gateway's own forwarder, or with ReverseProxy for a protocol switch
// (websockets) and when Options.Transport is not an *http.Transport. fast
// reports the gateway's forwarder, which keeps nothing of r once it returns.
//
// start is the clock when the request came in, if read (zero: not).
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, rt *route, canary bool, start time.Time) (fast bool) {
	if rt.speaksH2C(canary) && len(r.Header["Upgrade"]) == 0 && r.Method != http.MethodConnect {
		g.forwardH2C(w, r, rt, canary) // h2c.go
		return false
	}
	if g.dial != nil && len(r.Header["Upgrade"]) == 0 && r.Method != http.MethodConnect {
		g.forwardFast(w, r, rt, canary, nil, start)
		return true
	}
	st := &proxyState{app: rt.app, route: rt, canary: canary}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	g.proxy.ServeHTTP(w, r)
	return false
}

// appProxy is what an app's cache calls on a miss: the proxy to the app's
// current backends.
type appProxy struct {
	g   *Gateway
	app string
}

func (p *appProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := p.g.table.Load().byApp[p.app]
	if rt == nil || len(rt.backends) == 0 {
		w.Header().Set("Retry-After", "1")
		writeText(w, http.StatusServiceUnavailable, "pier: app "+strconv.Quote(p.app)+" has no running web instances")
		return
	}
	p.g.forward(w, r, rt, r.Context().Value(canaryKey{}) != nil, time.Time{})
}

// bufferBody reads a request body of unknown length (chunked) before it
// goes to the app, which then gets it with a Content-Length: an app server
// that does not read chunked bodies cannot be desynchronised, and a bad
// chunk is refused here with a 400 and a closed connection, before anything
// reaches the app. It reports false when it answered the request itself.
func (g *Gateway) bufferBody(w http.ResponseWriter, r *http.Request) bool {
	limit := g.maxBody
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	r.Body.Close()
	if err != nil {
		w.Header().Set("Connection", "close")
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeText(w, http.StatusRequestEntityTooLarge, "pier: request body too large")
		case isTimeout(err):
			writeText(w, http.StatusRequestTimeout, "pier: request body not received in time")
		default:
			g.log.Debug("gateway: bad request body", "host", r.Host, "path", r.URL.Path, "err", err)
			writeText(w, http.StatusBadRequest, "pier: malformed request body")
		}
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	return true
}

// isTimeout reports a deadline that passed: a client too slow to send.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rewrite prepares the outbound request. The transport picks the backend for
// each attempt, so the URL's host is a placeholder here. The Host header is the
// client's: apps see the domain they are served at.
func rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "pier-backend.invalid"
	if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
}

// modifyResponse drops the app's own X-Request-Id: ServeHTTP already set the
// one the app was sent, and ReverseProxy adds rather than replaces headers.
//
// It also refuses a protocol switch the client did not ask for. ReverseProxy
// would refuse it too, but without closing the backend connection, which
// would leak it and the backend's outstanding count; an error here makes
// ReverseProxy close it.
func modifyResponse(resp *http.Response) error {
	resp.Header.Del("X-Request-Id")
	if resp.StatusCode == http.StatusSwitchingProtocols && resp.Request != nil {
		asked, got := upgradeType(resp.Request.Header), upgradeType(resp.Header)
		if asked == "" || !strings.EqualFold(asked, got) {
			return fmt.Errorf("backend switched to protocol %q when %q was requested", got, asked)
		}
	}
	return nil
}

// upgradeType returns the protocol h asks to switch to, or "".
func upgradeType(h http.Header) string {
	for _, v := range h.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}

// proxyError answers a request no backend answered.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	g.proxyErrorState(w, r, stateFrom(r.Context()), err)
}

// proxyErrorState is proxyError with the request's state at hand.
func (g *Gateway) proxyErrorState(w http.ResponseWriter, r *http.Request, st *proxyState, err error) {
	app := ""
	if st != nil {
		app = st.app
		if st.pass != nil {
			w.Header()["X-Cache"] = xCacheMiss // as the cache marks the answers it passes
		}
		if st.bodyErr != nil && isTimeout(st.bodyErr) {
			w.Header().Set("Connection", "close")
			writeText(w, http.StatusRequestTimeout, "pier: request body not received in time")
			return
		}
	}
	if err == errClientGone || errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// Nobody to answer: the status is for the access log.
		g.log.Debug("gateway: client left before the answer", "app", app, "host", r.Host, "path", r.URL.Path)
		w.Header().Set("Connection", "close")
		w.WriteHeader(statusClientClosed)
		return
	}
	g.log.Debug("gateway: app did not answer", "app", app, "host", r.Host, "path", r.URL.Path, "err", err)
	writeText(w, http.StatusBadGateway, fmt.Sprintf("pier: app %q did not answer: %s", app, shortReason(err)))
}

// writeText writes a short plain-text answer.
func writeText(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// requestIDs makes request ids: a random prefix per gateway and a
// counter, "5f0c2a9e1b7d4c3a-1f", unique without a random read per request.
type requestIDs struct {
	prefix [17]byte // 16 hex digits and '-'
	n      atomic.Uint64
}

func (ids *requestIDs) init() {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	hex.Encode(ids.prefix[:16], b[:])
	ids.prefix[16] = '-'
}

func (ids *requestIDs) next() string {
	var buf [17 + 16]byte
	b := append(buf[:0], ids.prefix[:]...)
	b = strconv.AppendUint(b, ids.n.Add(1), 16)
	return string(b)
}

// idLen is the longest id requestIDs makes.
const idLen = 17 + 16

// nextSlice is next as the one value of a header field, made in one
// allocation with its string.
func (ids *requestIDs) nextSlice() []string {
	x := new(struct {
		v [1]string
		b [idLen]byte
	})
	b := append(x.b[:0], ids.prefix[:]...)
	b = strconv.AppendUint(b, ids.n.Add(1), 16)
	x.v[0] = unsafe.String(&x.b[0], len(b))
	return x.v[:]
}

func saneID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return true
}
