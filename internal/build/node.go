package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// packageJSON is the part of package.json the build reads.
type packageJSON struct {
	Main                 string            `json:"main"`
	Scripts              map[string]string `json:"scripts"`
	Dependencies         map[string]string `json:"dependencies"`
	DevDependencies      map[string]string `json:"devDependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
}

// node builds a Node app: node_modules installed once per lockfile in
// CacheDir/node/<key>/node_modules, linked from Dir/node_modules, then
// `npm run build` if package.json has a build script.
//
// The install runs in a temporary directory holding only package.json and
// the lockfile, and its node_modules is renamed into place when complete, so
// a killed build never leaves a half cache. Node resolves a module from its
// real path, so a dependency's own require() calls search the cache's
// node_modules and find its siblings there.
//
// Without a build script only production dependencies are installed
// (--omit=dev); with one, devDependencies are installed too, since build
// tools usually are devDependencies, and that is part of the key.
func (s *session) node(ctx context.Context) (*Result, error) {
	raw, err := os.ReadFile(filepath.Join(s.req.Dir, "package.json"))
	if err != nil {
		return nil, fmt.Errorf("build node: %w", err)
	}
	var pkg packageJSON
	if err := json.Unmarshal(raw, &pkg); err != nil {
		return nil, fmt.Errorf("build node: package.json: %w", err)
	}
	version, err := s.output(ctx, "node --version", s.b.node(), "--version")
	if err != nil {
		return nil, err
	}
	lockName, lock := "", ""
	for _, name := range []string{"npm-shrinkwrap.json", "package-lock.json"} {
		content, ok, err := readOptional(filepath.Join(s.req.Dir, name))
		if err != nil {
			return nil, fmt.Errorf("build node: %w", err)
		}
		if ok {
			lockName, lock = name, content
			break
		}
	}
	withDev := pkg.Scripts["build"] != ""
	// The key is the lockfile, plus the dependency lists of package.json: a
	// package.json edited without updating the lock must not hit a stale cache
	// (npm ci refuses such a pair; a cache hit would hide it).
	deps, _ := json.Marshal([]map[string]string{pkg.Dependencies, pkg.DevDependencies, pkg.OptionalDependencies})
	keySource := lock
	if lockName == "" {
		keySource = string(raw)
	}
	key := cacheKey(string(Node), version, lockName, keySource, string(deps), fmt.Sprint(withDev))
	base := filepath.Join(s.req.CacheDir, "node")
	keyDir := filepath.Join(base, key)
	modules := filepath.Join(keyDir, "node_modules")
	marker := filepath.Join(keyDir, "complete")
	link := filepath.Join(s.req.Dir, "node_modules")
	res := &Result{
		CacheKey: key,
		PathDirs: []string{filepath.Join(link, ".bin")},
		Env:      map[string]string{"NODE_ENV": "production"},
	}
	env := []string{
		"PATH=" + filepath.Dir(s.b.node()) + ":" + systemPath,
		"npm_config_update_notifier=false",
	}

	unlock, err := s.lock(ctx, keyDir+".lock")
	if err != nil {
		return nil, fmt.Errorf("build node: %w", err)
	}
	defer unlock()
	if exists(marker) {
		res.CacheHit = true
		s.logf("node %s: reusing node_modules for this lockfile (%.12s)", version, key)
	} else {
		s.logf("node %s: installing dependencies (%.12s)", version, key)
		if err := s.installNodeModules(ctx, env, pkg, raw, lockName, lock, withDev, keyDir, base); err != nil {
			return nil, err
		}
		if err := s.writeFile(marker, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n")); err != nil {
			return nil, fmt.Errorf("build node: %w", err)
		}
	}
	if err := s.symlink(modules, link); err != nil {
		return nil, fmt.Errorf("build node: %w", err)
	}
	if withDev {
		if err := s.run(ctx, "npm run build", s.req.Dir, append(env, "NODE_ENV=production"),
			s.b.npm(), "run", "build"); err != nil {
			return nil, err
		}
	}

	switch {
	case pkg.Scripts["start"] != "":
		res.DefaultProcesses = map[string]string{"web": "npm start"}
	case pkg.Main != "" && exists(filepath.Join(s.req.Dir, pkg.Main)):
		res.DefaultProcesses = map[string]string{"web": "node " + pkg.Main}
	default:
		for _, main := range []string{"index.js", "server.js"} {
			if exists(filepath.Join(s.req.Dir, main)) {
				res.DefaultProcesses = map[string]string{"web": "node " + main}
				break
			}
		}
	}
	return res, nil
}

// installNodeModules runs npm ci (or npm install without a lockfile) in a
// temporary copy of package.json and the lock, then renames its
// node_modules to keyDir/node_modules.
func (s *session) installNodeModules(ctx context.Context, env []string, pkg packageJSON,
	raw []byte, lockName, lock string, withDev bool, keyDir, base string) error {
	if err := os.RemoveAll(keyDir); err != nil { // a killed build's leftovers
		return fmt.Errorf("build node: %w", err)
	}
	if err := s.mkdirAll(base); err != nil {
		return fmt.Errorf("build node: %w", err)
	}
	tmp, err := os.MkdirTemp(base, filepath.Base(keyDir)[:12]+".tmp-")
	if err != nil {
		return fmt.Errorf("build node: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := s.chown(tmp); err != nil {
		return fmt.Errorf("build node: %w", err)
	}
	if err := s.writeFile(filepath.Join(tmp, "package.json"), raw); err != nil {
		return fmt.Errorf("build node: %w", err)
	}
	step, args := "npm install", []string{s.b.npm(), "install"}
	if lockName != "" {
		if err := s.writeFile(filepath.Join(tmp, lockName), []byte(lock)); err != nil {
			return fmt.Errorf("build node: %w", err)
		}
		step, args = "npm ci", []string{s.b.npm(), "ci"}
	}
	args = append(args, "--no-audit", "--no-fund")
	if !withDev {
		args = append(args, "--omit=dev")
	}
	if err := s.run(ctx, step, tmp, env, args...); err != nil {
		return err
	}
	// No dependencies at all: npm makes no node_modules.
	if err := s.mkdirAll(filepath.Join(tmp, "node_modules")); err != nil {
		return fmt.Errorf("build node: %w", err)
	}
	if err := s.mkdirAll(keyDir); err != nil {
		return fmt.Errorf("build node: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, "node_modules"), filepath.Join(keyDir, "node_modules")); err != nil {
		return fmt.Errorf("build node: %w", err)
	}
	return nil
}
