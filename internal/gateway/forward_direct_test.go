package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pier/internal/httpcache"
)

// directApp answers each path with a response of another shape: the ones
// the forwarder writes directly and the ones it leaves to Front's writer.
func directApp(t *testing.T) string {
	big := bytes.Repeat([]byte("0123456789abcdef"), 40<<10/16)
	return startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/plain":
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, "hello, world\n")
		case "/nocc": // no Cache-Control: not storable, no explicit freshness
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "no cache-control\n")
		case "/empty":
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Length", "0")
		case "/noct": // the writer sniffs a Content-Type
			h["Content-Type"] = nil
			h.Set("Cache-Control", "no-store")
			io.WriteString(w, "<html><body>sniff me</body></html>")
		case "/big":
			h.Set("Cache-Control", "private")
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/chunked":
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
		case "/trailer":
			h.Set("Trailer", "X-Sum")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "with a trailer")
			h.Set("X-Sum", "42")
		case "/204":
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			h.Set("ETag", `"v1"`)
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNotModified)
		case "/hop":
			h.Set("Cache-Control", "no-store")
			h.Set("Connection", "X-Private")
			h.Set("X-Private", "dropped")
			h.Set("Keep-Alive", "timeout=5")
			h.Set("Content-Type", "text/plain")
			h.Add("X-Multi", "one")
			h.Add("X-Multi", "two")
			h.Set("X-Spaces", "  padded\u00a0")
			io.WriteString(w, "hop-by-hop")
		case "/ids":
			h.Set("Cache-Control", "no-store")
			h.Set("X-Request-Id", "the-app's-own")
			h.Set("X-Cache", "app")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "ids")
		case "/cookie": // Set-Cookie without public: not storable
			h.Set("Cache-Control", "max-age=60")
			h.Set("Set-Cookie", "a=b")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "cookie")
		case "/date":
			h.Set("Cache-Control", "no-store")
			h.Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "dated")
		case "/hints":
			h.Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "after hints")
		case "/299":
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Type", "text/plain")
			w.WriteHeader(299)
			io.WriteString(w, "odd status")
		case "/close":
			h.Set("Cache-Control", "no-store")
			h.Set("Connection", "close")
			h.Set("Content-Type", "text/plain")
			io.WriteString(w, "closing")
		case "/404":
			h.Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "not here")
		}
	}))
}

// rawResponse reads one response off br as it came: its status line, its
// header lines sorted (Date left out, and reported), and its body's raw
// bytes (chunk framing and trailers included).
func rawResponse(t *testing.T, br *bufio.Reader, method string) (canon string, date bool) {
	t.Helper()
	var lines []string
	status := ""
	length, chunked := int64(-1), false
	code := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a response head: %v", err)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if status == "" {
			status = line
			if len(line) >= 12 {
				code, _ = strconv.Atoi(line[9:12])
			}
			continue
		}
		if line == "" {
			if code >= 100 && code < 200 {
				// An informational answer: keep it and read the final one.
				slices.Sort(lines)
				lines = append([]string{status}, lines...)
				rest, d := rawResponse(t, br, method)
				return strings.Join(lines, "\n") + "\n\n" + rest, d
			}
			break
		}
		k, v, _ := strings.Cut(line, ": ")
		switch http.CanonicalHeaderKey(k) {
		case "Date":
			date = true
			continue
		case "Content-Length":
			length, _ = strconv.ParseInt(v, 10, 64)
		case "Transfer-Encoding":
			chunked = v == "chunked"
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	var body []byte
	switch {
	case method == http.MethodHead || code == 204 || code == 304:
	case chunked:
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading a chunk: %v", err)
			}
			body = append(body, line...)
			size, _ := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
			if size == 0 {
				for {
					tl, err := br.ReadString('\n')
					if err != nil {
						t.Fatalf("reading trailers: %v", err)
					}
					body = append(body, tl...)
					if tl == "\r\n" {
						break
					}
				}
				break
			}
			chunk := make([]byte, size+2)
			if _, err := io.ReadFull(br, chunk); err != nil {
				t.Fatalf("reading a chunk: %v", err)
			}
			body = append(body, chunk...)
		}
	case length >= 0:
		body = make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("reading a body: %v", err)
		}
	}
	return status + "\n" + strings.Join(lines, "\n") + "\n\n" + string(body), date
}

