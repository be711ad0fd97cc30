package httpcache

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bigBody is n bytes that depend on tag, so that a body served for the
// wrong URL or version shows.
func bigBody(tag string, n int) []byte {
	h := fnv.New64a()
	h.Write([]byte(tag))
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(n)))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		x := r.Uint64()
		for j := i; j < min(i+8, n); j++ {
			b[j] = 'a' + byte(x%26)
			x >>= 8
		}
	}
	return b
}

// bodyFiles lists the cache's files in dir (bodies and temporary files)
// with their sizes.
func bodyFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, e := range entries {
		if ours(e.Name()) {
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out[e.Name()] = fi.Size()
		}
	}
	return out
}

// settled waits for the cache's fills to end: a client has the whole
// response before the fill that served it stores it.
func settled(t *testing.T, c *Cache) {
	t.Helper()
	waitFor(t, "fills to end", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.flights) == 0
	})
}

// getS is get, then settled.
func (o *origin) getS(path string, hdr ...string) result {
	o.t.Helper()
	r := o.get(path, hdr...)
	settled(o.t, o.cache)
	return r
}

// sameBody fails unless got is want, without printing megabytes.
func sameBody(t *testing.T, what string, r result, cache string, want []byte) {
	t.Helper()
	if r.cache != cache || r.body != string(want) {
		i := 0
		for i < len(r.body) && i < len(want) && r.body[i] == want[i] {
			i++
		}
		t.Fatalf("%s: X-Cache %q status %d, %d bytes (first difference at %d); want %q and the %d stored bytes",
			what, r.cache, r.status, len(r.body), i, cache, len(want))
	}
}

// diskApp answers /<anything> with bigBody(path, size) where size is the
// ?size= query (default 200 KiB), cacheable for a minute, tagged with the
// first path segment. ?stream=1 sends it in flushed pieces without a
// Content-Length.
func diskApp(versions *atomic.Int64) http.HandlerFunc {
	var mu sync.Mutex
	made := map[string][]byte{} // bodies made once: the race detector makes bigBody slow
	return func(w http.ResponseWriter, r *http.Request) {
		size := 200 << 10
		if s := r.URL.Query().Get("size"); s != "" {
			size, _ = strconv.Atoi(s)
		}
		tag := r.URL.Path
		if versions != nil {
			tag += fmt.Sprint(versions.Load())
		}
		mu.Lock()
		body, ok := made[tag+"\x00"+strconv.Itoa(size)]
		if !ok {
			body = bigBody(tag, size)
			made[tag+"\x00"+strconv.Itoa(size)] = body
		}
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Tag", strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")[0])
		w.Header().Set("ETag", `"`+tag+`"`)
		if r.URL.Query().Get("stream") != "" {
			for len(body) > 0 {
				n := min(len(body), 10000)
				w.Write(body[:n])
				w.(http.Flusher).Flush()
				body = body[n:]
			}
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
}

func diskOpts(t *testing.T, max int64) Options {
	return Options{Disk: DiskOptions{Dir: t.TempDir(), MaxBytes: max, MinBytes: 64 << 10}}
}

func TestDiskHit(t *testing.T) {
	opts := diskOpts(t, 0)
	o := newOrigin(t, opts, nil, diskApp(nil))
	for _, tt := range []struct {
		name, path string
		size       int
	}{
		{"content-length", "/a", 200 << 10},
		{"streamed without length", "/b?stream=1&size=307200", 300 << 10},
		{"at the threshold", "/c?size=65536", 64 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := strings.Cut(tt.path, "?")
			want := bigBody(p, tt.size)
			before := len(bodyFiles(t, opts.Disk.Dir))
			sameBody(t, "first", o.getS(tt.path), "MISS", want)
			files := bodyFiles(t, opts.Disk.Dir)
			if len(files) != before+1 {
				t.Fatalf("files after the miss: %v, want %d", files, before+1)
			}
			r := o.get(tt.path)
			sameBody(t, "second", r, "HIT", want)
			if got := r.header.Get("Content-Length"); got != strconv.Itoa(tt.size) {
				t.Errorf("Content-Length %q, want %d", got, tt.size)
			}
			if r := o.do("HEAD", tt.path); r.cache != "HIT" || r.body != "" || r.header.Get("Content-Length") != strconv.Itoa(tt.size) {
				t.Errorf("HEAD: %q %d bytes Content-Length %q", r.cache, len(r.body), r.header.Get("Content-Length"))
			}
		})
	}
	// Below the threshold, the body stays in memory.
	before := len(bodyFiles(t, opts.Disk.Dir))
	small := bigBody("/small", 1000)
	o.getS("/small?size=1000")
	sameBody(t, "small", o.get("/small?size=1000"), "HIT", small)
	if got := len(bodyFiles(t, opts.Disk.Dir)); got != before {
		t.Errorf("a small body went to disk: %d files, want %d", got, before)
	}
	if got := o.hits.Load(); got != 4 {
		t.Errorf("app answered %d requests, want 4", got)
	}
}

