package httpcache

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHitAndAge(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", n.Add(1))
	})
	expect(t, "first", o.get("/a"), "MISS", "v1")
	o.clock.advance(10 * time.Second)
	r := o.get("/a")
	expect(t, "second", r, "HIT", "v1")
	if r.age != "10" {
		t.Errorf("Age = %q, want 10", r.age)
	}
	if got := r.header.Get("Content-Length"); got != "2" {
		t.Errorf("Content-Length = %q, want 2", got)
	}
	expect(t, "other path", o.get("/b"), "MISS", "v2")
	expect(t, "query is part of the key", o.get("/a?x=1"), "MISS", "v3")
	o.clock.advance(51 * time.Second)
	expect(t, "expired", o.get("/a"), "MISS", "v4")
	if got := o.hits.Load(); got != 4 {
		t.Errorf("app answered %d requests, want 4", got)
	}
	r = o.do("HEAD", "/a")
	if r.cache != "HIT" || r.body != "" || r.status != 200 {
		t.Errorf("HEAD on a stored response: %q %q %d", r.cache, r.body, r.status)
	}
}

func TestFreshness(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		req    []string
		stored bool
	}{
		{"max-age", map[string]string{"Cache-Control": "max-age=60"}, nil, true},
		{"s-maxage", map[string]string{"Cache-Control": "s-maxage=60"}, nil, true},
		{"s-maxage wins over max-age=0", map[string]string{"Cache-Control": "max-age=0, s-maxage=60"}, nil, true},
		{"expires", map[string]string{"Expires": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, nil, true},
		{"expires in the past", map[string]string{"Expires": time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}, nil, false},
		{"no headers", map[string]string{}, nil, false},
		{"no-store", map[string]string{"Cache-Control": "max-age=60, no-store"}, nil, false},
		{"private", map[string]string{"Cache-Control": "private, max-age=60"}, nil, false},
		{"qualified private", map[string]string{"Cache-Control": `max-age=60, private="Set-Cookie, X-Y"`}, nil, false},
		{"set-cookie", map[string]string{"Cache-Control": "max-age=60", "Set-Cookie": "s=1"}, nil, false},
		{"set-cookie public", map[string]string{"Cache-Control": "public, max-age=60", "Set-Cookie": "s=1"}, nil, true},
		{"vary star", map[string]string{"Cache-Control": "max-age=60", "Vary": "*"}, nil, false},
		{"authorization", map[string]string{"Cache-Control": "max-age=60"}, []string{"Authorization: Bearer x"}, false},
		{"request no-store", map[string]string{"Cache-Control": "max-age=60"}, []string{"Cache-Control: no-store"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				io := "body"
				w.Write([]byte(io))
			})
			o.get("/x", tt.req...)
			r := o.get("/x", tt.req...)
			if got := r.cache == "HIT"; got != tt.stored {
				t.Errorf("second request X-Cache %q; want stored=%v", r.cache, tt.stored)
			}
			if r.header.Get("Set-Cookie") != "" && r.cache == "HIT" && !strings.Contains(tt.header["Cache-Control"], "public") {
				t.Errorf("a Set-Cookie was served from the cache")
			}
		})
	}
}

func TestSetCookieNeverReplayed(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, Options{}, []Rule{{Path: "/login", TTL: time.Hour, Cache: true}}, func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: fmt.Sprint(n.Add(1))})
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte("hello"))
	})
	for i := 1; i <= 3; i++ {
		r := o.get("/login")
		if r.cache != "MISS" || !strings.Contains(r.header.Get("Set-Cookie"), fmt.Sprint("session=", i)) {
			t.Fatalf("request %d: X-Cache %q Set-Cookie %q", i, r.cache, r.header.Get("Set-Cookie"))
		}
	}
}

func TestVary(t *testing.T) {
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	expect(t, "en miss", o.get("/", "Accept-Language: en"), "MISS", "lang=en")
	expect(t, "fr miss", o.get("/", "Accept-Language: fr"), "MISS", "lang=fr")
	expect(t, "en hit", o.get("/", "Accept-Language: en"), "HIT", "lang=en")
	expect(t, "fr hit", o.get("/", "Accept-Language: fr"), "HIT", "lang=fr")
	expect(t, "none miss", o.get("/"), "MISS", "lang=")
	expect(t, "none hit", o.get("/"), "HIT", "lang=")
	if got := o.hits.Load(); got != 3 {
		t.Errorf("app answered %d requests, want 3", got)
	}
}

