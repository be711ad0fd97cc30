package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pier/internal/httpcache"
)

// countingCache is the real cache whose handlers count the requests that
// reach their ServeHTTP: a hit answered by Front's hit path does not.
type countingCache struct {
	c      *httpcache.Cache
	served atomic.Int64
}

func (cc *countingCache) Handler(app string, rules []CacheRule, next http.Handler) http.Handler {
	return &countedHandler{Handler: testCache{cc.c}.Handler(app, rules, next), n: &cc.served}
}

type countedHandler struct {
	http.Handler
	n *atomic.Int64
}

func (h *countedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.n.Add(1)
	h.Handler.ServeHTTP(w, r)
}

func (h *countedHandler) AppendHit(dst []byte, host, target string, fields []string) ([]byte, []byte, int, bool) {
	return h.Handler.(hitCache).AppendHit(dst, host, target, fields)
}

// testClock is a settable clock for the cache.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// hitRig is one gateway with the real cache, served by two Front
// listeners: "fast" with the Gateway itself as the handler (the hit path
// runs), "slow" with a wrapper (it never does), so the same requests go
// through both paths.
type hitRig struct {
	g          *Gateway
	cache      *countingCache
	clock      *testClock
	fast, slow string
	access     *syncBuffer

	mu  sync.Mutex
	obs []string // what Observe was told, one line a request
}

func newHitRig(t *testing.T, routes func(backend string) []Route) *hitRig {
	t.Helper()
	rig := &hitRig{clock: &testClock{now: time.Now().Truncate(time.Second)}, access: &syncBuffer{}}
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Date", rig.clock.Now().UTC().Format(http.TimeFormat))
		h.Set("X-Request-Id", "set-by-the-app")
		h.Set("Cache-Control", "max-age=600")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		body := "hello, cached"
		switch r.URL.Path {
		case "/plain":
			h.Set("ETag", `"v1"`)
			h.Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
			h.Add("Link", "</a.css>; rel=preload")
			h.Add("Link", "</b.js>; rel=preload")
			h.Set("Cache-Tag", "plain")
			h.Set("X-Spaces", "  padded  ")
		case "/vary":
			h.Set("Vary", "Accept-Encoding, Accept-Language")
			body = "enc=" + r.Header.Get("Accept-Encoding") + " lang=" + r.Header.Get("Accept-Language")
		case "/varyid":
			h.Set("Vary", "X-Request-Id")
		case "/nodate":
			h["Date"] = nil
		case "/sniff":
			h["Content-Type"] = nil
			body = "<html>sniffed</html>"
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "not here")
			return
		case "/big":
			body = strings.Repeat("0123456789abcdef", 20<<10/16)
		case "/private":
			h.Set("Cache-Control", "private")
		case "/ttl", "/nocache":
			h.Del("Cache-Control")
		case "/empty":
			body = ""
		}
		io.WriteString(w, body)
	}))
	rig.cache = &countingCache{c: httpcache.New(httpcache.Options{Logger: testLogger(t), Now: rig.clock.Now})}
	t.Cleanup(rig.cache.c.Close)
	rig.g = New(Options{
		Logger:    testLogger(t),
		Cache:     rig.cache,
		AccessLog: slog.New(slog.NewJSONHandler(rig.access, nil)),
		Observe: func(app string, status int, bytes int64, d time.Duration, cache string) {
			rig.mu.Lock()
			rig.obs = append(rig.obs, fmt.Sprintf("%s %d %d %s", app, status, bytes, cache))
			rig.mu.Unlock()
		},
	})
	rig.g.SetRoutes(routes(backend))
	rig.fast = serveFront(t, rig.g, rig.g)
	rig.slow = serveFront(t, rig.g, http.HandlerFunc(rig.g.ServeHTTP))
	return rig
}

// serveFront serves h with g's Front loop behind Guard, as the engine does.
func serveFront(t *testing.T, g *Gateway, h http.Handler) string {
	t.Helper()
	return serveFrontWrapped(t, g, h, "")
}

