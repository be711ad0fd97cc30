package httpcache

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// origin is a real upstream app behind a real reverse proxy, with the cache
// in front, served on a real socket.
type origin struct {
	t        *testing.T
	cache    *Cache
	clock    *clock
	hits     atomic.Int64 // requests the app answered
	url      string       // the cache's address
	upstream *httptest.Server
	client   *http.Client
}

// newOrigin starts app behind the cache with rules.
func newOrigin(t *testing.T, opts Options, rules []Rule, app http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{t: t, clock: &clock{now: time.Now().Truncate(time.Second)}}
	o.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		w.Header().Set("Date", o.clock.Now().UTC().Format(http.TimeFormat)) // the app shares the cache's clock
		app(w, r)
	}))
	t.Cleanup(o.upstream.Close)
	target, _ := url.Parse(o.upstream.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)
	proxy.FlushInterval = -1
	if opts.Now == nil {
		opts.Now = o.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if o.cache, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.cache.Close)
	front := httptest.NewServer(o.cache.Handler("app", rules, proxy))
	t.Cleanup(front.Close)
	o.url = front.URL
	tr := &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	o.client = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	return o
}

type result struct {
	status int
	body   string
	cache  string
	age    string
	header http.Header
}

// do sends a request through the cache; hdr is "Name: value" lines.
func (o *origin) do(method, path string, hdr ...string) result {
	o.t.Helper()
	req, err := http.NewRequest(method, o.url+path, nil)
	if err != nil {
		o.t.Fatal(err)
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := o.client.Do(req)
	if err != nil {
		o.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		o.t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return result{resp.StatusCode, string(b), resp.Header.Get("X-Cache"), resp.Header.Get("Age"), resp.Header}
}

func (o *origin) get(path string, hdr ...string) result {
	o.t.Helper()
	return o.do("GET", path, hdr...)
}

// expect checks a result's X-Cache and body.
func expect(t *testing.T, what string, r result, cache, body string) {
	t.Helper()
	if r.cache != cache || r.body != body {
		t.Fatalf("%s: got X-Cache %q body %q (status %d), want %q %q", what, r.cache, r.body, r.status, cache, body)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
