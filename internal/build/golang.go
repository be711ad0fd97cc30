package build

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// golang builds a Go app with `go build -o .pier/bin/app .` in Dir. Modules
// and the build cache live in CacheDir/go, shared by all keys: Go's caches
// are content-addressed and safe for concurrent use, so no lock is needed.
// The key (go.sum, else go.mod) only tells whether these modules were
// downloaded before: a marker CacheDir/go/keys/<key> is written after the
// first successful build.
func (s *session) golang(ctx context.Context) (*Result, error) {
	sum, ok, err := readOptional(filepath.Join(s.req.Dir, "go.sum"))
	if err == nil && !ok {
		sum, _, err = readOptional(filepath.Join(s.req.Dir, "go.mod"))
	}
	if err != nil {
		return nil, fmt.Errorf("build go: %w", err)
	}
	key := cacheKey(string(Go), sum)
	goDir := filepath.Join(s.req.CacheDir, "go")
	marker := filepath.Join(goDir, "keys", key)
	for _, d := range []string{filepath.Join(goDir, "build"), filepath.Join(goDir, "mod"),
		filepath.Join(goDir, "keys"), filepath.Join(s.req.Dir, ".pier", "bin")} {
		if err := s.mkdirAll(d); err != nil {
			return nil, fmt.Errorf("build go: %w", err)
		}
	}
	res := &Result{
		CacheKey:         key,
		CacheHit:         exists(marker),
		DefaultProcesses: map[string]string{"web": "./.pier/bin/app"},
	}
	if res.CacheHit {
		s.logf("go: modules for this go.sum are cached (%.12s)", key)
	} else {
		s.logf("go: first build with this go.sum (%.12s)", key)
	}
	// -modcacherw keeps the module cache removable by a plain rm -rf.
	flags := "-mod=mod -modcacherw"
	if exists(filepath.Join(s.req.Dir, "vendor", "modules.txt")) {
		flags = "-mod=vendor"
	}
	env := []string{
		"GOCACHE=" + filepath.Join(goDir, "build"),
		"GOMODCACHE=" + filepath.Join(goDir, "mod"),
		"GOPATH=" + filepath.Join(goDir, "path"),
		"GOFLAGS=" + flags,
		"CGO_ENABLED=0",
		"GOTOOLCHAIN=local",
		"GOENV=off",
	}
	if err := s.run(ctx, "go build", s.req.Dir, env,
		s.b.goTool(), "build", "-o", ".pier/bin/app", "."); err != nil {
		return nil, err
	}
	if !res.CacheHit {
		if err := s.writeFile(marker, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n")); err != nil {
			return nil, fmt.Errorf("build go: %w", err)
		}
	}
	return res, nil
}