// serveFrontWrapped is serveFront with FrontOptions.WrapperPrefix.
func serveFrontWrapped(t *testing.T, g *Gateway, h http.Handler, prefix string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(g.Front(Guard(ln, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}), h,
		FrontOptions{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, Logger: testLogger(t), WrapperPrefix: prefix}))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// wire is a response as it came on the wire: the status line, the header
// lines sorted (their order is a map's in the slow path) without Date, and
// the body.
type wire struct {
	status  string
	fields  []string
	body    string
	hasDate bool
	id      string
}

func (w wire) String() string {
	return fmt.Sprintf("%s\n%s\n(date %v) %q", w.status, strings.Join(w.fields, "\n"), w.hasDate, w.body)
}

func (w wire) field(name string) string {
	for _, f := range w.fields {
		if k, v, _ := strings.Cut(f, ": "); k == name {
			return v
		}
	}
	return ""
}

// readWire reads one response to a request with method from br.
func readWire(t *testing.T, br *bufio.Reader, method string) wire {
	t.Helper()
	var w wire
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a status line: %v", err)
	}
	w.status = line
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a header line: %v", err)
		}
		if line == "\r\n" {
			break
		}
		if !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("header line %q without CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "Date":
			w.hasDate = true
			continue
		case "Content-Length":
			length, _ = strconv.Atoi(v)
		case "X-Request-Id":
			w.id = v
		}
		w.fields = append(w.fields, line)
	}
	slices.Sort(w.fields)
	parts := strings.Fields(w.status)
	if len(parts) < 2 {
		t.Fatalf("status line %q", w.status)
	}
	code := parts[1]
	switch {
	case method == "HEAD" || code == "304" || code == "204":
	case slices.Contains(w.fields, "Transfer-Encoding: chunked"):
		body, err := io.ReadAll(httputil.NewChunkedReader(br))
		if err != nil {
			t.Fatalf("reading a chunked body: %v", err)
		}
		if line, err := br.ReadString('\n'); line != "\r\n" || err != nil {
			t.Fatalf("after a chunked body: %q, %v", line, err)
		}
		w.body = string(body)
	default:
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("reading a body of %d bytes: %v", length, err)
		}
		w.body = string(body)
	}
	return w
}

// conn is a client connection to one of the rig's fronts.
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialFront(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &conn{c, bufio.NewReader(c)}
}

// send writes raw and reads one response per request in it.
func (c *conn) send(t *testing.T, raw string) []wire {
	t.Helper()
	if _, err := io.WriteString(c.c, raw); err != nil {
		t.Fatal(err)
	}
	var out []wire
	for _, head := range strings.SplitAfter(raw, "\r\n\r\n") {
		if !strings.Contains(head, " HTTP/1.1\r\n") {
			continue // a body
		}
		out = append(out, readWire(t, c.br, strings.Fields(head)[0]))
	}
	return out
}

// lastAccess is the last access log line without its time and duration.
func (rig *hitRig) lastAccess(t *testing.T) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(rig.access.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("access log line %q: %v", lines[len(lines)-1], err)
	}
	if d, ok := m["duration"].(float64); !ok || d < 0 {
		t.Errorf("access log duration %v", m["duration"])
	}
	delete(m, "time")
	delete(m, "duration")
	return m
}

func (rig *hitRig) lastObserved() string {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	if len(rig.obs) == 0 {
		return ""
	}
	return rig.obs[len(rig.obs)-1]
}

func hitRoutes(t *testing.T) func(string) []Route {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("static file"), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(backend string) []Route {
		return []Route{{
			App: "app", Hosts: []string{"app.localhost"}, Backends: []string{backend},
			Static: map[string]string{"/static": dir},
			Cache: []CacheRule{
				{Path: "/nocache", Cache: false},
				{Path: "/ttl", TTL: time.Minute, Cache: true},
			},
		}}
	}
}