func TestRevalidation(t *testing.T) {
	for _, validator := range []string{"ETag", "Last-Modified"} {
		t.Run(validator, func(t *testing.T) {
			var conditional atomic.Int64
			modified := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
			o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=10")
				if validator == "ETag" {
					w.Header().Set("ETag", `"abc"`)
					if r.Header.Get("If-None-Match") == `"abc"` {
						conditional.Add(1)
						w.WriteHeader(http.StatusNotModified)
						return
					}
				} else {
					w.Header().Set("Last-Modified", modified)
					if r.Header.Get("If-Modified-Since") == modified {
						conditional.Add(1)
						w.WriteHeader(http.StatusNotModified)
						return
					}
				}
				w.Write([]byte("full body"))
			})
			expect(t, "first", o.get("/r"), "MISS", "full body")
			o.clock.advance(11 * time.Second)
			expect(t, "stale, revalidated", o.get("/r"), "REVALIDATED", "full body")
			if conditional.Load() != 1 {
				t.Fatalf("app got %d conditional requests, want 1", conditional.Load())
			}
			expect(t, "fresh again", o.get("/r"), "HIT", "full body")
			if got := o.hits.Load(); got != 2 {
				t.Errorf("app answered %d requests, want 2", got)
			}
		})
	}
}

func TestClientConditionalOnHit(t *testing.T) {
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		w.Write([]byte("0123456789"))
	})
	o.get("/c")
	if r := o.get("/c", `If-None-Match: "v1"`); r.status != http.StatusNotModified || r.cache != "HIT" {
		t.Errorf("If-None-Match on a hit: %d %q, want 304 HIT", r.status, r.cache)
	}
	if r := o.get("/c", "Range: bytes=2-4"); r.status != http.StatusPartialContent || r.body != "234" {
		t.Errorf("Range on a hit: %d %q, want 206 \"234\"", r.status, r.body)
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("app answered %d requests, want 1", got)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		fmt.Fprintf(w, "v%d", n.Add(1))
	})
	expect(t, "first", o.get("/s"), "MISS", "v1")
	o.clock.advance(20 * time.Second)
	expect(t, "stale", o.get("/s"), "STALE", "v1")
	waitFor(t, "the background revalidation", func() bool { return o.get("/s").body == "v2" })
	expect(t, "fresh", o.get("/s"), "HIT", "v2")
	o.clock.advance(2 * time.Minute)
	expect(t, "past the window", o.get("/s"), "MISS", "v3")
}

func TestStaleIfError(t *testing.T) {
	var failing atomic.Bool
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
		w.Write([]byte("good"))
	})
	expect(t, "first", o.get("/e"), "MISS", "good")
	failing.Store(true)
	o.clock.advance(20 * time.Second)
	r := o.get("/e")
	expect(t, "app fails", r, "STALE", "good")
	if r.status != 200 {
		t.Errorf("status %d, want 200", r.status)
	}
	o.upstream.Close() // the app is gone: the proxy answers 502
	expect(t, "app down", o.get("/e"), "STALE", "good")
	o.clock.advance(time.Minute)
	if r := o.get("/e"); r.status != http.StatusBadGateway || r.cache != "MISS" {
		t.Errorf("past stale-if-error: %d %q, want 502 MISS", r.status, r.cache)
	}
}

func TestMustRevalidateNeverStale(t *testing.T) {
	var failing atomic.Bool
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "broken", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=10, must-revalidate, stale-if-error=60, stale-while-revalidate=60")
		w.Write([]byte("good"))
	})
	o.get("/m")
	failing.Store(true)
	o.clock.advance(20 * time.Second)
	if r := o.get("/m"); r.status != http.StatusServiceUnavailable {
		t.Errorf("must-revalidate served %d %q %q, want the 503", r.status, r.cache, r.body)
	}
}