// observation is what an Observe hook was told.
type observation struct {
	status int
	bytes  int64
	cache  string
}

// TestDirectSame: the same requests through two gateways, one with the
// cache's pass path and the forwarder's direct answers and one without
// (the ServeHTTP, cache and ResponseWriter path), with and without a cache
// in front of the app, get the same responses (header lines compared
// sorted, Date only for its presence, bodies byte for byte) and the same
// Observe reports; the direct answers are taken where they should be.
func TestDirectSame(t *testing.T) {
	backend := directApp(t)
	type rig struct {
		addr    string
		directs atomic.Int64
		mu      sync.Mutex
		obs     []observation
	}
	start := func(t *testing.T, slow, cache bool) *rig {
		rg := &rig{}
		opts := Options{Logger: testLogger(t), Observe: func(app string, status int, bytes int64, d time.Duration, cache string) {
			rg.mu.Lock()
			rg.obs = append(rg.obs, observation{status, bytes, cache})
			rg.mu.Unlock()
		}}
		if cache {
			opts.Cache = testCache{httpcache.New(httpcache.Options{})}
		}
		g := New(opts)
		g.slow = slow
		g.onDirect = func() { rg.directs.Add(1) }
		g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}}})
		rg.addr, _ = startFront(t, g, g)
		return rg
	}
	paths := []string{"/plain", "/nocc", "/empty", "/noct", "/big", "/chunked", "/trailer", "/204", "/304",
		"/hop", "/ids", "/cookie", "/date", "/hints", "/299", "/close", "/404", "/plain?q=1&r=%41"}
	// direct: the paths whose GET is answered directly (once the cache,
	// when there is one, marked them as passing). HEAD requests are
	// compared, not counted.
	direct := map[string]bool{"/plain": true, "/nocc": true, "/empty": true, "/big": true, "/204": true, "/304": true,
		"/hop": true, "/cookie": true, "/date": true, "/hints": true, "/299": true, "/close": true, "/404": true, "/plain?q=1&r=%41": true}
	for _, cache := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cache), func(t *testing.T) {
			fast, slow := start(t, false, cache), start(t, true, cache)
			if !cache {
				direct["/ids"] = true // the app's X-Cache passes through
				direct["/304"] = true
			} else {
				delete(direct, "/ids") // the cache replaces the app's X-Cache
				delete(direct, "/304") // a 304 does not mark a key as passing
			}
			for _, method := range []string{"GET", "HEAD"} {
				for _, path := range paths {
					for round := 0; round < 3; round++ {
						for _, extra := range []string{"", "X-Request-Id: client-id-1\r\nAccept: */*\r\n", "Connection: close\r\n"} {
							raw := method + " " + path + " HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: fixed\r\n" + extra + "\r\n"
							var got [2]string
							for i, rg := range []*rig{fast, slow} {
								before := rg.directs.Load()
								c, err := net.Dial("tcp", rg.addr)
								if err != nil {
									t.Fatal(err)
								}
								c.SetDeadline(time.Now().Add(10 * time.Second))
								io.WriteString(c, raw)
								canon, date := rawResponse(t, bufio.NewReader(c), method)
								c.Close()
								if !date {
									t.Errorf("%q: no Date", raw)
								}
								got[i] = canon
								d := rg.directs.Load() > before
								want := i == 0 && method == "GET" && direct[path] && (!cache || round > 0)
								if i == 0 && method == "GET" && direct[path] && cache && round == 0 {
									want = d // the first request of a key goes through the cache
								}
								if d != want && method == "GET" {
									t.Errorf("%s %s round %d (slow=%v): answered directly %v, want %v", method, path, round, i == 1, d, want)
								}
							}
							if got[0] != got[1] {
								t.Errorf("%q:\nfast path:\n%s\nslow path:\n%s", raw, got[0], got[1])
							}
						}
					}
				}
			}
			// The Observe reports are made after the response is written:
			// wait for the last ones.
			n := len(paths) * 2 * 3 * 3
			deadline := time.Now().Add(5 * time.Second)
			for {
				fast.mu.Lock()
				slow.mu.Lock()
				nf, ns := len(fast.obs), len(slow.obs)
				fast.mu.Unlock()
				slow.mu.Unlock()
				if nf >= n && ns >= n || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			fast.mu.Lock()
			defer fast.mu.Unlock()
			slow.mu.Lock()
			defer slow.mu.Unlock()
			if len(fast.obs) != n || !slices.Equal(fast.obs, slow.obs) {
				t.Errorf("Observe reports differ (%d, %d, want %d):\nfast: %v\nslow: %v", len(fast.obs), len(slow.obs), n, fast.obs, slow.obs)
			}
		})
	}
}