// TestHitWrapped: with the gateway wrapped by a handler that takes one path
// prefix (ACME's HTTP-01 challenges), cached hits outside the prefix are
// still answered by the hit path, and requests inside it always reach the
// wrapper first, cached or not.
func TestHitWrapped(t *testing.T) {
	rig := newHitRig(t, hitRoutes(t))
	const prefix = "/.well-known/acme-challenge"
	var challenged atomic.Int64
	wrapped := serveFrontWrapped(t, rig.g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == prefix+"/live" {
			challenged.Add(1)
			io.WriteString(w, "challenge")
			return
		}
		rig.g.ServeHTTP(w, r)
	}), prefix)
	warm := dialFront(t, rig.slow)
	for _, p := range []string{"/plain", prefix + "/live", prefix + "/other"} {
		warm.send(t, "GET "+p+" HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
	}
	c := dialFront(t, wrapped)
	tests := []struct {
		path      string
		fast      bool   // the hit path answers it
		body      string // "" = the app's
		challenge bool   // the wrapper answers it
	}{
		{"/plain", true, "", false},
		{prefix + "/other", false, "", false},
		{prefix + "/live", false, "challenge", true},
	}
	for _, tt := range tests {
		served, ch := rig.cache.served.Load(), challenged.Load()
		got := c.send(t, "GET "+tt.path+" HTTP/1.1\r\nHost: app.localhost\r\n\r\n")[0]
		if fast := rig.cache.served.Load() == served && challenged.Load() == ch; fast != tt.fast {
			t.Errorf("%s: answered by the hit path: %v, want %v", tt.path, fast, tt.fast)
		}
		if (challenged.Load() != ch) != tt.challenge {
			t.Errorf("%s: the wrapper answered: %v, want %v", tt.path, challenged.Load() != ch, tt.challenge)
		}
		if tt.body != "" && got.body != tt.body {
			t.Errorf("%s: body %q, want %q", tt.path, got.body, tt.body)
		}
		if tt.body == "" && got.field("X-Cache") != "HIT" {
			t.Errorf("%s: X-Cache %q, want HIT", tt.path, got.field("X-Cache"))
		}
	}
}

