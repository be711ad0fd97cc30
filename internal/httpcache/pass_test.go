package httpcache

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestPassKey: the lookup key Passing builds on the stack is keyOf's.
func TestPassKey(t *testing.T) {
	long := "/" + strings.Repeat("x", 300)
	cases := []struct {
		host, uri string
		tls       bool
	}{
		{"app.test", "/hello", false},
		{"App.Test:8080", "/hello?a=1", false},
		{"APP.TEST", "/", true},
		{"[::1]:8080", "/v6", false},
		{"[::1]", "/v6", false},
		{"bücher.test", "/unicode", false},
		{"app.test", long, false},
		{"", "/nohost", false},
		{"app.test", "", false}, // no RequestURI: the URL's
	}
	for _, c := range cases {
		r := &http.Request{Host: c.host, RequestURI: c.uri, URL: &url.URL{Path: "/from-url", RawQuery: "q=1"}}
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		want, _, _ := keyOf("app", r)
		var buf [256]byte
		if got := passKey(buf[:0], "app", r); got != want {
			t.Errorf("host %q uri %q tls %v: passKey %q, keyOf %q", c.host, c.uri, c.tls, got, want)
		}
	}
}

func FuzzPassKey(f *testing.F) {
	f.Add("app", "App.Test:80", "/x?y", false)
	f.Add("a", "[::1]:1", "/", true)
	f.Fuzz(func(t *testing.T, app, host, uri string, secure bool) {
		r := &http.Request{Host: host, RequestURI: uri, URL: &url.URL{Path: "/p"}}
		if secure {
			r.TLS = &tls.ConnectionState{}
		}
		want, _, _ := keyOf(app, r)
		var buf [256]byte
		if got := passKey(buf[:0], app, r); got != want {
			t.Fatalf("passKey %q, keyOf %q", got, want)
		}
	})
}

// TestPassingMarked: Passing with the verdict of AppendHitPass's lookup of
// the same request is Passing, for requests whose key is marked pass,
// stored, or unknown (of a marked path or not), and for each of Passing's
// other conditions.
func TestPassingMarked(t *testing.T) {
	rules := []Rule{{Path: "/ruled", Cache: true}, {Path: "/never", Cache: false}}
	o := newOrigin(t, Options{}, rules, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/stored") {
			w.Header().Set("Cache-Control", "max-age=60")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "body of "+r.URL.Path)
	})
	host := strings.TrimPrefix(o.url, "http://")
	h := o.cache.Handler("app", rules, nil).(*appHandler)
	for _, p := range []string{"/pass", "/stored", "/ruled", "/never"} {
		o.get(p)
	}
	passReq := func(method, target string, fields []string) *http.Request {
		path, query, _ := strings.Cut(target, "?")
		r := &http.Request{Method: method, Host: host, RequestURI: target, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}}
		for i := 0; i+1 < len(fields); i += 2 {
			r.Header.Add(fields[i], fields[i+1])
		}
		return r
	}
	waitFor(t, "/pass marked", func() bool { return h.Passing(passReq("GET", "/pass", nil)) })
	waitFor(t, "/stored stored", func() bool {
		_, _, _, ok := h.AppendHit(nil, host, "/stored", nil)
		return ok
	})
	for _, tt := range []struct {
		name, method, target string
		fields               []string
		want                 bool
	}{
		{"marked", "GET", "/pass", []string{"Accept", "*/*"}, true},
		{"marked, head", "HEAD", "/pass", nil, false},
		{"marked, authorization", "GET", "/pass", []string{"Authorization", "x"}, false},
		{"marked, if-none-match", "GET", "/pass", []string{"If-None-Match", `"t"`}, false},
		{"marked, cache-control", "GET", "/pass", []string{"cache-control", "no-cache"}, false},
		{"other query", "GET", "/pass?x=1", nil, true}, // its path is marked
		{"stored", "GET", "/stored", nil, false},
		{"stored, other query", "GET", "/stored?x=1", nil, false},
		{"unknown", "GET", "/nothing", nil, false},
		{"rule", "GET", "/ruled", nil, false},
		{"rule, no cache", "GET", "/never", nil, false},
	} {
		looked, marked := false, false
		var ok bool
		_, _, _, ok, looked, marked = h.AppendHitPass(nil, host, tt.target, tt.fields)
		if ok && marked {
			t.Errorf("%s: a hit marked pass", tt.name)
		}
		r := passReq(tt.method, tt.target, tt.fields)
		got, want := h.PassingMarked(r, looked, marked), h.Passing(r)
		if got != want || got != tt.want {
			t.Errorf("%s: PassingMarked %v (looked %v, marked %v), Passing %v, want %v", tt.name, got, looked, marked, want, tt.want)
		}
	}
}