// TestPassBecomesStorable: a key the cache marked as passing goes straight
// to the app, with X-Cache: MISS, until the app answers it cacheable; the
// next request then goes through the cache again, which stores the
// response, and the one after is a hit.
func TestPassBecomesStorable(t *testing.T) {
	var cacheable atomic.Bool
	var hits atomic.Int64
	var lastID, lastXFF atomic.Value
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		lastID.Store(r.Header.Get("X-Request-Id"))
		lastXFF.Store(r.Header.Get("X-Forwarded-For"))
		if cacheable.Load() {
			w.Header().Set("Cache-Control", "public, max-age=60")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "flip")
	}))
	g := New(Options{Logger: testLogger(t), Cache: testCache{httpcache.New(httpcache.Options{})}})
	var directs atomic.Int64
	g.onDirect = func() { directs.Add(1) }
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}}})
	addr, _ := startFront(t, g, g)
	get := func() (string, int64) {
		t.Helper()
		before := directs.Load()
		resp, body, _, _ := roundTrip(t, addr, "GET /flip HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: req-1\r\n\r\n")
		if string(body) != "flip" || resp.Header.Get("X-Request-Id") != "req-1" {
			t.Fatalf("got %q with X-Request-Id %q", body, resp.Header.Get("X-Request-Id"))
		}
		return resp.Header.Get("X-Cache"), directs.Load() - before
	}
	steps := []struct {
		flip   bool
		xcache string
		direct int64
		hits   int64
	}{
		{false, "MISS", 0, 1}, // through the cache, which marks the key
		{false, "MISS", 1, 2}, // passed, answered directly
		{false, "MISS", 1, 3},
		{true, "MISS", 1, 4}, // passed: now storable, the mark goes
		{true, "MISS", 0, 5}, // through the cache, which stores it
		{true, "HIT", 0, 5},
	}
	for i, s := range steps {
		if s.flip {
			cacheable.Store(true)
		}
		xc, d := get()
		if xc != s.xcache || d != s.direct || hits.Load() != s.hits {
			t.Errorf("request %d: X-Cache %q, direct %d, app hits %d; want %q, %d, %d", i+1, xc, d, hits.Load(), s.xcache, s.direct, s.hits)
		}
	}
	if id, xff := lastID.Load(), lastXFF.Load(); id != "req-1" || xff != "127.0.0.1" {
		t.Errorf("the app got X-Request-Id %q and X-Forwarded-For %q", id, xff)
	}
}

