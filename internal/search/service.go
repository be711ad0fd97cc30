// Package search gives every pier app full-text search: per-app indexes
// stored on disk with bleve, behind a subset of Elasticsearch's REST API
// (index management, documents, bulk, search with the query DSL,
// highlighting and aggregations), so that existing Elasticsearch clients
// work unchanged.
//
// The parts: Service owns the indexes of every app ($dir/<app>/<index>, one
// bleve index each) and their lifecycle; Index writes and reads documents
// (mapping.go and document.go turn Elasticsearch mappings and JSON
// documents into bleve documents); query.go, querystring.go, request.go and
// aggs.go translate Elasticsearch searches into bleve searches and bleve
// results back (collect.go computes aggregations from doc values while
// bleve collects the hits); http.go is the REST API. A write is
// acknowledged only once bleve has persisted it; indexes unused for a
// while are closed and reopen on use.
package search

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
)

// Options configure a Service.
type Options struct {
	// Dir holds the indexes, one directory per app and, in it, one bleve
	// index per Elasticsearch index. Required.
	Dir string
	// Logger receives errors the clients do not see. Nil: discarded.
	Logger *slog.Logger
	// IdleClose is how long an index stays open unused: then its files
	// and goroutines are released, and its next use opens it again, so
	// that many apps with many indexes hold a bounded number of open
	// files. Zero: 5 minutes; negative: never.
	IdleClose time.Duration
}

// Service manages the search indexes of every app. Indexes open on first
// use and close when idle (Options.IdleClose), deleted, or on Close.
type Service struct {
	dir       string
	log       *slog.Logger
	idleClose time.Duration
	stop      chan struct{}  // closed by Close: ends the idle closer
	done      sync.WaitGroup // the idle closer

	mu     sync.Mutex        // guards open, closed
	open   map[string]*Index // by "<app>/<index>"
	closed bool
}

// Open returns a Service over opts.Dir, creating it if needed and removing
// what an interrupted create or delete left there.
func Open(opts Options) (*Service, error) {
	if opts.Dir == "" {
		return nil, errors.New("search: no directory")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(opts.Dir, "*", ".*"))
	for _, p := range leftovers {
		opts.Logger.Info("removing an index left half created or deleted", "path", p)
		os.RemoveAll(p)
	}
	if opts.IdleClose == 0 {
		opts.IdleClose = 5 * time.Minute
	}
	s := &Service{dir: opts.Dir, log: opts.Logger, idleClose: opts.IdleClose,
		stop: make(chan struct{}), open: map[string]*Index{}}
	if s.idleClose > 0 {
		s.done.Add(1)
		go s.closeIdle()
	}
	return s, nil
}

// closeIdle closes, every so often, the indexes unused for idleClose.
func (s *Service) closeIdle() {
	defer s.done.Done()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("idle index closer panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	tick := time.NewTicker(max(s.idleClose/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		open := slices.Collect(maps.Values(s.open))
		s.mu.Unlock()
		before := time.Now().Add(-s.idleClose)
		for _, ix := range open {
			closed, err := ix.closeIfIdle(before)
			if err != nil {
				s.log.Warn("close idle index", "app", ix.App, "index", ix.Name, "err", err)
			} else if closed {
				s.log.Debug("closed idle index", "app", ix.App, "index", ix.Name)
			}
		}
	}
}

// Close closes every open index.
func (s *Service) Close() error {
	s.mu.Lock()
	if !s.closed {
		close(s.stop)
	}
	s.closed = true
	open := s.open
	s.open = map[string]*Index{}
	s.mu.Unlock()
	s.done.Wait()
	var errs []error
	for _, ix := range open {
		errs = append(errs, ix.close())
	}
	return errors.Join(errs...)
}

var errClosed = errors.New("search: service closed")

var indexNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._+-]{0,254}$`)

// checkIndexName applies Elasticsearch's rules for index names, a little
// stricter: lower-case letters, digits and . _ + -, not starting with one
// of the punctuation marks, at most 255 bytes.
func checkIndexName(name string) error {
	if !indexNameRE.MatchString(name) || name == "." || name == ".." {
		return &Error{Status: 400, Type: typeInvalidIndex, Index: name,
			Reason: "Invalid index name [" + name + "], must be lowercase letters, digits and . _ + -, start with a letter or digit, and be at most 255 bytes"}
	}
	return nil
}

// appDirRE is what pier accepts as an app name in paths.
var appDirRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

func (s *Service) path(app, name string) string { return filepath.Join(s.dir, app, name) }

// Index returns the open index app/name, opening it if needed; if it does
// not exist and create is set, it is created with a dynamic mapping, the
// way Elasticsearch creates an index on a document's first write.
func (s *Service) Index(ctx context.Context, app, name string, create bool) (*Index, error) {
	if !appDirRE.MatchString(app) {
		return nil, illegalArgument("invalid app name [%s]", app)
	}
	if err := checkIndexName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	key := app + "/" + name
	if ix := s.open[key]; ix != nil {
		return ix, nil
	}
	path := s.path(app, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, indexNotFound(name)
		}
		m, _ := parseCreateBody(nil)
		if err := s.create(app, name, m); err != nil {
			return nil, err
		}
	}
	ix, err := openIndex(app, name, path)
	if err != nil {
		return nil, err
	}
	s.open[key] = ix
	return ix, nil
}

// CreateIndex creates app/name with the settings and mappings of body
// (the JSON of PUT /<index>).
func (s *Service) CreateIndex(ctx context.Context, app, name string, body []byte) error {
	if err := checkIndexName(name); err != nil {
		return err
	}
	if !appDirRE.MatchString(app) {
		return illegalArgument("invalid app name [%s]", app)
	}
	m, err := parseCreateBody(body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return s.create(app, name, m)
}

// create makes the index in a hidden directory and renames it into place,
// so that a crash never leaves half an index under its real name. Called
// with s.mu held.
func (s *Service) create(app, name string, m *meta) error {
	path := s.path(app, name)
	if _, err := os.Stat(path); err == nil {
		return &Error{Status: 400, Type: typeIndexExists, Index: name, Reason: "index [" + name + "] already exists"}
	}
	im, err := m.bleveMapping()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create index %s/%s: %w", app, name, err)
	}
	m.Created = time.Now().UnixMilli()
	m.UUID = randomID()
	tmp := filepath.Join(filepath.Dir(path), ".creating-"+name+"-"+randomID())
	bi, err := bleve.New(tmp, im)
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create index %s/%s: %w", app, name, err)
	}
	err = bi.SetInternal([]byte(internalMeta), mustJSON(m))
	if cerr := bi.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("create index %s/%s: %w", app, name, err)
	}
	return nil
}

// DeleteIndex deletes app/name and its documents.
func (s *Service) DeleteIndex(ctx context.Context, app, name string) error {
	if err := checkIndexName(name); err != nil {
		return err
	}
	if !appDirRE.MatchString(app) {
		return illegalArgument("invalid app name [%s]", app)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.path(app, name)
	if _, err := os.Stat(path); err != nil {
		return indexNotFound(name)
	}
	if ix := s.open[app+"/"+name]; ix != nil {
		delete(s.open, app+"/"+name)
		if err := ix.drop(); err != nil {
			s.log.Warn("close deleted index", "app", app, "index", name, "err", err)
		}
	}
	return removeDir(path)
}

// removeDir renames dir out of the way, which is atomic, then removes it.
func removeDir(dir string) error {
	tmp := filepath.Join(filepath.Dir(dir), ".deleting-"+filepath.Base(dir)+"-"+randomID())
	if err := os.Rename(dir, tmp); err != nil {
		return fmt.Errorf("delete %s: %w", dir, err)
	}
	syncDir(filepath.Dir(dir))
	return os.RemoveAll(tmp)
}

// DropApp deletes every index of app (the app was destroyed).
func (s *Service) DropApp(ctx context.Context, app string) error {
	if !appDirRE.MatchString(app) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, ix := range s.open {
		if strings.HasPrefix(key, app+"/") {
			delete(s.open, key)
			ix.drop()
		}
	}
	dir := filepath.Join(s.dir, app)
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	return removeDir(dir)
}

// IndexInfo describes one index for listings.
type IndexInfo struct {
	Name    string `json:"index"`
	Docs    uint64 `json:"docs.count,string"`
	UUID    string `json:"uuid"`
	Created int64  `json:"creation.date,string"`
	Health  string `json:"health"`
	Status  string `json:"status"`
	Primary string `json:"pri"`
	Replica string `json:"rep"`
}

// Indexes lists app's indexes, sorted by name, whose name matches one of
// patterns (Elasticsearch wildcards; none: all).
func (s *Service) Indexes(ctx context.Context, app string, patterns ...string) ([]IndexInfo, error) {
	names, err := s.names(app, patterns)
	if err != nil {
		return nil, err
	}
	out := make([]IndexInfo, 0, len(names))
	for _, name := range names {
		ix, err := s.Index(ctx, app, name, false)
		if err != nil {
			continue // deleted meanwhile
		}
		n, err := ix.DocCount()
		if err != nil {
			return nil, err
		}
		m := ix.meta()
		out = append(out, IndexInfo{Name: name, Docs: n, UUID: m.UUID, Created: m.Created,
			Health: "green", Status: "open", Primary: "1", Replica: "0"})
	}
	return out, nil
}

// names are app's index names matching patterns ("*", "logs-*", "a,b").
func (s *Service) names(app string, patterns []string) ([]string, error) {
	if !appDirRE.MatchString(app) {
		return nil, illegalArgument("invalid app name [%s]", app)
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, app))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list indexes of %s: %w", app, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if len(patterns) == 0 || slices.ContainsFunc(patterns, func(p string) bool { return wildcardMatch(p, e.Name()) }) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// wildcardMatch matches Elasticsearch index patterns: * is any run of
// characters; "_all" matches everything.
func wildcardMatch(pattern, name string) bool {
	if pattern == "_all" || pattern == "*" {
		return true
	}
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(name, p)
		}
		j := strings.Index(name, p)
		if j < 0 {
			return false
		}
		name = name[j+len(p):]
	}
	return true
}

// randomID is a 20-character URL-safe identifier, like Elasticsearch's
// generated document IDs.
func randomID() string {
	b := make([]byte, 15)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