// TestHitDifferential sends the same requests through Front's hit path and
// through Gateway.ServeHTTP (the same gateway, cache and clock) and
// compares the responses on the wire (header order and Date aside), what
// Observe was told and the access log line; and checks which requests the
// hit path answered by itself.
func TestHitDifferential(t *testing.T) {
	rig := newHitRig(t, hitRoutes(t))
	// Fill the cache through the slow path.
	warm := dialFront(t, rig.slow)
	for _, p := range []string{"/plain", "/plain?q=1", "/nodate", "/sniff", "/missing", "/big", "/ttl",
		"/empty", "/x%41"} {
		warm.send(t, "GET "+p+" HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
	}
	// ServeHTTP sets the request id before the cache reads the request.
	warm.send(t, "GET /varyid HTTP/1.1\r\nHost: app.localhost\r\nX-Request-Id: t-9\r\n\r\n")
	for _, enc := range []string{"gzip", "br", ""} {
		warm.send(t, "GET /vary HTTP/1.1\r\nHost: app.localhost\r\nAccept-Encoding: "+enc+"\r\nAccept-Language: fr\r\n\r\n")
	}
	rig.clock.advance(5 * time.Second) // Age: 5

	const host = "Host: app.localhost\r\n"
	tests := []struct {
		name, raw string
		fast      bool   // the hit path answers it
		cache     string // X-Cache
	}{
		{"get", "GET /plain HTTP/1.1\r\n" + host + "X-Request-Id: t-1\r\n\r\n", true, "HIT"},
		{"head", "HEAD /plain HTTP/1.1\r\n" + host + "X-Request-Id: t-2\r\n\r\n", true, "HIT"},
		{"generated id", "GET /plain HTTP/1.1\r\n" + host + "\r\n", true, "HIT"},
		{"insane id", "GET /plain HTTP/1.1\r\n" + host + "X-Request-Id: not sane!\r\n\r\n", true, "HIT"},
		{"two ids", "GET /plain HTTP/1.1\r\n" + host + "X-Request-Id: first\r\nX-Request-Id: second\r\n\r\n", true, "HIT"},
		{"query", "GET /plain?q=1 HTTP/1.1\r\n" + host + "X-Request-Id: t-3\r\n\r\n", true, "HIT"},
		{"host case and port", "GET /plain HTTP/1.1\r\nhost: APP.localhost:80\r\nX-Request-Id: t-4\r\n\r\n", true, "HIT"},
		{"keep-alive and length 0", "GET /plain HTTP/1.1\r\n" + host + "Connection: keep-alive\r\nContent-Length: 0\r\nX-Request-Id: t-5\r\n\r\n", true, "HIT"},
		{"vary gzip", "GET /vary HTTP/1.1\r\n" + host + "Accept-Encoding: gzip\r\nAccept-Language: fr\r\nX-Request-Id: t-6\r\n\r\n", true, "HIT"},
		{"vary br, names in lower case", "GET /vary HTTP/1.1\r\n" + host + "accept-language: fr\r\naccept-encoding: br\r\nX-Request-Id: t-7\r\n\r\n", true, "HIT"},
		{"vary empty", "GET /vary HTTP/1.1\r\n" + host + "Accept-Encoding:\r\nAccept-Language:  fr \r\nX-Request-Id: t-8\r\n\r\n", true, "HIT"},
		{"vary on request id", "GET /varyid HTTP/1.1\r\n" + host + "X-Request-Id: t-9\r\n\r\n", false, "HIT"},
		{"no date stored", "GET /nodate HTTP/1.1\r\n" + host + "X-Request-Id: t-10\r\n\r\n", true, "HIT"},
		{"sniffed type", "GET /sniff HTTP/1.1\r\n" + host + "X-Request-Id: t-11\r\n\r\n", false, "HIT"},
		{"404", "GET /missing HTTP/1.1\r\n" + host + "X-Request-Id: t-12\r\n\r\n", true, "HIT"},
		{"20 KB", "GET /big HTTP/1.1\r\n" + host + "X-Request-Id: t-13\r\n\r\n", true, "HIT"},
		{"rule TTL", "GET /ttl HTTP/1.1\r\n" + host + "X-Request-Id: t-14\r\n\r\n", true, "HIT"},
		{"empty body", "GET /empty HTTP/1.1\r\n" + host + "X-Request-Id: t-15\r\n\r\n", true, "HIT"},
		{"rule no cache", "GET /nocache HTTP/1.1\r\n" + host + "X-Request-Id: t-16\r\n\r\n", false, "BYPASS"},
		{"escaped target", "GET /x%41 HTTP/1.1\r\n" + host + "X-Request-Id: t-17\r\n\r\n", false, "HIT"},
		{"if-none-match", "GET /plain HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\nX-Request-Id: t-18\r\n\r\n", true, "HIT"},
		{"if-none-match head", "HEAD /plain HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\nX-Request-Id: t-18h\r\n\r\n", true, "HIT"},
		{"if-none-match weak", "GET /plain HTTP/1.1\r\n" + host + "If-None-Match: W/\"v1\"\r\nX-Request-Id: t-18w\r\n\r\n", false, "HIT"},
		{"if-none-match list", "GET /plain HTTP/1.1\r\n" + host + "If-None-Match: \"v0\", \"v1\"\r\nX-Request-Id: t-18l\r\n\r\n", false, "HIT"},
		{"if-none-match other", "GET /plain HTTP/1.1\r\n" + host + "If-None-Match: \"v2\"\r\nX-Request-Id: t-18o\r\n\r\n", false, "HIT"},
		{"if-none-match twice", "GET /plain HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\nIf-None-Match: \"v1\"\r\nX-Request-Id: t-18t\r\n\r\n", false, "HIT"},
		{"if-none-match and range", "GET /plain HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\nRange: bytes=0-1\r\nX-Request-Id: t-18r\r\n\r\n", false, "HIT"},
		{"if-none-match, no tag stored", "GET /nodate HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\nX-Request-Id: t-18n\r\n\r\n", false, "HIT"},
		{"if-none-match, 404", "GET /missing HTTP/1.1\r\n" + host + "If-None-Match: \"v1\"\r\nX-Request-Id: t-18m\r\n\r\n", false, "HIT"},
		{"if-modified-since", "GET /plain HTTP/1.1\r\n" + host + "If-Modified-Since: Mon, 02 Jan 2006 15:04:05 GMT\r\nX-Request-Id: t-19\r\n\r\n", false, "HIT"},
		{"range", "GET /plain HTTP/1.1\r\n" + host + "Range: bytes=0-3\r\nX-Request-Id: t-20\r\n\r\n", false, "HIT"},
		{"no-store request", "GET /plain HTTP/1.1\r\n" + host + "Cache-Control: no-store\r\nX-Request-Id: t-21\r\n\r\n", false, "BYPASS"},
		{"authorization", "GET /plain HTTP/1.1\r\n" + host + "Authorization: Basic eDp5\r\nX-Request-Id: t-22\r\n\r\n", false, "MISS"},
		{"not stored", "GET /private HTTP/1.1\r\n" + host + "X-Request-Id: t-23\r\n\r\n", false, "MISS"},
		{"not yet stored", "GET /plain?q=2 HTTP/1.1\r\n" + host + "X-Request-Id: t-24\r\n\r\n", false, "MISS"},
		{"static mount", "GET /static/a.txt HTTP/1.1\r\n" + host + "X-Request-Id: t-25\r\n\r\n", false, ""},
		{"post", "POST /plain HTTP/1.1\r\n" + host + "Content-Length: 2\r\nX-Request-Id: t-26\r\n\r\nhi", false, "BYPASS"},
		{"get with a body", "GET /plain HTTP/1.1\r\n" + host + "Content-Length: 2\r\nX-Request-Id: t-27\r\n\r\nhi", false, "HIT"},
	}
	fast, slow := dialFront(t, rig.fast), dialFront(t, rig.slow)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cache == "MISS" {
				// From the app, through ServeHTTP; its Date and head
				// differ from the slow path's by design.
				before := rig.cache.served.Load()
				got := fast.send(t, tt.raw)[0]
				if c := got.field("X-Cache"); c != tt.cache || rig.cache.served.Load() == before {
					t.Errorf("X-Cache %q, through ServeHTTP: %v; want MISS through ServeHTTP", c, rig.cache.served.Load() != before)
				}
				return
			}
			want := slow.send(t, tt.raw)[0]
			wantObs, wantLog := rig.lastObserved(), rig.lastAccess(t)
			before := rig.cache.served.Load()
			got := fast.send(t, tt.raw)[0]
			gotObs, gotLog := rig.lastObserved(), rig.lastAccess(t)
			if fast := rig.cache.served.Load() == before; fast != tt.fast && tt.cache != "" {
				t.Errorf("answered by the hit path: %v, want %v", fast, tt.fast)
			}
			if c := got.field("X-Cache"); c != tt.cache {
				t.Errorf("X-Cache %q, want %q", c, tt.cache)
			}
			if tt.cache == "HIT" && got.field("Age") != "5" {
				t.Errorf("Age %q, want 5", got.field("Age"))
			}
			if got.id == "" || want.id == "" {
				t.Fatalf("no X-Request-Id: %q, %q", got.id, want.id)
			}
			if strings.Contains(tt.raw, "X-Request-Id: t-") || strings.Contains(tt.raw, "X-Request-Id: first") {
				if got.id != want.id || strings.Contains(got.id, "second") {
					t.Errorf("X-Request-Id %q, want %q", got.id, want.id)
				}
			} else if got.id == want.id || !saneID(got.id) {
				t.Errorf("generated X-Request-Id %q (slow path's %q)", got.id, want.id)
			} else {
				for _, w := range []*wire{&got, &want} {
					i := slices.Index(w.fields, "X-Request-Id: "+w.id)
					w.fields[i] = "X-Request-Id: (generated)"
				}
				delete(gotLog, "id")
				delete(wantLog, "id")
			}
			if got.String() != want.String() {
				t.Errorf("hit path:\n%s\nServeHTTP:\n%s", got, want)
			}
			if !got.hasDate {
				t.Errorf("no Date")
			}
			if gotObs != wantObs {
				t.Errorf("Observe told %q, want %q", gotObs, wantObs)
			}
			if fmt.Sprint(gotLog) != fmt.Sprint(wantLog) {
				t.Errorf("access log %v, want %v", gotLog, wantLog)
			}
		})
	}

	t.Run("pipelined", func(t *testing.T) {
		raw := "GET /plain HTTP/1.1\r\n" + host + "X-Request-Id: p-1\r\n\r\n" +
			"HEAD /big HTTP/1.1\r\n" + host + "X-Request-Id: p-2\r\n\r\n" +
			"GET /private HTTP/1.1\r\n" + host + "X-Request-Id: p-3\r\n\r\n" +
			"GET /big HTTP/1.1\r\n" + host + "X-Request-Id: p-4\r\n\r\n"
		want := dialFront(t, rig.slow).send(t, raw)
		got := dialFront(t, rig.fast).send(t, raw)
		for i := range want {
			if i == 2 {
				continue // a miss each time
			}
			if got[i].String() != want[i].String() {
				t.Errorf("response %d: hit path:\n%s\nServeHTTP:\n%s", i, got[i], want[i])
			}
		}
	})

	t.Run("connection close", func(t *testing.T) {
		for _, addr := range []string{rig.slow, rig.fast} {
			c := dialFront(t, addr)
			got := c.send(t, "GET /plain HTTP/1.1\r\n"+host+"Connection: close\r\nX-Request-Id: c-1\r\n\r\n")[0]
			if got.field("Connection") != "close" || got.field("X-Cache") != "HIT" {
				t.Errorf("%s: Connection %q, X-Cache %q", addr, got.field("Connection"), got.field("X-Cache"))
			}
			if n, err := c.br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("%s: the connection stayed open after Connection: close (%d, %v)", addr, n, err)
			}
		}
	})
}