func TestDiskRangeAndConditional(t *testing.T) {
	o := newOrigin(t, diskOpts(t, 0), nil, diskApp(nil))
	want := bigBody("/r", 200<<10)
	o.getS("/r")
	for _, tt := range []struct {
		rng       string
		from, end int
	}{
		{"bytes=0-99", 0, 100},
		{"bytes=100000-100099", 100000, 100100},
		{"bytes=-10", len(want) - 10, len(want)},
		{"bytes=204000-", 204000, len(want)},
	} {
		r := o.get("/r", "Range: "+tt.rng)
		if r.status != http.StatusPartialContent || r.cache != "HIT" || r.body != string(want[tt.from:tt.end]) {
			t.Errorf("Range %s: %d %q %d bytes, want 206 HIT bytes %d-%d", tt.rng, r.status, r.cache, len(r.body), tt.from, tt.end)
		}
	}
	if r := o.get("/r", `If-None-Match: "/r"`); r.status != http.StatusNotModified || r.cache != "HIT" {
		t.Errorf("If-None-Match: %d %q, want 304 HIT", r.status, r.cache)
	}
}

func TestDiskEviction(t *testing.T) {
	opts := diskOpts(t, 1<<20) // room for four 200 KiB bodies, with the room a write reserves
	o := newOrigin(t, opts, nil, diskApp(nil))
	for i := range 8 {
		p := fmt.Sprintf("/e%d", i)
		sameBody(t, p, o.getS(p), "MISS", bigBody(p, 200<<10))
		var total int64
		for _, n := range bodyFiles(t, opts.Disk.Dir) {
			total += n
		}
		if total > opts.Disk.MaxBytes {
			t.Fatalf("after %s: %d bytes on disk, bound %d", p, total, opts.Disk.MaxBytes)
		}
		if used, _ := o.cache.DiskUsage(); used != total {
			t.Fatalf("after %s: the tier counts %d bytes, the directory holds %d", p, used, total)
		}
	}
	if got := len(bodyFiles(t, opts.Disk.Dir)); got < 2 || got > 5 {
		t.Fatalf("%d files on disk, want the few that fit", got)
	}
	// The newest is there; the oldest went and is fetched again, right.
	sameBody(t, "newest", o.get("/e7"), "HIT", bigBody("/e7", 200<<10))
	sameBody(t, "oldest", o.getS("/e0"), "MISS", bigBody("/e0", 200<<10))
	sameBody(t, "oldest again", o.get("/e0"), "HIT", bigBody("/e0", 200<<10))

	// A body larger than the tier's entry bound passes through, leaving
	// nothing behind.
	big := bigBody("/huge", 600<<10)
	for range 2 {
		sameBody(t, "too large", o.getS("/huge?size="+strconv.Itoa(600<<10)), "MISS", big)
		sameBody(t, "too large streamed", o.getS("/huge?stream=1&size="+strconv.Itoa(600<<10)), "MISS", big)
	}
	for name := range bodyFiles(t, opts.Disk.Dir) {
		if strings.HasSuffix(name, ".tmp") {
			t.Errorf("temporary file left: %s", name)
		}
	}
}

func TestDiskPurge(t *testing.T) {
	opts := diskOpts(t, 0)
	o := newOrigin(t, opts, nil, diskApp(nil))
	paths := []string{"/posts/1", "/posts/2", "/news/1", "/news/2", "/about"}
	fill := func() {
		for _, p := range paths {
			o.getS(p)
		}
		if got := len(bodyFiles(t, opts.Disk.Dir)); got != len(paths) {
			t.Fatalf("%d files, want %d", got, len(paths))
		}
	}
	for _, tt := range []struct {
		name  string
		p     Purge
		files int
	}{
		{"url", Purge{URLs: []string{"/about"}}, 4},
		{"prefix", Purge{Prefixes: []string{"/posts/"}}, 3},
		{"tag", Purge{Tags: []string{"news"}}, 3},
		{"all", Purge{All: true}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fill()
			tt.p.App = "app"
			o.cache.Purge(tt.p)
			if got := len(bodyFiles(t, opts.Disk.Dir)); got != tt.files {
				t.Errorf("%d files after the purge, want %d", got, tt.files)
			}
			if used, files := o.cache.DiskUsage(); files != tt.files || used != int64(tt.files)*(200<<10) {
				t.Errorf("the tier counts %d files, %d bytes after the purge; want %d files", files, used, tt.files)
			}
		})
	}
}

