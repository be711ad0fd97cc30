package build

import (
	"archive/zip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestNodeNestedDependencies checks that a dependency requiring another
// dependency (debug -> ms) resolves through the symlinked node_modules.
func TestNodeNestedDependencies(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	res, dir, log, err := build(t, &Builder{}, "testdata/node-nested", cache)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, log)
	}
	if res.DefaultProcesses["web"] != "node index.js" {
		t.Errorf("web = %q", res.DefaultProcesses["web"])
	}
	if fi, err := os.Lstat(filepath.Join(dir, "node_modules")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("node_modules is not a symlink: %v", err)
	}
	out, err := exec.Command("/usr/bin/node", filepath.Join(dir, "index.js")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "namespace=pier ms=1m" {
		t.Fatalf("node index.js: %v: %s", err, out)
	}

	// A changed lockfile is a new key, installed afresh.
	src := t.TempDir()
	copyDir(t, "testdata/node-nested", src)
	lock := filepath.Join(src, "package-lock.json")
	b, err := os.ReadFile(lock)
	must(t, err)
	must(t, os.WriteFile(lock, append(b, '\n'), 0o644))
	res2, _, log2, err := build(t, &Builder{}, src, cache)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, log2)
	}
	if res2.CacheHit || res2.CacheKey == res.CacheKey || !strings.Contains(log2.String(), "npm ci") {
		t.Errorf("changed lock: hit %v, key %s (was %s)\n%s", res2.CacheHit, res2.CacheKey, res.CacheKey, log2)
	}
}

// writeWheel makes a tiny pure-Python wheel in dir, so pip can install a
// real requirement without PyPI.
func writeWheel(t *testing.T, dir, version string) {
	t.Helper()
	name := "piertestpkg"
	f, err := os.Create(filepath.Join(dir, name+"-"+version+"-py3-none-any.whl"))
	must(t, err)
	zw := zip.NewWriter(f)
	info := name + "-" + version + ".dist-info/"
	files := map[string]string{
		name + "/__init__.py": "VERSION = '" + version + "'\n",
		info + "METADATA":     "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n",
		info + "WHEEL":        "Wheel-Version: 1.0\nGenerator: pier-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		info + "RECORD":       name + "/__init__.py,,\n" + info + "METADATA,,\n" + info + "WHEEL,,\n" + info + "RECORD,,\n",
	}
	for n, body := range files {
		w, err := zw.Create(n)
		must(t, err)
		w.Write([]byte(body))
	}
	must(t, zw.Close())
	must(t, f.Close())
}

func TestPythonRequirements(t *testing.T) {
	t.Parallel()
	wheels := t.TempDir()
	writeWheel(t, wheels, "1.0")
	writeWheel(t, wheels, "2.0")
	b := &Builder{Env: []string{"PIP_NO_INDEX=1", "PIP_FIND_LINKS=" + wheels}}
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "requirements.txt"), []byte("piertestpkg==1.0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "main.py"), []byte("import piertestpkg\nprint(piertestpkg.VERSION)\n"), 0o644))
	cache := t.TempDir()

	// Two releases of the same app build at once: one installs, one waits
	// and reuses.
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	dirs := make([]string, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, dir, log, err := build(t, b, src, cache)
			if err != nil {
				t.Errorf("Build: %v\n%s", err, log)
				return
			}
			results[i], dirs[i] = res, dir
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if results[0].CacheHit == results[1].CacheHit || results[0].CacheKey != results[1].CacheKey {
		t.Errorf("concurrent builds: hits %v %v, want exactly one", results[0].CacheHit, results[1].CacheHit)
	}
	for _, dir := range dirs {
		out, err := exec.Command(filepath.Join(dir, ".venv", "bin", "python"), filepath.Join(dir, "main.py")).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "1.0" {
			t.Errorf("python main.py: %v: %s", err, out)
		}
	}
	if results[0].DefaultProcesses["web"] != "python main.py" || results[0].Env["VIRTUAL_ENV"] != filepath.Join(dirs[0], ".venv") {
		t.Errorf("result %+v", results[0])
	}

	// New requirements, new key; the old venv is untouched.
	must(t, os.WriteFile(filepath.Join(src, "requirements.txt"), []byte("piertestpkg==2.0\n"), 0o644))
	res, dir, log, err := build(t, b, src, cache)
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, log)
	}
	if res.CacheHit || res.CacheKey == results[0].CacheKey || !strings.Contains(log.String(), "-m pip") {
		t.Errorf("changed requirements: hit %v key %s\n%s", res.CacheHit, res.CacheKey, log)
	}
	out, _ := exec.Command(filepath.Join(dir, ".venv", "bin", "python"), filepath.Join(dir, "main.py")).CombinedOutput()
	out0, _ := exec.Command(filepath.Join(dirs[0], ".venv", "bin", "python"), filepath.Join(dirs[0], "main.py")).CombinedOutput()
	if strings.TrimSpace(string(out)) != "2.0" || strings.TrimSpace(string(out0)) != "1.0" {
		t.Errorf("new release runs %q, old one %q", out, out0)
	}
}

func TestBuildFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		env   []string
		err   string // in the error
		log   string // in the log
		deps  bool   // the dependencies installed fine and are cached
	}{
		{"go syntax error", map[string]string{
			"go.mod":  "module broken\n\ngo 1.22\n",
			"main.go": "package main\n\nfunc main() {\n\tnope(\n}\n",
		}, nil, "build go: go build: exit status 1", "main.go:5", false},
		{"pip unknown package", map[string]string{
			"requirements.txt": "pier-no-such-package-anywhere==9.9\n",
			"app.py":           "print('hi')\n",
		}, []string{"PIP_RETRIES=0", "PIP_TIMEOUT=5"}, "build python: pip install: exit status 1", "pier-no-such-package-anywhere", false},
		{"npm unknown package", map[string]string{
			"package.json": `{"name":"x","version":"1.0.0","dependencies":{"pier-no-such-package-zz9":"1.0.0"}}`,
		}, nil, "build node: npm install: exit status 1", "404", false},
		{"npm build script fails", map[string]string{
			"package.json": `{"name":"x","version":"1.0.0","scripts":{"build":"echo building; exit 3"}}`,
		}, nil, "build node: npm run build: exit status 3", "building", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := t.TempDir()
			for n, body := range tt.files {
				must(t, os.WriteFile(filepath.Join(src, n), []byte(body), 0o644))
			}
			cache := t.TempDir()
			b := testBuilder(tt.env...)
			_, _, log, err := build(t, b, src, cache)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %v, want an error containing %q", err, tt.err)
			}
			if !strings.Contains(log.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, log)
			}
			// A failed install is not cached: the next build tries again.
			_, _, log, _ = build(t, b, src, cache)
			if strings.Contains(log.String(), "reusing") != tt.deps {
				t.Errorf("second build reused the dependencies: %v, want %v:\n%s", !tt.deps, tt.deps, log)
			}
		})
	}
}

func TestBuildCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The build script's sleep is a grandchild of npm: cancelling must kill
	// the whole process group.
	must(t, os.WriteFile(filepath.Join(dir, "package.json"),
		[]byte(`{"name":"x","version":"1.0.0","scripts":{"build":"sleep 60"}}`), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	log := &logBuf{t: t}
	done := make(chan error, 1)
	go func() {
		_, err := (&Builder{}).Build(ctx, Request{Dir: dir, CacheDir: t.TempDir(), Log: log})
		done <- err
	}()
	for !strings.Contains(log.String(), "sleep 60") {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "npm run build") {
			t.Errorf("got %v, want context.Canceled from npm run build", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Build did not return after cancel")
	}
}

// TestBuildAsUser builds examples as nobody, the way the engine (root) builds
// an app as its UNIX user.
func TestBuildAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	t.Parallel()
	const uid, gid = 65534, 65534
	for _, name := range []string{"hello-python", "hello-node", "hello-go"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			top, err := os.MkdirTemp("", "pier-build-cred-")
			must(t, err)
			t.Cleanup(func() { os.RemoveAll(top) })
			must(t, os.Chmod(top, 0o755))
			dir, cache := filepath.Join(top, "release"), filepath.Join(top, "cache")
			copyDir(t, filepath.Join("..", "..", "examples", name), dir)
			must(t, os.Mkdir(cache, 0o755))
			for _, root := range []string{dir, cache} {
				must(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
					if err != nil {
						return err
					}
					return os.Lchown(p, uid, gid)
				}))
			}
			log := &logBuf{t: t}
			start := time.Now()
			res, err := (&Builder{}).Build(context.Background(), Request{Dir: dir, CacheDir: cache, Log: log,
				Cred: &syscall.Credential{Uid: uid, Gid: gid}})
			if err != nil {
				t.Fatalf("Build: %v\n%s", err, log)
			}
			t.Logf("%s as nobody: built in %s", name, time.Since(start).Round(time.Millisecond))
			// Everything the build made belongs to the app's user.
			must(t, filepath.Walk(top, func(p string, fi os.FileInfo, err error) error {
				if err != nil || p == top {
					return err
				}
				if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid {
					t.Errorf("%s is owned by uid %d", p, st.Uid)
					return filepath.SkipDir
				}
				return nil
			}))
			_ = res
		})
	}
}
