package gateway

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

// staticSite serves an app's static directory. The directory is opened as an
// *os.Root, so neither ".." nor a symbolic link can lead outside it; it is
// opened on first use, and again later if that failed (the directory may not
// exist yet when the route is set).
//
// Files get a strong ETag (modification time and size), Last-Modified and
// byte ranges (http.ServeContent). A client that accepts br or gzip gets
// name.br or name.gz when the directory has it beside name; text files
// without a precompressed copy are compressed on the fly. Directories serve
// their index.html and are never listed.
type staticSite struct {
	dir  string
	log  *slog.Logger
	pool *compressors

	mu   sync.Mutex // guards root
	root *os.Root
}

// mount is a static directory served under a URL prefix of an app that
// also has instances.
type mount struct {
	prefix   string // "/static" (no trailing slash), or "/" for the whole site
	site     *staticSite
	fallback bool // a missing file goes to the app instead of a 404
}

// match returns the file name path maps to under m, or false.
func (m *mount) match(p string) (string, bool) {
	if m.prefix == "/" {
		return p, true
	}
	rest, ok := strings.CutPrefix(p, m.prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return rest, true
}

// serve answers r with the file at name, a slash-separated path under the
// directory. With fallback set it writes nothing and reports false when
// there is no such file, or r is not a GET or HEAD.
func (s *staticSite) serve(w http.ResponseWriter, r *http.Request, name string, fallback bool) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if fallback {
			return false
		}
		w.Header().Set("Allow", "GET, HEAD")
		writeText(w, http.StatusMethodNotAllowed, "pier: method not allowed")
		return true
	}
	// Refuse dot-dot segments outright rather than letting them be cleaned
	// into another path: no client has a good reason to send them.
	if strings.Contains(r.URL.Path, "..") && containsDotDot(r.URL.Path) || strings.ContainsRune(name, 0) {
		writeText(w, http.StatusBadRequest, "pier: invalid URL path")
		return true
	}
	root, err := s.open()
	if err != nil {
		if fallback {
			return false
		}
		s.log.Debug("gateway: static directory unavailable", "dir", s.dir, "err", err)
		writeText(w, http.StatusServiceUnavailable, "pier: static files are not available")
		return true
	}
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" {
		name = "."
	}
	f, fi, err := openFile(root, name)
	if err == nil && fi.IsDir() {
		f.Close()
		if !strings.HasSuffix(r.URL.Path, "/") {
			target := r.URL.Path + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return true
		}
		name = path.Join(name, "index.html")
		f, fi, err = openFile(root, name)
	}
	if err != nil || !fi.Mode().IsRegular() {
		if f != nil {
			f.Close()
		}
		if fallback {
			return false
		}
		writeText(w, http.StatusNotFound, "pier: not found")
		return true
	}
	defer f.Close()

	h := w.Header()
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype != "" {
		h.Set("Content-Type", ctype)
	}
	etag := fmt.Sprintf(`"%x-%x`, fi.ModTime().UnixNano(), fi.Size())
	ae := r.Header.Get("Accept-Encoding")
	compressible := isCompressible(ctype)
	if compressible || ae != "" {
		h.Add("Vary", "Accept-Encoding")
	}

	// A precompressed copy beside the file.
	for _, enc := range [...]struct{ coding, ext string }{{"br", ".br"}, {"gzip", ".gz"}} {
		if !accepts(ae, enc.coding) {
			continue
		}
		cf, cfi, err := openFile(root, name+enc.ext)
		if err != nil {
			continue
		}
		defer cf.Close()
		if !cfi.Mode().IsRegular() {
			continue
		}
		h.Set("Content-Encoding", enc.coding)
		h.Set("ETag", etag+"-"+enc.coding+`"`)
		http.ServeContent(w, r, name, fi.ModTime(), cf)
		return true
	}

	// Compressed on the fly: text worth it, whole responses only.
	coding := ""
	if compressible && fi.Size() >= 256 && r.Header.Get("Range") == "" {
		if accepts(ae, "br") {
			coding = "br"
		} else if accepts(ae, "gzip") {
			coding = "gzip"
		}
	}
	if coding == "" {
		h.Set("ETag", etag+`"`)
		http.ServeContent(w, r, name, fi.ModTime(), f)
		return true
	}
	tag := "W/" + etag + "-" + coding + `"`
	h.Set("ETag", tag)
	h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagListHas(inm, tag) {
		delete(h, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	h.Set("Content-Encoding", coding)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return true
	}
	s.pool.copy(w, f, coding)
	return true
}

func openFile(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func (s *staticSite) open() (*os.Root, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != nil {
		return s.root, nil
	}
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, err
	}
	s.root = root
	return root, nil
}

func containsDotDot(p string) bool {
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			return true
		}
	}
	return false
}

// isCompressible reports the content types worth compressing on the fly.
func isCompressible(ctype string) bool {
	t, _, _ := strings.Cut(ctype, ";")
	switch {
	case strings.HasPrefix(t, "text/"):
		return true
	case t == "application/javascript", t == "application/json", t == "application/xml",
		t == "image/svg+xml", t == "application/wasm", t == "application/manifest+json",
		strings.HasSuffix(t, "+json"), strings.HasSuffix(t, "+xml"):
		return true
	}
	return false
}

// accepts reports whether an Accept-Encoding value allows coding (a q of 0
// refuses it; "*" accepts what is not named).
func accepts(ae, coding string) bool {
	star := false
	for ae != "" {
		var item string
		item, ae, _ = strings.Cut(ae, ",")
		name, params, _ := strings.Cut(item, ";")
		name = strings.TrimSpace(name)
		refused := false
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				v = strings.TrimRight(strings.TrimSpace(v), "0")
				refused = v == "" || v == "0." || v == "0"
			}
		}
		switch {
		case strings.EqualFold(name, coding):
			return !refused
		case name == "*":
			star = !refused
		}
	}
	return star
}

// etagListHas reports whether an If-None-Match list names tag (weak
// comparison).
func etagListHas(list, tag string) bool {
	if strings.TrimSpace(list) == "*" {
		return true
	}
	want := strings.TrimPrefix(tag, "W/")
	for _, t := range strings.Split(list, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == want {
			return true
		}
	}
	return false
}

// compressors pools the gzip and brotli writers of on-the-fly compression.
type compressors struct {
	gz, br sync.Pool
}

func (c *compressors) copy(w io.Writer, r io.Reader, coding string) {
	switch coding {
	case "gzip":
		zw, _ := c.gz.Get().(*gzip.Writer)
		if zw == nil {
			zw, _ = gzip.NewWriterLevel(w, 5)
		} else {
			zw.Reset(w)
		}
		io.Copy(zw, r)
		zw.Close()
		c.gz.Put(zw)
	case "br":
		bw, _ := c.br.Get().(*brotli.Writer)
		if bw == nil {
			bw = brotli.NewWriterLevel(w, 4)
		} else {
			bw.Reset(w)
		}
		io.Copy(bw, r)
		bw.Close()
		c.br.Put(bw)
	}
}