// TestHitPurgeAndLimits: a purge takes effect for the hit path's next
// request, rate limits apply to hits (the 429 is ServeHTTP's), a canary
// and an app without instances keep hits on ServeHTTP.
func TestHitPurgeAndLimits(t *testing.T) {
	var routes []Route
	rig := newHitRig(t, func(backend string) []Route {
		routes = []Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{backend}}}
		return routes
	})
	c := dialFront(t, rig.fast)
	get := func() wire {
		t.Helper()
		return c.send(t, "GET /plain HTTP/1.1\r\nHost: app.localhost\r\n\r\n")[0]
	}
	if r := get(); r.field("X-Cache") != "MISS" {
		t.Fatalf("first request: X-Cache %q", r.field("X-Cache"))
	}
	before := rig.cache.served.Load()
	if r := get(); r.field("X-Cache") != "HIT" || rig.cache.served.Load() != before {
		t.Fatalf("second request: X-Cache %q, through ServeHTTP: %v", r.field("X-Cache"), rig.cache.served.Load() != before)
	}

	if n := rig.cache.c.Purge(httpcache.Purge{App: "app", URLs: []string{"/plain"}}); n != 1 {
		t.Fatalf("purged %d keys, want 1", n)
	}
	if r := get(); r.field("X-Cache") != "MISS" {
		t.Errorf("after the purge: X-Cache %q, want MISS", r.field("X-Cache"))
	}
	if r := get(); r.field("X-Cache") != "HIT" {
		t.Errorf("stored again: X-Cache %q, want HIT", r.field("X-Cache"))
	}
	if n := rig.cache.c.Purge(httpcache.Purge{App: "app", Tags: []string{"plain"}}); n != 1 {
		t.Fatalf("purged %d keys by tag, want 1", n)
	}
	if r := get(); r.field("X-Cache") != "MISS" {
		t.Errorf("after the purge by tag: X-Cache %q, want MISS", r.field("X-Cache"))
	}

	// A rate this low refills nothing while the test runs.
	rig.g.SetRateLimit("app", RateLimit{PerIP: 0.001})
	before = rig.cache.served.Load()
	if r := get(); r.field("X-Cache") != "HIT" || rig.cache.served.Load() != before {
		t.Errorf("under the limit: X-Cache %q, through ServeHTTP: %v", r.field("X-Cache"), rig.cache.served.Load() != before)
	}
	if r := get(); !strings.Contains(r.status, " 429 ") || r.field("Retry-After") == "" {
		t.Errorf("over the limit: %q, Retry-After %q, want 429", r.status, r.field("Retry-After"))
	}
	rig.g.SetRateLimit("app", RateLimit{})

	canary := append([]Route(nil), routes...)
	canary[0].Canary, canary[0].CanaryWeight, canary[0].Release, canary[0].CanaryRelease = canary[0].Backends, 5000, 1, 2
	rig.g.SetRoutes(canary)
	before = rig.cache.served.Load()
	if r := get(); r.field("X-Cache") != "HIT" || rig.cache.served.Load() == before {
		t.Errorf("with a canary: X-Cache %q, through ServeHTTP: %v, want HIT through ServeHTTP", r.field("X-Cache"), rig.cache.served.Load() != before)
	}

	none := append([]Route(nil), routes...)
	none[0].Backends = nil
	rig.g.SetRoutes(none)
	if r := get(); !strings.Contains(r.status, " 503 ") {
		t.Errorf("without instances: %q, want ServeHTTP's 503", r.status)
	}
}

