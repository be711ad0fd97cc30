// Package build turns an unpacked app into something the supervisor can run:
// it detects the language, installs dependencies into the app's own cache
// (keyed by a hash of the lockfile, so an unchanged lockfile reuses them), and
// runs the language's build step. Every step is a real tool (python3 -m venv,
// pip, npm, go build) run with an argument list, its output streamed to the
// caller line by line.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Kind is the language of an app.
type Kind string

// The kinds Detect knows.
const (
	Python Kind = "python"
	Node   Kind = "node"
	Go     Kind = "go"
	Static Kind = "static"
)

// Detect tells an app's language from the files at the root of dir:
// go.mod -> go; package.json -> node; requirements.txt, pyproject.toml or any
// *.py -> python; index.html or a public/ directory -> static.
func Detect(dir string) (Kind, error) {
	is := func(name string, wantDir bool) bool {
		fi, err := os.Stat(filepath.Join(dir, name))
		return err == nil && fi.IsDir() == wantDir
	}
	switch {
	case is("go.mod", false):
		return Go, nil
	case is("package.json", false):
		return Node, nil
	case is("requirements.txt", false) || is("pyproject.toml", false):
		return Python, nil
	}
	if py, _ := filepath.Glob(filepath.Join(dir, "*.py")); len(py) > 0 {
		return Python, nil
	}
	if is("index.html", false) || is("public", true) {
		return Static, nil
	}
	if fi, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("cannot detect the language of %s: %w", dir, err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("cannot detect the language of %s: not a directory", dir)
	}
	return "", fmt.Errorf("cannot detect the language of %s: expected go.mod, package.json, requirements.txt, or index.html", dir)
}

// Request is one build.
type Request struct {
	Dir      string              // unpacked source; the build writes its outputs inside it
	CacheDir string              // the app's own dependency cache (persists across releases)
	Kind     Kind                // "" = Detect
	Log      io.Writer           // build output, one line per Write, as it happens; nil = discard
	Cred     *syscall.Credential // run build commands as this user when non-nil
}

// Result says how to run what was built.
type Result struct {
	Kind     Kind
	CacheKey string // hash the dependency cache was looked up by ("" for static)
	CacheHit bool   // dependencies were reused, not reinstalled

	// PathDirs are absolute directories to put first on PATH for processes,
	// e.g. Dir/.venv/bin.
	PathDirs []string
	// Env is extra environment for processes (VIRTUAL_ENV, NODE_ENV, ...).
	Env map[string]string
	// DefaultProcesses are used when the app's manifest has no processes,
	// e.g. {"web": "node server.js"}. Commands run with cwd = Dir. Static
	// apps have none: the gateway serves them.
	DefaultProcesses map[string]string
	// StaticRoot is, for a static app, the directory served as the site root
	// (Dir/public if it exists, else Dir).
	StaticRoot string
}

// Builder builds apps. The zero value is ready to use; a Builder may serve
// concurrent builds, including of the same app.
type Builder struct {
	Logger *slog.Logger // nil = slog.Default()

	// Executables. Zero values: /usr/bin/python3, /usr/bin/node, /usr/bin/npm,
	// and go from the engine's PATH, else /usr/local/go/bin/go.
	Python, Node, Npm, Go string

	// Env is extra KEY=VALUE for every build command, after pier's own, so it
	// can set registry mirrors and options (PIP_INDEX_URL, PIP_RETRIES,
	// npm_config_registry, GOPROXY, ...). The engine's own environment is not
	// passed on, except the proxy variables (HTTP_PROXY, HTTPS_PROXY, NO_PROXY).
	Env []string
}

// Build installs req.Dir's dependencies and builds it. A failed step returns
// an error naming the kind and the step ("build node: npm ci: exit status 1");
// its output has been streamed to req.Log. Cancelling ctx kills the step.
func (b *Builder) Build(ctx context.Context, req Request) (*Result, error) {
	var err error
	if req.Dir, err = filepath.Abs(req.Dir); err != nil {
		return nil, err
	}
	if req.CacheDir, err = filepath.Abs(req.CacheDir); err != nil {
		return nil, err
	}
	if req.Kind == "" {
		if req.Kind, err = Detect(req.Dir); err != nil {
			return nil, err
		}
	}
	s := &session{b: b, req: req, log: newLineWriter(req.Log)}
	defer s.log.Flush()
	start := time.Now()
	var res *Result
	switch req.Kind {
	case Python:
		res, err = s.python(ctx)
	case Node:
		res, err = s.node(ctx)
	case Go:
		res, err = s.golang(ctx)
	case Static:
		res, err = s.static()
	default:
		return nil, fmt.Errorf("build: unknown kind %q", req.Kind)
	}
	if err != nil {
		s.logf("build failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
		return nil, err
	}
	res.Kind = req.Kind
	s.logf("build done in %s (cache key %.12s, hit %v)", time.Since(start).Round(time.Millisecond), res.CacheKey, res.CacheHit)
	b.logger().Info("build done", "dir", req.Dir, "kind", res.Kind, "key", res.CacheKey,
		"hit", res.CacheHit, "took", time.Since(start))
	return res, nil
}

func (s *session) static() (*Result, error) {
	root := s.req.Dir
	if fi, err := os.Stat(filepath.Join(root, "public")); err == nil && fi.IsDir() {
		root = filepath.Join(root, "public")
	}
	s.logf("static site: serving %s", root)
	return &Result{StaticRoot: root}, nil
}

func (b *Builder) logger() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}

func (b *Builder) python() string { return or(b.Python, "/usr/bin/python3") }
func (b *Builder) node() string   { return or(b.Node, "/usr/bin/node") }
func (b *Builder) npm() string    { return or(b.Npm, "/usr/bin/npm") }

func (b *Builder) goTool() string {
	if b.Go != "" {
		return b.Go
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// exists reports whether name exists (following links).
func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// isNotExist is errors.Is(err, fs.ErrNotExist), spelled short.
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