func TestRules(t *testing.T) {
	var n atomic.Int64
	rules := []Rule{
		{Path: "/comments/count", TTL: 5 * time.Minute, Cache: true},
		{Path: "/private/*", Cache: false},
		{Path: "/feeds/*", TTL: time.Minute, Cache: true},
	}
	o := newOrigin(t, Options{}, rules, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/private/") {
			w.Header().Set("Cache-Control", "public, max-age=600")
		}
		fmt.Fprintf(w, "v%d", n.Add(1))
	})
	expect(t, "rule miss", o.get("/comments/count"), "MISS", "v1")
	o.clock.advance(4 * time.Minute)
	expect(t, "rule hit without headers", o.get("/comments/count"), "HIT", "v1")
	o.clock.advance(2 * time.Minute)
	expect(t, "rule ttl over", o.get("/comments/count"), "MISS", "v2")
	expect(t, "never cached", o.get("/private/a"), "BYPASS", "v3")
	expect(t, "never cached again", o.get("/private/a"), "BYPASS", "v4")
	expect(t, "prefix rule", o.get("/feeds/x.xml"), "MISS", "v5")
	expect(t, "prefix rule hit", o.get("/feeds/x.xml"), "HIT", "v5")
	expect(t, "no rule, no headers", o.get("/other"), "MISS", "v6")
	expect(t, "no rule, no headers again", o.get("/other"), "MISS", "v7")
}

func TestCoalescing(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("once"))
	})
	const clients = 100
	var wg sync.WaitGroup
	results := make([]result, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = o.get("/slow")
		}()
	}
	waitFor(t, "the first request to reach the app", func() bool { return o.hits.Load() == 1 })
	// The others are waiting for it, or have not arrived yet and will
	// find the stored response.
	close(release)
	wg.Wait()
	for i, r := range results {
		if r.body != "once" || r.status != 200 {
			t.Fatalf("client %d: %d %q", i, r.status, r.body)
		}
	}
	if got := o.hits.Load(); got != 1 {
		t.Errorf("%d concurrent misses made %d requests to the app, want 1", clients, got)
	}
}

func TestCoalescingUncacheable(t *testing.T) {
	// Waiters of a response that turns out not storable go to the app
	// themselves instead of failing or waiting for its body.
	var n atomic.Int64
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "v%d", n.Add(1))
	})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := o.get("/u"); r.cache != "MISS" || !strings.HasPrefix(r.body, "v") {
				t.Errorf("got %q %q", r.cache, r.body)
			}
		}()
	}
	wg.Wait()
	if got := o.hits.Load(); got != 20 {
		t.Errorf("app answered %d of 20 uncacheable requests", got)
	}
}

func TestPurge(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if strings.HasPrefix(r.URL.Path, "/posts/") {
			w.Header().Set("Cache-Tag", "posts, post-"+strings.TrimPrefix(r.URL.Path, "/posts/"))
			w.Header().Set("Surrogate-Key", "everything")
		}
		fmt.Fprintf(w, "v%d", n.Add(1))
	})
	paths := []string{"/posts/1", "/posts/2", "/about", "/about?x=1"}
	fill := func() {
		for _, p := range paths {
			o.get(p)
		}
	}
	hit := func(p string) bool { return o.get(p).cache == "HIT" }
	fill()
	for _, p := range paths {
		if !hit(p) {
			t.Fatalf("%s not stored", p)
		}
	}
	if r := o.get("/posts/1"); r.header.Get("Cache-Tag") != "" || r.header.Get("Surrogate-Key") != "" {
		t.Errorf("tag headers reached the client: %v", r.header)
	}

	tests := []struct {
		purge Purge
		gone  []string
	}{
		{Purge{URLs: []string{"/about"}}, []string{"/about"}},
		{Purge{URLs: []string{"http://" + strings.TrimPrefix(o.url, "http://") + "/about?x=1"}}, []string{"/about?x=1"}},
		{Purge{URLs: []string{"http://elsewhere.example/posts/1"}}, nil},
		{Purge{Prefixes: []string{"/posts/"}}, []string{"/posts/1", "/posts/2"}},
		{Purge{Tags: []string{"post-2"}}, []string{"/posts/2"}},
		{Purge{Tags: []string{"everything"}}, []string{"/posts/1", "/posts/2"}},
		{Purge{All: true}, paths},
		{Purge{App: "other", All: true}, nil},
	}
	for i, tt := range tests {
		fill()
		p := tt.purge
		if p.App == "" {
			p.App = "app"
		}
		if got := o.cache.Purge(p); got != len(tt.gone) {
			t.Errorf("purge %d (%+v) dropped %d keys, want %d", i, p, got, len(tt.gone))
		}
		for _, path := range paths {
			want := true
			for _, g := range tt.gone {
				if g == path {
					want = false
				}
			}
			if got := hit(path); got != want {
				t.Errorf("purge %d (%+v): %s stored = %v, want %v", i, p, path, got, want)
			}
		}
	}
}