// FuzzHitFields: every head the hit path reads, parseFields reads the same
// (fields, host, Connection: close), so the hit path answers only requests
// Front would serve itself.
func FuzzHitFields(f *testing.F) {
	for _, s := range []string{
		"Host: a\r\n\r\n",
		"Host: a\r\nX-Request-Id: x\r\nAccept-Encoding: gzip, br\r\n\r\n",
		"host: A:80\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"Host: a\r\nHost: b\r\n\r\n",
		"Host: a\r\nContent-Length: 00\r\nContent-Length: 0\r\n\r\n",
		"Host: a\r\nConnection: upgrade\r\n\r\n",
		"Host: a\r\nX: \t v \t\r\n\r\n",
		"Host: a\r\nBad Name: v\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fields, host, _, closeAfter, ok := hitFields(s, nil)
		if !ok {
			return
		}
		h, phost, cl, pclose, pok := parseFields(s)
		if !pok {
			t.Fatalf("the hit path reads %q, parseFields refuses it", s)
		}
		if host != phost || closeAfter != pclose || cl != 0 {
			t.Fatalf("%q: host %q close %v, parseFields: host %q close %v length %d", s, host, closeAfter, phost, pclose, cl)
		}
		got := make(http.Header)
		for i := 0; i+1 < len(fields); i += 2 {
			got.Add(fields[i], fields[i+1])
		}
		if fmt.Sprint(got) != fmt.Sprint(h) {
			t.Fatalf("%q: fields %v, parseFields %v", s, got, h)
		}
	})
}