func TestDiskFileGoneOrCorrupt(t *testing.T) {
	opts := diskOpts(t, 0)
	o := newOrigin(t, opts, nil, diskApp(nil))
	want := bigBody("/g", 200<<10)
	only := func() string {
		t.Helper()
		files := bodyFiles(t, opts.Disk.Dir)
		if len(files) != 1 {
			t.Fatalf("files %v, want one", files)
		}
		for name := range files {
			return filepath.Join(opts.Disk.Dir, name)
		}
		return ""
	}
	for _, tt := range []struct {
		name  string
		spoil func(path string) error
	}{
		{"deleted", os.Remove},
		{"truncated", func(p string) error { return os.Truncate(p, 1000) }},
		{"grown", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("junk")
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o.cache.Purge(Purge{App: "app", All: true})
			sameBody(t, "fill", o.getS("/g"), "MISS", want)
			sameBody(t, "hit", o.get("/g"), "HIT", want)
			if err := tt.spoil(only()); err != nil {
				t.Fatal(err)
			}
			sameBody(t, "spoiled", o.getS("/g"), "MISS", want)
			sameBody(t, "stored again", o.get("/g"), "HIT", want)
			only()
		})
	}
}

func TestDiskRevalidateAndStale(t *testing.T) {
	var failing atomic.Bool
	var conditional atomic.Int64
	want := bigBody("/v", 200<<10)
	o := newOrigin(t, diskOpts(t, 0), nil, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "broken", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=600")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			conditional.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(want)))
		w.Write(want)
	})
	sameBody(t, "fill", o.getS("/v"), "MISS", want)
	o.clock.advance(20 * time.Second)
	sameBody(t, "revalidated", o.get("/v"), "REVALIDATED", want)
	sameBody(t, "after the 304", o.get("/v"), "HIT", want)
	if conditional.Load() != 1 {
		t.Errorf("%d conditional requests, want 1", conditional.Load())
	}
	failing.Store(true)
	o.clock.advance(20 * time.Second)
	sameBody(t, "app fails", o.get("/v"), "STALE", want)
}