// TestPassPathMarks: once a path answered a request not storable, a new
// host or query of that path goes straight to the app from its first
// request; a host whose answer to it is storable is stored from its
// second request on, and the path's other new keys then go through the
// cache first again.
func TestPassPathMarks(t *testing.T) {
	var hits atomic.Int64
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Host == "good.test" {
			w.Header().Set("Cache-Control", "public, max-age=60")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "page of "+r.Host)
	}))
	g := New(Options{Logger: testLogger(t), Cache: testCache{httpcache.New(httpcache.Options{})}})
	var directs atomic.Int64
	g.onDirect = func() { directs.Add(1) }
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"*.test"}, Backends: []string{backend}}})
	addr, _ := startFront(t, g, g)
	steps := []struct {
		host, target string
		xcache       string
		direct       int64
	}{
		{"a.test", "/page", "MISS", 0},     // through the cache: /page is marked
		{"b.test", "/page", "MISS", 1},     // a new host, passed
		{"a.test", "/page?q=1", "MISS", 1}, // a new query, passed
		{"C.test:80", "/page", "MISS", 1},  // a new host again
		{"good.test", "/page", "MISS", 1},  // passed; storable: the path's mark goes
		{"good.test", "/page", "MISS", 0},  // through the cache, which stores it
		{"good.test", "/page", "HIT", 0},   //
		{"d.test", "/page", "MISS", 0},     // a new key goes through the cache again
		{"d.test", "/page", "MISS", 1},     // and is marked on its own
		{"a.test", "/page?q=2", "MISS", 0}, // the path is not marked again
		{"good.test", "/other", "MISS", 0}, // another path: stored
	}
	for i, s := range steps {
		before := directs.Load()
		resp, body, _, _ := roundTrip(t, addr, "GET "+s.target+" HTTP/1.1\r\nHost: "+s.host+"\r\n\r\n")
		if string(body) != "page of "+s.host {
			t.Fatalf("step %d: %s%s: got %q", i+1, s.host, s.target, body)
		}
		if xc, d := resp.Header.Get("X-Cache"), directs.Load()-before; xc != s.xcache || d != s.direct {
			t.Errorf("step %d: %s%s: X-Cache %q, direct %d; want %q, %d", i+1, s.host, s.target, xc, d, s.xcache, s.direct)
		}
	}
	if n := hits.Load(); n != int64(len(steps)-1) {
		t.Errorf("the app got %d requests, want %d (all but the hit)", n, len(steps)-1)
	}
}

// rawApp is an app instance on a raw connection: it answers every request
// with the bytes resp returns, then closes the connection.
func rawApp(t testing.TB, resp func() []byte) string {
	return connApp(t, func(c net.Conn) { c.Write(resp()) })
}