// BenchmarkHit: a cached 13 B and 20 KB response through Front's hit path
// and through ServeHTTP (the same gateway and cache), over keep-alive
// loopback connections, client included.
func BenchmarkHit(b *testing.B) {
	backend := startBackendB(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/big" {
			io.WriteString(w, strings.Repeat("0123456789abcdef", 20<<10/16))
			return
		}
		io.WriteString(w, "hello, cached")
	}))
	c := httpcache.New(httpcache.Options{Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(c.Close)
	g := New(Options{Logger: slog.New(slog.DiscardHandler), Cache: testCache{c},
		Observe: func(string, int, int64, time.Duration, string) {}})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{backend}}})
	fronts := map[string]string{"hit path": serveFrontB(b, g, g), "ServeHTTP": serveFrontB(b, g, http.HandlerFunc(g.ServeHTTP))}
	for _, path := range []string{"/small", "/big"} {
		// Stored first: the app's 20 KB answer comes chunked.
		req, _ := http.NewRequest("GET", "http://"+fronts["ServeHTTP"]+path, nil)
		req.Host = "app.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, name := range []string{"hit path", "ServeHTTP"} {
			b.Run(strings.TrimPrefix(path, "/")+"/"+name, func(b *testing.B) {
				req := []byte("GET " + path + " HTTP/1.1\r\nHost: app.localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
				b.RunParallel(func(pb *testing.PB) {
					conn, err := net.Dial("tcp", fronts[name])
					if err != nil {
						b.Error(err)
						return
					}
					defer conn.Close()
					br := bufio.NewReaderSize(conn, 64<<10)
					for pb.Next() {
						if _, err := conn.Write(req); err != nil {
							b.Error(err)
							return
						}
						if err := skipResponse(br); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// skipResponse reads one response with a Content-Length body.
func skipResponse(br *bufio.Reader) error {
	n := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if n < 0 {
		return fmt.Errorf("no Content-Length")
	}
	_, err := br.Discard(n)
	return err
}

func startBackendB(b *testing.B, h http.Handler) string {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func serveFrontB(b *testing.B, g *Gateway, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(g.Front(Guard(ln, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}), h, FrontOptions{}))
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// markCountingCache is the real cache whose handlers count how Passing is
// asked: with the hit path's lookup (marked) or looking the key up again
// (full).
type markCountingCache struct {
	c            *httpcache.Cache
	full, marked atomic.Int64
}

func (mc *markCountingCache) Handler(app string, rules []CacheRule, next http.Handler) http.Handler {
	return &markCounted{Handler: testCache{mc.c}.Handler(app, rules, next), mc: mc}
}

type markCounted struct {
	http.Handler
	mc *markCountingCache
}

func (h *markCounted) AppendHit(dst []byte, host, target string, fields []string) ([]byte, []byte, int, bool) {
	return h.Handler.(hitCache).AppendHit(dst, host, target, fields)
}

func (h *markCounted) AppendHitPass(dst []byte, host, target string, fields []string) ([]byte, []byte, int, bool, bool, bool) {
	return h.Handler.(hitPassCache).AppendHitPass(dst, host, target, fields)
}

func (h *markCounted) Passing(r *http.Request) bool {
	h.mc.full.Add(1)
	return h.Handler.(passCache).Passing(r)
}

func (h *markCounted) PassingMarked(r *http.Request, looked, marked bool) bool {
	if looked {
		h.mc.marked.Add(1)
	} else {
		h.mc.full.Add(1)
	}
	return h.Handler.(passMarkCache).PassingMarked(r, looked, marked)
}

func (h *markCounted) PassAnswered(r *http.Request, status int, cacheControl []string, hs interface{ Header() http.Header }) {
	h.Handler.(passCache).PassAnswered(r, status, cacheControl, hs)
}

// TestPassUsesHitLookup: a request Front's hit path looked up and did not
// answer is not looked up again to decide whether it is passed; one it
// did not look up (a field the hit path leaves alone) is. Either way it is
// answered as before: X-Cache MISS, from the app.
func TestPassUsesHitLookup(t *testing.T) {
	var hits atomic.Int64
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "pass")
	}))
	mc := &markCountingCache{c: httpcache.New(httpcache.Options{})}
	g := New(Options{Logger: testLogger(t), Cache: mc})
	var directs atomic.Int64
	g.onDirect = func() { directs.Add(1) }
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}}})
	addr := serveFront(t, g, g) // the gateway itself: the hit path runs
	steps := []struct {
		name                 string
		req                  string
		direct, full, marked int64
	}{
		{"first: not marked yet", "GET /p HTTP/1.1\r\nHost: app.test\r\n\r\n", 0, 0, 1},
		{"marked", "GET /p HTTP/1.1\r\nHost: app.test\r\n\r\n", 1, 0, 1},
		{"marked again", "GET /p HTTP/1.1\r\nHost: app.test\r\nAccept: */*\r\n\r\n", 1, 0, 1},
		{"not looked up by the hit path", "GET /p HTTP/1.1\r\nHost: app.test\r\nAuthorization: x\r\n\r\n", 0, 1, 0},
	}
	for i, s := range steps {
		d0, f0, m0 := directs.Load(), mc.full.Load(), mc.marked.Load()
		resp, body, _, _ := roundTrip(t, addr, s.req)
		if string(body) != "pass" || resp.Header.Get("X-Cache") != "MISS" || hits.Load() != int64(i+1) {
			t.Fatalf("%s: got %q with X-Cache %q, app hits %d", s.name, body, resp.Header.Get("X-Cache"), hits.Load())
		}
		if d, f, m := directs.Load()-d0, mc.full.Load()-f0, mc.marked.Load()-m0; d != s.direct || f != s.full || m != s.marked {
			t.Errorf("%s: direct %d, full lookups %d, hit-path verdicts %d; want %d, %d, %d", s.name, d, f, m, s.direct, s.full, s.marked)
		}
	}
}
