package build

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// goCache is a Go build cache shared by the tests that build Go code as
// root, so the standard library is compiled once per test run, not per test.
var goCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pier-build-gocache-")
	if err != nil {
		panic(err)
	}
	goCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testBuilder is a Builder whose Go builds use the shared goCache.
func testBuilder(env ...string) *Builder {
	return &Builder{Env: append(env, "GOCACHE="+goCache)}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		files []string // a trailing / makes a directory
		want  Kind
	}{
		{[]string{"go.mod", "main.go", "package.json"}, Go},
		{[]string{"package.json", "index.html", "app.py"}, Node},
		{[]string{"requirements.txt"}, Python},
		{[]string{"pyproject.toml"}, Python},
		{[]string{"worker.py", "index.html"}, Python},
		{[]string{"index.html"}, Static},
		{[]string{"public/", "README.md"}, Static},
		{[]string{"public"}, ""}, // a file named public is not a site
		{[]string{"README.md", "src/"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.files, ","), func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(dir, f)
				if strings.HasSuffix(f, "/") {
					must(t, os.Mkdir(p, 0o755))
				} else {
					must(t, os.WriteFile(p, nil, 0o644))
				}
			}
			got, err := Detect(dir)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.want == "" && (err == nil || !strings.Contains(err.Error(), "cannot detect the language of "+dir+": expected go.mod")) {
				t.Errorf("got error %v", err)
			}
		})
	}
}

// logBuf collects a build log; it checks that each Write is one whole line.
type logBuf struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if bytes.IndexByte(p, '\n') != len(p)-1 {
		l.t.Errorf("Write of %q is not one line", p)
	}
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// build copies src into a new release dir and builds it with cache.
func build(t *testing.T, b *Builder, src, cache string) (*Result, string, *logBuf, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "release")
	copyDir(t, src, dir)
	log := &logBuf{t: t}
	start := time.Now()
	res, err := b.Build(context.Background(), Request{Dir: dir, CacheDir: cache, Log: log})
	if err == nil {
		t.Logf("%s: built in %s (hit %v)", filepath.Base(src), time.Since(start).Round(time.Millisecond), res.CacheHit)
	}
	return res, dir, log, err
}

func TestExamples(t *testing.T) {
	tests := []struct {
		name     string
		kind     Kind
		install  string // log text of the dependency install step
		web      string
		pathDirs []string
	}{
		{"hello-python", Python, "-m venv", "python app.py", []string{".venv/bin"}},
		{"hello-node", Node, "npm ci", "npm start", []string{"node_modules/.bin"}},
		{"hello-go", Go, "first build", "./.pier/bin/app", nil},
		{"hello-static", Static, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := filepath.Join("..", "..", "examples", tt.name)
			cache := t.TempDir()
			b := testBuilder()
			res, dir, log, err := build(t, b, src, cache)
			if err != nil {
				t.Fatalf("Build: %v\n%s", err, log)
			}
			if res.Kind != tt.kind || res.CacheHit || res.DefaultProcesses["web"] != tt.web {
				t.Errorf("got kind %q hit %v web %q", res.Kind, res.CacheHit, res.DefaultProcesses["web"])
			}
			if tt.install != "" && !strings.Contains(log.String(), tt.install) {
				t.Errorf("log lacks %q:\n%s", tt.install, log)
			}
			var want []string
			for _, d := range tt.pathDirs {
				want = append(want, filepath.Join(dir, d))
			}
			if fmt.Sprint(res.PathDirs) != fmt.Sprint(want) {
				t.Errorf("PathDirs = %q, want %q", res.PathDirs, want)
			}
			if tt.kind == Static {
				if res.StaticRoot != filepath.Join(dir, "public") || res.CacheKey != "" {
					t.Errorf("StaticRoot %q, key %q", res.StaticRoot, res.CacheKey)
				}
				return
			}
			// The pier.yaml command runs and the app behaves.
			runApp(t, dir, res, manifestWeb(t, dir), tt.name)

			// The next release with the same dependencies reuses them.
			res2, dir2, log2, err := build(t, b, src, cache)
			if err != nil {
				t.Fatalf("second Build: %v\n%s", err, log2)
			}
			if !res2.CacheHit || res2.CacheKey != res.CacheKey {
				t.Errorf("second build: hit %v, key %s, want a hit on %s", res2.CacheHit, res2.CacheKey, res.CacheKey)
			}
			for _, step := range []string{"-m venv", "-m pip", "npm ci", "npm install"} {
				if strings.Contains(log2.String(), step) {
					t.Errorf("second build ran %q:\n%s", step, log2)
				}
			}
			runApp(t, dir2, res2, manifestWeb(t, dir2), tt.name)
		})
	}
}

// manifestWeb reads the web command of an example's pier.yaml.
func manifestWeb(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "pier.yaml"))
	must(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "web:"); ok {
			return strings.TrimSpace(cmd)
		}
	}
	t.Fatal("no web process in pier.yaml")
	return ""
}

// runApp starts command in dir the way the supervisor will (PATH and env
// from the build), checks /, /healthz and a graceful SIGTERM during /slow.
func runApp(t *testing.T, dir string, res *Result, command, name string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	argv := strings.Fields(command)
	path := strings.Join(append(res.PathDirs, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), ":")
	if p, err := lookPath(argv[0], path, dir); err == nil {
		argv[0] = p
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + path, "HOME=" + dir, "PORT=" + port, "PIER_RELEASE=v7", "GREETING=hi <there>"}
	for k, v := range res.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	for {
		if body, err := get(base + "/healthz"); err == nil && body == "ok\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became healthy; output:\n%s", name, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	body, err := get(base + "/")
	must(t, err)
	for _, want := range []string{name, "v7", "hi &lt;there&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("/ = %q, want it to contain %q", body, want)
		}
	}
	slow := make(chan string, 1)
	go func() {
		body, err := get(base + "/slow?ms=500")
		if err != nil {
			body = err.Error()
		}
		slow <- body
	}()
	time.Sleep(200 * time.Millisecond) // let /slow arrive before SIGTERM
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if got := <-slow; got != "slept 500 ms\n" {
		t.Errorf("/slow during shutdown = %q", got)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; output:\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit after SIGTERM", name)
	}
	if !strings.Contains(out.String(), "/healthz") {
		t.Errorf("no request log line in output:\n%s", out.String())
	}
}

func lookPath(name, path, dir string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range filepath.SplitList(path) {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fs.ErrNotExist
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == ".pier" || d.Name() == ".venv") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