func TestMemoryBound(t *testing.T) {
	body := strings.Repeat("x", 64<<10)
	o := newOrigin(t, Options{MaxBytes: 1 << 20, MaxEntryBytes: 128 << 10}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path == "/big" {
			w.Write([]byte(strings.Repeat("y", 256<<10)))
			return
		}
		w.Write([]byte(body))
	})
	for i := range 100 {
		o.get(fmt.Sprintf("/p%d", i))
	}
	// Eviction runs in the background: the bound holds once it caught up.
	waitFor(t, "the memory tier to fit its bound", func() bool {
		o.cache.mem.CleanUp()
		return o.cache.mem.WeightedSize() <= 1<<20
	})
	if r := o.get("/big"); r.cache != "MISS" || len(r.body) != 256<<10 {
		t.Fatalf("big body: %q %d bytes", r.cache, len(r.body))
	}
	if r := o.get("/big"); r.cache != "MISS" {
		t.Errorf("a body above MaxEntryBytes was stored")
	}
}

func TestBypass(t *testing.T) {
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte(r.Method))
	})
	expect(t, "post", o.do("POST", "/p"), "BYPASS", "POST")
	expect(t, "get after post", o.get("/p"), "MISS", "GET")
	expect(t, "delete", o.do("DELETE", "/p"), "BYPASS", "DELETE")
}

func TestAgeFromUpstream(t *testing.T) {
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Age", "50")
		w.Write([]byte("aged"))
	})
	o.get("/")
	o.clock.advance(5 * time.Second)
	r := o.get("/")
	expect(t, "hit", r, "HIT", "aged")
	if r.age != "55" {
		t.Errorf("Age = %q, want 55", r.age)
	}
	o.clock.advance(6 * time.Second)
	expect(t, "expired by age", o.get("/"), "MISS", "aged")
}

// TestMemoryKeep: the memory tier's coarse clock (see New) never drops an
// object before its keep has passed since it was stored, whatever the
// phase of the clock's steps at the store, and still drops it afterwards.
// An object is seen missing only once the time measured after the lookup
// that missed it is past its keep: a deadline counted from the clock's
// lagging time instead of the precise one fails this.
func TestMemoryKeep(t *testing.T) {
	c := New(Options{})
	defer c.Close()
	const keep = 250 * time.Millisecond
	type stored struct {
		key string
		at  time.Time // before the store
	}
	var objs []stored
	for i := range 6 {
		if i > 0 {
			time.Sleep(memClockStep / 3) // other phases of the clock's steps
		}
		s := stored{key: fmt.Sprint("k", i), at: time.Now()}
		if i%2 == 1 {
			// A replacement counts from its own store, as a first store does.
			c.mem.Set(s.key, &object{keep: time.Hour})
			s.at = time.Now()
		}
		c.mem.Set(s.key, &object{keep: keep})
		objs = append(objs, s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(objs) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d objects kept long past their keep", len(objs))
		}
		left := objs[:0]
		for _, s := range objs {
			_, ok := c.mem.GetIfPresent(s.key)
			if since := time.Since(s.at); !ok && since < keep {
				t.Errorf("%s dropped %v after its store, before its keep %v", s.key, since, keep)
			} else if ok {
				left = append(left, s)
			}
		}
		objs = left
		time.Sleep(time.Millisecond)
	}
}
