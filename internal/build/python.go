package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// python builds a Python app: a virtualenv per requirements.txt content in
// CacheDir/python/<key>/venv, linked from Dir/.venv.
//
// The venv sees Debian's python3-* packages (--system-site-packages), so apps
// can use them offline, and has no pip of its own (--without-pip: no
// ensurepip, no network); requirements are installed by Debian's pip pointed
// at the venv with --python.
//
// The venv is built where it stays (venvs hard-code their path in scripts, so
// they cannot be built elsewhere and renamed); a marker file written last says
// it is complete, and a venv without one, left by a killed build, is removed
// and rebuilt. A flock on CacheDir/python/<key>.lock keeps concurrent builds
// of the same key from racing.
func (s *session) python(ctx context.Context) (*Result, error) {
	py := s.b.python()
	version, err := s.output(ctx, "python3 --version", py, "-c",
		"import sys; print('%d.%d.%d' % sys.version_info[:3])")
	if err != nil {
		return nil, err
	}
	reqFile := filepath.Join(s.req.Dir, "requirements.txt")
	reqs, _, err := readOptional(reqFile)
	if err != nil {
		return nil, fmt.Errorf("build python: %w", err)
	}
	key := cacheKey(string(Python), py, version, reqs)
	keyDir := filepath.Join(s.req.CacheDir, "python", key)
	venv := filepath.Join(keyDir, "venv")
	marker := filepath.Join(keyDir, "complete")
	link := filepath.Join(s.req.Dir, ".venv")
	res := &Result{
		CacheKey: key,
		PathDirs: []string{filepath.Join(link, "bin")},
		Env:      map[string]string{"VIRTUAL_ENV": link, "PYTHONUNBUFFERED": "1"},
	}

	unlock, err := s.lock(ctx, keyDir+".lock")
	if err != nil {
		return nil, fmt.Errorf("build python: %w", err)
	}
	defer unlock()
	if exists(marker) {
		res.CacheHit = true
		s.logf("python %s: reusing the virtualenv for these requirements (%.12s)", version, key)
	} else {
		s.logf("python %s: creating a virtualenv (%.12s)", version, key)
		if err := os.RemoveAll(keyDir); err != nil { // a killed build's leftovers
			return nil, fmt.Errorf("build python: %w", err)
		}
		if err := s.mkdirAll(keyDir); err != nil {
			return nil, fmt.Errorf("build python: %w", err)
		}
		if err := s.run(ctx, "python3 -m venv", keyDir, nil,
			py, "-m", "venv", "--system-site-packages", "--without-pip", venv); err != nil {
			return nil, err
		}
		if hasRequirements(reqs) {
			if _, err := s.output(ctx, "pip", py, "-c", "import pip"); err != nil {
				return nil, fmt.Errorf("build python: pip is not available to %s: install python3-pip (apt-get install python3-pip): %w", py, err)
			}
			env := []string{"PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1"}
			if err := s.run(ctx, "pip install", s.req.Dir, env,
				py, "-m", "pip", "--python", filepath.Join(venv, "bin", "python"),
				"install", "-r", reqFile); err != nil {
				return nil, err
			}
		} else {
			s.logf("requirements.txt lists nothing to install")
		}
		if err := s.writeFile(marker, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n")); err != nil {
			return nil, fmt.Errorf("build python: %w", err)
		}
	}
	if err := s.symlink(venv, link); err != nil {
		return nil, fmt.Errorf("build python: %w", err)
	}
	for _, main := range []string{"app.py", "main.py"} {
		if exists(filepath.Join(s.req.Dir, main)) {
			res.DefaultProcesses = map[string]string{"web": "python " + main}
			break
		}
	}
	return res, nil
}

// hasRequirements reports whether a requirements.txt names anything, that is
// has a line that is neither blank nor a comment.
func hasRequirements(reqs string) bool {
	for _, line := range strings.Split(reqs, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}
