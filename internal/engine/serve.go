package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pier/internal/api"
	"pier/internal/bundle"
	"pier/internal/deploy"
)

// ServeConfig is what `pier serve` was given.
type ServeConfig struct {
	Dir    string // the app's source directory
	App    string // its name
	HTTP   string // gateway address; default :8080
	Domain string // default localhost
	Out    io.Writer
	Logger *slog.Logger
	// Poll is how often the source is checked for changes (default 500ms).
	Poll time.Duration
}

// Serve runs one app from its source directory the way the engine runs it
// (same build, environment and routing, a private store under
// Dir/.pier/serve) and redeploys it whenever a file changes. A failing
// build keeps the previous version serving.
func Serve(ctx context.Context, sc ServeConfig) error {
	if err := deploy.ValidName(sc.App); err != nil {
		return fmt.Errorf("pier serve: %w", err)
	}
	if sc.Out == nil {
		sc.Out = os.Stdout
	}
	if sc.Poll == 0 {
		sc.Poll = 500 * time.Millisecond
	}
	log := sc.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg := Config{
		Home:   filepath.Join(sc.Dir, ".pier", "serve"),
		HTTP:   sc.HTTP,
		API:    "127.0.0.1:0",
		Domain: sc.Domain,
		Logger: log,
	}
	return run(ctx, cfg, func(ctx context.Context, m *deploy.Manager, addr string) error {
		return serveLoop(ctx, sc, m, addr)
	})
}

func serveLoop(ctx context.Context, sc ServeConfig, m *deploy.Manager, addr string) error {
	say := func(format string, args ...any) { fmt.Fprintf(sc.Out, format+"\n", args...) }
	last := ""
	for {
		fp, err := fingerprint(sc.Dir)
		if err != nil {
			return fmt.Errorf("pier serve: %w", err)
		}
		if fp != last {
			if last != "" {
				say("-----> Change detected, redeploying")
			}
			last = fp
			if err := serveDeploy(ctx, sc, m, say); err != nil {
				say("!      %v", err)
				for _, l := range deploy.LogTail(err) {
					say("       %s", l)
				}
				say("!      still serving the previous version; fix the code and save")
			} else if a, err := m.App(ctx, sc.App); err == nil {
				say("-----> Serving %s at %s (logs follow; Ctrl-C stops)", sc.App, strings.Join(a.URLs, " "))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(sc.Poll):
		}
	}
}

func serveDeploy(ctx context.Context, sc ServeConfig, m *deploy.Manager, say func(string, ...any)) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(bundle.Pack(ctx, sc.Dir, pw)) }()
	_, err := m.Deploy(ctx, sc.App, pr, func(e api.Event) {
		switch e.Type {
		case api.EventLog:
			say("       %s", e.Message)
		case api.EventBuild, api.EventStart, api.EventHealth, api.EventSwap, api.EventDone:
			say("-----> %s", e.Message)
		}
	})
	pr.Close()
	return err
}

// fingerprint summarises the source tree (paths, sizes, modification
// times) so that any saved change shows up as a new value. It skips what
// the build itself writes.
func fingerprint(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		name := d.Name()
		if d.IsDir() && p != dir && (name == ".git" || name == ".pier" || name == "node_modules" || name == ".venv" || name == "__pycache__") {
			return filepath.SkipDir
		}
		if d.Type()&fs.ModeSymlink != 0 && (name == ".venv" || name == "node_modules") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(h, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}