// TestPathMarks: a response not storable to a request Passing qualifies
// marks its path, so that new hosts and queries of that path pass at once;
// a storable response to a passed request, or one stored, ends the mark
// for passKeep, and keys then go by their own marks; requests Passing
// refuses (authenticated) mark only their key; marks are purged but not
// counted as purged responses.
func TestPathMarks(t *testing.T) {
	o := newOrigin(t, Options{}, nil, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Get("store") == "1":
			w.Header().Set("Cache-Control", "max-age=60")
		case r.URL.Path == "/auth":
			w.Header().Set("Cache-Control", "private")
		default:
			w.Header().Set("Cache-Control", "no-store")
		}
		io.WriteString(w, "body of "+r.URL.RequestURI())
	})
	h := o.cache.Handler("app", nil, nil).(*appHandler)
	req := func(host, target string, fields ...string) *http.Request {
		path, query, _ := strings.Cut(target, "?")
		r := &http.Request{Method: "GET", Host: host, RequestURI: target, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}}
		for i := 0; i+1 < len(fields); i += 2 {
			r.Header.Add(fields[i], fields[i+1])
		}
		return r
	}
	// passing checks Passing against PassingMarked with the hit path's
	// verdict, then returns it.
	passing := func(host, target string) bool {
		t.Helper()
		r := req(host, target)
		_, _, _, ok, looked, marked := h.AppendHitPass(nil, host, target, nil)
		if got, want := h.PassingMarked(r, looked, marked), h.Passing(r); got != want || ok {
			t.Fatalf("%s%s: PassingMarked %v, Passing %v, hit %v", host, target, got, want, ok)
		}
		return h.Passing(r)
	}
	host := strings.TrimPrefix(o.url, "http://")
	if passing("a.test", "/p") {
		t.Fatal("/p passes before any response")
	}
	o.get("/p?q=1")
	waitFor(t, "/p marked", func() bool { return passing("a.test", "/p") })
	for _, target := range []string{"/p", "/p?q=2", "/p?"} {
		for _, hst := range []string{host, "a.test", "B.test:8080"} {
			if !passing(hst, target) {
				t.Errorf("%s%s: not passed with /p marked", hst, target)
			}
		}
	}
	for _, target := range []string{"/p/x", "/", "/q?p"} {
		if passing("a.test", target) {
			t.Errorf("%s: passed, another path", target)
		}
	}
	// The app answers a passed request storable: the mark goes, and no
	// response not storable brings it back for passKeep.
	rec := httptest.NewRecorder()
	rec.Header().Set("Cache-Control", "max-age=60")
	h.PassAnswered(req("b.test", "/p?store=1"), 200, []string{"max-age=60"}, rec)
	if passing("b.test", "/p?store=1") || passing("c.test", "/p?q=3") {
		t.Fatal("/p still marked after a storable answer")
	}
	o.get("/p?q=4")
	waitFor(t, "/p?q=4 marked", func() bool { return passing(host, "/p?q=4") })
	if passing(host, "/p?q=5") || passing("d.test", "/p") {
		t.Error("/p marked again within passKeep")
	}
	// A stored response ends its path's mark too.
	o.get("/s?q=1")
	waitFor(t, "/s marked", func() bool { return passing(host, "/s?q=2") })
	o.get("/s?store=1")
	waitFor(t, "/s stored", func() bool {
		_, _, _, ok := h.AppendHit(nil, host, "/s?store=1", nil)
		return ok
	})
	if passing(host, "/s?q=2") {
		t.Error("/s still marked after a response to it was stored")
	}
	// An authenticated request marks its key alone.
	resp, err := o.client.Do(func() *http.Request {
		r, _ := http.NewRequest("GET", o.url+"/auth", nil)
		r.Header.Set("Authorization", "Bearer x")
		return r
	}())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	time.Sleep(50 * time.Millisecond) // otter applies writes shortly after
	if passing(host, "/auth?q=1") || passing("a.test", "/auth") {
		t.Error("/auth's path marked by an authenticated request")
	}
	// A purge takes marks (the app may answer otherwise now) and counts
	// only the stored response.
	if n := o.cache.Purge(Purge{App: "app", Prefixes: []string{"/"}}); n != 1 {
		t.Errorf("purged %d, want 1 (/s?store=1)", n)
	}
	if passing(host, "/p?q=4") {
		t.Error("/p?q=4 still marked after the purge")
	}
}

// BenchmarkPassDecision: what deciding that a request is passed costs
// after the hit path's lookup: a second lookup (Passing) or none
// (PassingMarked with the hit path's verdict).
func BenchmarkPassDecision(b *testing.B) {
	c := New(Options{})
	defer c.Close()
	h := c.Handler("app", nil, nil).(*appHandler)
	r := &http.Request{Method: "GET", Host: "app.test", RequestURI: "/hello", URL: &url.URL{Path: "/hello"},
		Header: http.Header{"Accept": {"*/*"}, "User-Agent": {"wrk"}}}
	key, _, _ := keyOf("app", r)
	h.c.mem.Set(key, &object{pass: true})
	fields := []string{"Accept", "*/*", "User-Agent", "wrk"}
	buf := make([]byte, 0, 4096)
	b.Run("second-lookup", func(b *testing.B) {
		for b.Loop() {
			if _, _, _, ok := h.AppendHit(buf, "app.test", "/hello", fields); ok || !h.Passing(r) {
				b.Fatal("not passed")
			}
		}
	})
	b.Run("hit-verdict", func(b *testing.B) {
		for b.Loop() {
			_, _, _, ok, looked, marked := h.AppendHitPass(buf, "app.test", "/hello", fields)
			if ok || !h.PassingMarked(r, looked, marked) {
				b.Fatal("not passed")
			}
		}
	})
}