// TestDiskConcurrentEviction has many clients read bodies through a tier
// too small for them, so that files are evicted while others read them:
// every answer must be its URL's body, whatever the cache says.
func TestDiskConcurrentEviction(t *testing.T) {
	opts := diskOpts(t, 1<<20)
	o := newOrigin(t, opts, nil, diskApp(nil))
	bodies := map[string][]byte{}
	for i := range 12 {
		p := fmt.Sprintf("/c%d", i)
		bodies[p] = bigBody(p, 200<<10)
	}
	var wg sync.WaitGroup
	var hits atomic.Int64
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 20 {
				p := fmt.Sprintf("/c%d", r.IntN(12))
				req, _ := http.NewRequest("GET", o.url+p, nil)
				if r.IntN(4) == 0 {
					req.Header.Set("Range", "bytes=1000-1999")
				}
				resp, err := o.client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := bodies[p]
				if resp.StatusCode == http.StatusPartialContent {
					want = want[1000:2000]
				}
				if err != nil || !bytes.Equal(b, want) {
					errs <- fmt.Errorf("%s (%s, %d): %d bytes, err %v: not its body", p, resp.Header.Get("X-Cache"), resp.StatusCode, len(b), err)
					return
				}
				if resp.Header.Get("X-Cache") == "HIT" {
					hits.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if used, _ := o.cache.DiskUsage(); used > opts.Disk.MaxBytes {
		t.Errorf("%d bytes on disk, bound %d", used, opts.Disk.MaxBytes)
	}
	// Both must have happened for the test to mean anything.
	if h, a := hits.Load(), o.hits.Load(); h == 0 || a <= 12 {
		t.Errorf("%d hits, %d requests to the app: want some of each beyond the first fills", h, a)
	}
}

// TestDiskOpenClose: a directory's bodies from a previous run go at Open
// (other files stay), a second cache cannot share the directory, and
// Close leaves no file of the cache behind.
func TestDiskOpenClose(t *testing.T) {
	dir := t.TempDir()
	stale := []string{"0123456789abcdef01234567-7.body", "12.tmp"}
	keep := []string{"notes.txt", "7.body", "abc-x.body", "12.tmp.bak"}
	for _, name := range append(stale, keep...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Disk: DiskOptions{Dir: dir, MinBytes: 1 << 10}}
	o := newOrigin(t, opts, nil, diskApp(nil))
	names := func() string {
		entries, _ := os.ReadDir(dir)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	if got, want := names(), sortedWords(".pier-httpcache.lock 12.tmp.bak 7.body abc-x.body notes.txt"); got != want {
		t.Errorf("after Open: %q, want %q", got, want)
	}
	if _, err := Open(opts); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second cache on the directory: err %v, want in use", err)
	}
	for i := range 3 {
		o.getS(fmt.Sprintf("/k%d", i))
	}
	if got := len(bodyFiles(t, dir)); got != 3 {
		t.Fatalf("%d body files, want 3", got)
	}
	o.cache.Close()
	if got, want := names(), sortedWords("12.tmp.bak 7.body abc-x.body notes.txt"); got != want {
		t.Errorf("after Close: %q, want %q", got, want)
	}
	// A new cache on the directory starts empty and works.
	o2 := newOrigin(t, opts, nil, diskApp(nil))
	sameBody(t, "after a restart", o2.getS("/k0"), "MISS", bigBody("/k0", 200<<10))
	sameBody(t, "after a restart", o2.get("/k0"), "HIT", bigBody("/k0", 200<<10))
	o2.cache.Close()
	if got := len(bodyFiles(t, dir)); got != 0 {
		t.Errorf("%d body files after Close", got)
	}
}

func TestDiskOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts DiskOptions
		err  string
	}{
		{"threshold above the largest body", DiskOptions{MaxBytes: 1 << 20, MinBytes: 512 << 10}, "raise its size or lower the threshold"},
		{"entry bound above the size", DiskOptions{MaxBytes: 1 << 20, MaxEntryBytes: 4 << 20}, ""},
		{"a file where the directory goes", DiskOptions{Dir: "file"}, "not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.opts.Dir = filepath.Join(dir, "bodies")
			if tt.err == "not a directory" {
				os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
				tt.opts.Dir = filepath.Join(dir, "file", "bodies")
			}
			c, err := Open(Options{Disk: tt.opts})
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if c.disk.maxEntry != tt.opts.MaxBytes {
					t.Errorf("largest body %d, want the tier's size %d", c.disk.maxEntry, tt.opts.MaxBytes)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err %v, want one saying %q", err, tt.err)
			}
		})
	}
}

func sortedWords(s string) string {
	w := strings.Fields(s)
	sort.Strings(w)
	return strings.Join(w, " ")
}

// TestDiskWriteFailure: when bodies cannot be written (the directory is
// gone), responses are served all the same and not stored.
func TestDiskWriteFailure(t *testing.T) {
	opts := diskOpts(t, 0)
	o := newOrigin(t, opts, nil, diskApp(nil))
	if err := os.RemoveAll(opts.Disk.Dir); err != nil {
		t.Fatal(err)
	}
	want := bigBody("/w", 200<<10)
	sameBody(t, "first", o.getS("/w"), "MISS", want)
	sameBody(t, "second", o.get("/w"), "MISS", want)
	sameBody(t, "streamed", o.get("/w?stream=1"), "MISS", want)
	if used, files := o.cache.DiskUsage(); used != 0 || files != 0 {
		t.Errorf("the tier counts %d bytes in %d files", used, files)
	}
}

// TestDiskAbortedResponse: a body cut short by the app is neither stored
// nor left on disk.
func TestDiskAbortedResponse(t *testing.T) {
	opts := diskOpts(t, 0)
	want := bigBody("/cut", 300<<10)
	o := newOrigin(t, opts, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(want)))
		w.Write(want[:200<<10])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection to the proxy breaks mid-body
	})
	for range 2 {
		req, _ := http.NewRequest("GET", o.url+"/cut", nil)
		resp, err := o.client.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && len(b) == len(want) {
				t.Fatalf("a cut response arrived whole")
			}
		}
	}
	waitFor(t, "no file left", func() bool { return len(bodyFiles(t, opts.Disk.Dir)) == 0 })
	if used, files := o.cache.DiskUsage(); used != 0 || files != 0 {
		t.Errorf("the tier counts %d bytes in %d files", used, files)
	}
}

