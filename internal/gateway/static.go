package gateway

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
)

// staticSite serves an app's static directory. The directory is opened as an
// *os.Root, so neither ".." nor a symbolic link can lead outside it; it is
// opened on first use, and again later if that failed (the directory may not
// exist yet when the route is set).
type staticSite struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex // guards handler
	handler http.Handler
}

func (s *staticSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeText(w, http.StatusMethodNotAllowed, "pier: method not allowed")
		return
	}
	// Refuse dot-dot segments outright rather than letting them be cleaned
	// into another path: no client has a good reason to send them.
	if strings.Contains(r.URL.Path, "..") && containsDotDot(r.URL.Path) {
		writeText(w, http.StatusBadRequest, "pier: invalid URL path")
		return
	}
	h, err := s.open()
	if err != nil {
		s.log.Debug("gateway: static directory unavailable", "dir", s.dir, "err", err)
		writeText(w, http.StatusServiceUnavailable, "pier: static files are not available")
		return
	}
	h.ServeHTTP(w, r)
}

func (s *staticSite) open() (http.Handler, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handler != nil {
		return s.handler, nil
	}
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, err
	}
	s.handler = http.FileServerFS(noListingFS{root.FS()})
	return s.handler, nil
}

func containsDotDot(p string) bool {
	for _, seg := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == ".." {
			return true
		}
	}
	return false
}

// noListingFS hides directories that have no index.html, so the file server
// answers 404 for them instead of listing their content. Paths the root
// refuses (a symbolic link leading outside it) are reported as missing too.
type noListingFS struct{ fsys fs.FS }

func (n noListingFS) Open(name string) (fs.File, error) {
	f, err := n.fsys.Open(name)
	if err != nil {
		if !errors.Is(err, fs.ErrPermission) {
			err = &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		idx, err := fs.Stat(n.fsys, path.Join(name, "index.html"))
		if err != nil || idx.IsDir() {
			f.Close()
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
	}
	return f, nil
}

var _ fs.FS = noListingFS{}