// connApp is an app instance on raw connections: answer writes the answer
// to each request read, then the connection is closed.
func connApp(t testing.TB, answer func(c net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				answer(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// FuzzDirectSame: whatever response head and body an app sends, the
// gateway with direct answers and the one without answer the client alike.
func FuzzDirectSame(f *testing.F) {
	f.Add(200, "Content-Type: text/plain\nCache-Control: no-store", "hello", true, false)
	f.Add(200, "X-A: 1\nX-A: 2\nConnection: X-A", "no type", true, false)
	f.Add(204, "Content-Length: 0", "", false, false)
	f.Add(200, "Transfer-Encoding: chunked", "5\r\nhello\r\n0\r\n\r\n", false, false)
	f.Add(200, "Content-Length: 3\nContent-Length: 3\nContent-Type: a/b", "abc", false, false)
	f.Add(304, "ETag: \"x\"", "", false, true)
	f.Add(299, "Date: Mon, 02 Jan 2006 15:04:05 GMT\nContent-Type: x/y", "odd", true, true)
	f.Add(200, "Trailer: X-T\nContent-Type: a/b", "abc", true, false)
	var mu sync.Mutex
	var current []byte
	backend := rawApp(f, func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return current
	})
	var gws [2]string
	for i, slow := range []bool{false, true} {
		g := New(Options{Logger: slog.New(slog.DiscardHandler)})
		g.slow = slow
		g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		srv := &http.Server{Handler: g}
		go srv.Serve(g.Front(ln, g, FrontOptions{ReadHeaderTimeout: 10 * time.Second}))
		f.Cleanup(func() { srv.Close() })
		gws[i] = ln.Addr().String()
	}
	f.Fuzz(func(t *testing.T, status int, fields, body string, withLength, head bool) {
		if status < 100 || status > 999 || len(fields) > 2000 || len(body) > 70000 {
			t.Skip()
		}
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP/1.1 %03d Fuzz\r\n", status)
		for line := range strings.SplitSeq(fields, "\n") {
			if line != "" {
				b.WriteString(line + "\r\n")
			}
		}
		if withLength {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
		b.WriteString("\r\n" + body)
		mu.Lock()
		current = []byte(b.String())
		mu.Unlock()
		method := "GET"
		if head {
			method = "HEAD"
		}
		var got [2]string
		for i, addr := range gws {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, method+" /fuzz HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: fuzz\r\nConnection: close\r\n\r\n")
			// Whatever follows the response (nothing, or the rest of
			// a cut body) is read too: both ways must send it alike.
			all, _ := io.ReadAll(c)
			c.Close()
			got[i] = canonical(all)
		}
		if got[0] != got[1] {
			t.Errorf("app sent %q:\ndirect:\n%s\nwithout:\n%s", current, got[0], got[1])
		}
	})
}

// canonical is a client's whole read of a connection with the header
// lines of its responses' heads (informational ones, then the final one)
// sorted and their Date values blanked.
func canonical(all []byte) string {
	var out strings.Builder
	for {
		head, rest, ok := bytes.Cut(all, []byte("\r\n\r\n"))
		if !ok {
			out.Write(all)
			return out.String()
		}
		lines := strings.Split(string(head), "\r\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "Date: ") {
				lines[i] = "Date: -"
			}
		}
		slices.Sort(lines[1:])
		out.WriteString(strings.Join(lines, "\r\n") + "\r\n\r\n")
		all = rest
		if !strings.HasPrefix(lines[0], "HTTP/1.1 1") {
			out.Write(all)
			return out.String()
		}
	}
}

// TestRequestIDs: the request ids a gateway makes are distinct, sane, and
// read as the prefix and a hex counter; the ServeHTTP path sends the
// app the id the client gets, the client's own when it is sane.
func TestRequestIDs(t *testing.T) {
	var ids requestIDs
	ids.init()
	seen := map[string]bool{}
	for i := 1; i <= 1000; i++ {
		v := ids.nextSlice()
		if len(v) != 1 || !saneID(v[0]) || seen[v[0]] || v[0] != string(ids.prefix[:])+strconv.FormatUint(uint64(i), 16) {
			t.Fatalf("id %d: %q (seen before: %v)", i, v, seen[v[0]])
		}
		seen[v[0]] = true
	}
	var sent atomic.Value
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent.Store(r.Header.Get("X-Request-Id"))
	}))
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}}})
	addr, _ := startFront(t, g, g)
	for _, tc := range []struct{ field, want string }{
		{"X-Request-Id: client-1\r\n", "client-1"},
		{"X-Request-Id: not sane!\r\n", ""},
		{"", ""},
	} {
		resp, _, _, _ := roundTrip(t, addr, "GET / HTTP/1.1\r\nHost: app.test\r\n"+tc.field+"\r\n")
		got := resp.Header.Get("X-Request-Id")
		if tc.want != "" && got != tc.want || tc.want == "" && (!strings.HasPrefix(got, string(g.ids.prefix[:])) || !saneID(got)) {
			t.Errorf("%q: the client got id %q", tc.field, got)
		}
		if s, _ := sent.Load().(string); s != got {
			t.Errorf("%q: the app got id %q, the client %q", tc.field, s, got)
		}
	}
}