func TestDiskNames(t *testing.T) {
	for _, tt := range []struct {
		name string
		ours bool
	}{
		{"0123456789abcdef01234567-7.body", true},
		{"ab-1.body", true},
		{"12.tmp", true},
		{"7.body", false},
		{"-7.body", false},
		{"xyz-7.body", false},
		{"ab-.body", false},
		{"ab-7.body.bak", false},
		{".tmp", false},
		{"a.tmp", false},
		{".pier-httpcache.lock", false},
		{"notes.txt", false},
	} {
		if got := ours(tt.name); got != tt.ours {
			t.Errorf("ours(%q) = %v, want %v", tt.name, got, tt.ours)
		}
	}
}

// TestDiskVariantsAndReplacement: each Vary variant has its own file; a
// replaced variant's file goes, the other variant's stays; an object the
// memory tier lets expire takes its files along.
func TestDiskVariantsAndReplacement(t *testing.T) {
	opts := diskOpts(t, 0)
	var version atomic.Int64
	o := newOrigin(t, opts, nil, func(w http.ResponseWriter, r *http.Request) {
		lang := r.Header.Get("Accept-Language")
		body := bigBody(r.URL.Path+lang+fmt.Sprint(version.Load()), 100<<10)
		if r.URL.Path == "/short" {
			w.Header().Set("Cache-Control", "max-age=1") // kept by the memory tier for a second
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		w.Header().Set("Vary", "Accept-Language")
		w.Write(body)
	})
	body := func(lang string) []byte { return bigBody("/x"+lang+fmt.Sprint(version.Load()), 100<<10) }
	sameBody(t, "en", o.getS("/x", "Accept-Language: en"), "MISS", body("en"))
	sameBody(t, "fr", o.getS("/x", "Accept-Language: fr"), "MISS", body("fr"))
	sameBody(t, "en hit", o.get("/x", "Accept-Language: en"), "HIT", body("en"))
	sameBody(t, "fr hit", o.get("/x", "Accept-Language: fr"), "HIT", body("fr"))
	before := bodyFiles(t, opts.Disk.Dir)
	if len(before) != 2 {
		t.Fatalf("files %v, want one per variant", before)
	}
	o.clock.advance(61 * time.Second)
	version.Add(1)
	sameBody(t, "en again", o.getS("/x", "Accept-Language: en"), "MISS", body("en"))
	after := bodyFiles(t, opts.Disk.Dir)
	kept := 0
	for name := range after {
		if _, ok := before[name]; ok {
			kept++
		}
	}
	if len(after) != 2 || kept != 1 {
		t.Errorf("files before %v, after %v: want the fr file kept and the en file replaced", before, after)
	}
	if used, files := o.cache.DiskUsage(); files != 2 || used != 2*(100<<10) {
		t.Errorf("the tier counts %d files, %d bytes; want 2 files", files, used)
	}

	o.cache.Purge(Purge{App: "app", All: true})
	o.getS("/short", "Accept-Language: en")
	if got := len(bodyFiles(t, opts.Disk.Dir)); got != 1 {
		t.Fatalf("%d files, want 1", got)
	}
	waitFor(t, "the expired object's file to go", func() bool { return len(bodyFiles(t, opts.Disk.Dir)) == 0 })
}

// TestDiskCommitFailure: a body whose file cannot be kept once written
// (its directory went while it streamed) reaches the client whole and is
// not stored; the tier's accounting returns to zero.
func TestDiskCommitFailure(t *testing.T) {
	opts := diskOpts(t, 0)
	want := bigBody("/slow", 300<<10)
	proceed := make(chan struct{})
	o := newOrigin(t, opts, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(want)))
		w.Write(want[:100<<10])
		w.(http.Flusher).Flush()
		<-proceed
		w.Write(want[100<<10:])
	})
	done := make(chan result, 1)
	go func() { done <- o.get("/slow") }()
	waitFor(t, "the body's temporary file", func() bool { return len(bodyFiles(t, opts.Disk.Dir)) == 1 })
	if err := os.RemoveAll(opts.Disk.Dir); err != nil {
		t.Fatal(err)
	}
	close(proceed)
	sameBody(t, "streamed", <-done, "MISS", want)
	settled(t, o.cache)
	if used, files := o.cache.DiskUsage(); used != 0 || files != 0 {
		t.Errorf("the tier counts %d bytes in %d files", used, files)
	}
	sameBody(t, "again", o.getS("/slow"), "MISS", want)
}
