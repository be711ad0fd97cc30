package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pier/internal/api"
)

const testToken = "t0ken"

// testCLI returns a cli with buffered output, the given environment (PIER_HOME
// defaults to a fresh temporary directory, so no real ~/.pier is read) and
// no terminal.
func testCLI(t *testing.T, env map[string]string) *cli {
	t.Helper()
	e := maps.Clone(env)
	if e == nil {
		e = map[string]string{}
	}
	if _, ok := e["PIER_HOME"]; !ok {
		e["PIER_HOME"] = t.TempDir()
	}
	return &cli{
		stdout:     new(bytes.Buffer),
		stderr:     new(bytes.Buffer),
		getenv:     func(k string) string { return e[k] },
		isTerminal: func(io.Reader) bool { return false },
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// execute runs one command line with stdin and returns what it printed.
func (a *cli) execute(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	root := a.root()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	code := Execute(context.Background(), root)
	out, errOut := a.stdout.(*bytes.Buffer), a.stderr.(*bytes.Buffer)
	r := result{code: code, stdout: out.String(), stderr: errOut.String()}
	out.Reset()
	errOut.Reset()
	return r
}

// fakeEngine speaks the engine routes with canned answers and records the
// requests it got.
type fakeEngine struct {
	srv *httptest.Server

	mu       sync.Mutex // guards the fields below
	requests []string   // "METHOD /path?query"
	bodies   map[string][]byte
	events   []api.Event // answer to deploy, rollback, env changes
	apps     []api.App
	ps       []api.Instance
	logs     []api.LogLine
	run      []api.RunOutput
}

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	f := &fakeEngine{bodies: map[string][]byte{}}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) { json.NewEncoder(w).Encode(v) }
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			key := r.Method + " " + r.URL.Path
			if r.URL.RawQuery != "" {
				key += "?" + r.URL.RawQuery
			}
			f.mu.Lock()
			f.requests = append(f.requests, key)
			f.bodies[r.Method+" "+r.URL.Path] = body
			f.mu.Unlock()
			if r.Header.Get("Authorization") != "Bearer "+testToken {
				w.WriteHeader(http.StatusUnauthorized)
				reply(w, api.Error{Error: "bad token"})
				return
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			h(w, r)
		})
	}
	stream := func(w http.ResponseWriter, r *http.Request) {
		for _, ev := range f.events {
			reply(w, ev)
		}
	}
	route("GET /v1/apps", func(w http.ResponseWriter, r *http.Request) { reply(w, f.apps) })
	route("GET /v1/apps/{app}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, api.App{Name: r.PathValue("app"), URLs: []string{"http://" + r.PathValue("app") + ".localhost:8080"}})
	})
	route("DELETE /v1/apps/{app}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	route("POST /v1/apps/{app}/deploy", stream)
	route("POST /v1/apps/{app}/rollback", stream)
	route("PATCH /v1/apps/{app}/env", stream)
	route("GET /v1/apps/{app}/env", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]string{"B": "2", "A": "x=y"})
	})
	route("GET /v1/apps/{app}/releases", func(w http.ResponseWriter, r *http.Request) {
		reply(w, []api.Release{
			{Number: 2, Status: api.ReleaseActive, Kind: "python", Cause: "env set A", Created: time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC)},
			{Number: 1, Status: api.ReleaseFailed, Kind: "python", Cause: "deploy", Error: "build failed\nmore"},
		})
	})
	route("GET /v1/apps/{app}/ps", func(w http.ResponseWriter, r *http.Request) { reply(w, f.ps) })
	route("PUT /v1/apps/{app}/scale", func(w http.ResponseWriter, r *http.Request) {
		var s map[string]int
		json.Unmarshal(f.bodies["PUT "+r.URL.Path], &s)
		reply(w, api.App{Name: r.PathValue("app"), Scale: s})
	})
	route("GET /v1/apps/{app}/logs", func(w http.ResponseWriter, r *http.Request) {
		for _, l := range f.logs {
			reply(w, l)
		}
	})
	route("POST /v1/apps/{app}/run", func(w http.ResponseWriter, r *http.Request) {
		for _, o := range f.run {
			reply(w, o)
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// cli returns a cli pointed at f with the right token.
func (f *fakeEngine) cli(t *testing.T) *cli {
	return testCLI(t, map[string]string{"PIER_API": f.srv.URL, "PIER_TOKEN": testToken})
}

func (f *fakeEngine) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeEngine) body(key string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[key]
}

func (f *fakeEngine) set(fn func(f *fakeEngine)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// tarNames lists the files of a tar.gz.
func tarNames(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("bundle is not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("bundle is not a tar: %v", err)
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, strings.TrimPrefix(h.Name, "./"))
		}
	}
}

func TestDeployProgress(t *testing.T) {
	f := newFakeEngine(t)
	f.set(func(f *fakeEngine) {
		f.events = []api.Event{
			{Type: api.EventBuild, Release: 3, Message: "Building python"},
			{Type: api.EventLog, Message: "Collecting flask\nInstalled flask"},
			{Type: api.EventStart, Release: 3, Message: "Starting v3 (2 web)"},
			{Type: api.EventHealth, Release: 3, Message: "Health check passed web.1"},
			{Type: api.EventSwap, Release: 3},
			{Type: api.EventDone, Release: 3},
		}
	})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"pier.yaml": "name: blog\nprocesses:\n  web: python app.py\n",
		"app.py":    "print('hi')\n",
	})
	r := f.cli(t).execute(t, "", "deploy", dir)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	want := "-----> Deploying blog from " + dir + " to " + f.srv.URL + "\n" +
		"-----> Building python\n" +
		"       Collecting flask\n" +
		"       Installed flask\n" +
		"-----> Starting v3 (2 web)\n" +
		"-----> Health check passed web.1\n" +
		"-----> Routing to v3\n" +
		"-----> Done: v3 at http://blog.localhost:8080\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	names := tarNames(t, f.body("POST /v1/apps/blog/deploy"))
	if !slices.Contains(names, "pier.yaml") || !slices.Contains(names, "app.py") {
		t.Errorf("bundle holds %q, want pier.yaml and app.py", names)
	}
}

func TestDeployFailure(t *testing.T) {
	f := newFakeEngine(t)
	f.set(func(f *fakeEngine) {
		f.events = []api.Event{
			{Type: api.EventBuild, Message: "Building python"},
			{Type: api.EventError, Error: "pip install exited with status 1", LogTail: []string{"ERROR: No matching distribution found for flsk"}},
		}
	})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app.py": "x"})
	r := f.cli(t).execute(t, "", "deploy", dir, "--app", "blog")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	for _, want := range []string{
		"pier: deploy of blog failed; the previous release keeps serving: pip install exited with status 1",
		"    ERROR: No matching distribution found for flsk",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestDeployInvalidManifestUploadsNothing(t *testing.T) {
	f := newFakeEngine(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"pier.yaml": "name: blog\nprocesses:\n  web: python app.py\nscael: {web: 2}\n"})
	r := f.cli(t).execute(t, "", "deploy", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "pier.yaml:4:1") {
		t.Errorf("exit %d, stderr %q; want 1 and the file:line of the problem", r.code, r.stderr)
	}
	if reqs := f.got(); len(reqs) != 0 {
		t.Errorf("the engine got %q; want nothing uploaded", reqs)
	}
}

func TestRollbackAndEnv(t *testing.T) {
	f := newFakeEngine(t)
	f.set(func(f *fakeEngine) { f.events = []api.Event{{Type: api.EventDone, Release: 5}} })
	a := f.cli(t)

	r := a.execute(t, "", "rollback", "v2", "--app", "blog")
	if r.code != 0 || !strings.Contains(r.stdout, "Done: v5 at http://blog.localhost:8080") {
		t.Errorf("rollback: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := string(f.body("POST /v1/apps/blog/rollback")); got != `{"release":2}` {
		t.Errorf("rollback body %s", got)
	}

	r = a.execute(t, "", "env", "set", "A=1", "B=x=y", "--app", "blog")
	if r.code != 0 {
		t.Errorf("env set: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := string(f.body("PATCH /v1/apps/blog/env")); got != `{"set":{"A":"1","B":"x=y"}}` {
		t.Errorf("env set body %s", got)
	}
	r = a.execute(t, "", "env", "unset", "A", "--app", "blog")
	if got := string(f.body("PATCH /v1/apps/blog/env")); r.code != 0 || got != `{"unset":["A"]}` {
		t.Errorf("env unset: exit %d, body %s", r.code, got)
	}
	r = a.execute(t, "", "env", "list", "--app", "blog")
	if r.code != 0 || r.stdout != "A=x=y\nB=2\n" {
		t.Errorf("env list: exit %d, stdout %q", r.code, r.stdout)
	}
	n := len(f.got())
	r = a.execute(t, "", "env", "set", "1A=x", "--app", "blog")
	if r.code != 1 || !strings.Contains(r.stderr, "not a variable name") || len(f.got()) != n {
		t.Errorf("bad env name: exit %d, stderr %q, requests %d -> %d", r.code, r.stderr, n, len(f.got()))
	}
}

func TestRunExitCode(t *testing.T) {
	f := newFakeEngine(t)
	exit := 7
	f.set(func(f *fakeEngine) {
		f.run = []api.RunOutput{{Stream: "stdout", Text: "migrating"}, {Stream: "stderr", Text: "table exists"}, {Exit: &exit}}
	})
	a := f.cli(t)
	r := a.execute(t, "", "run", "blog", "--", "python", "manage.py", "migrate", "--fake")
	if r.code != 7 || r.stdout != "migrating\n" || r.stderr != "table exists\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 7 and the output split", r.code, r.stdout, r.stderr)
	}
	if got := string(f.body("POST /v1/apps/blog/run")); got != `{"command":["python","manage.py","migrate","--fake"]}` {
		t.Errorf("run body %s", got)
	}

	zero := 0
	f.set(func(f *fakeEngine) { f.run = []api.RunOutput{{Exit: &zero}} })
	if r := a.execute(t, "", "run", "--app", "blog", "--", "true"); r.code != 0 {
		t.Errorf("exit 0 run: code %d, stderr %q", r.code, r.stderr)
	}
	if r := a.execute(t, "", "run", "blog", "true"); r.code != 1 || !strings.Contains(r.stderr, `after "--"`) {
		t.Errorf("run without --: code %d, stderr %q", r.code, r.stderr)
	}
}

func TestDestroyConfirmation(t *testing.T) {
	const del = "DELETE /v1/apps/blog"
	tests := []struct {
		name     string
		terminal bool
		stdin    string
		args     []string
		code     int
		deleted  bool
		stderr   string
	}{
		{name: "confirmed", terminal: true, stdin: "blog\n", code: 0, deleted: true, stderr: "Type the app name to confirm:"},
		{name: "wrong name", terminal: true, stdin: "blgo\n", code: 1, stderr: "nothing was destroyed"},
		{name: "end of input", terminal: true, stdin: "", code: 1, stderr: "nothing was destroyed"},
		{name: "no terminal", terminal: false, stdin: "blog\n", code: 1, stderr: "pass --yes"},
		{name: "--yes", terminal: false, args: []string{"--yes"}, code: 0, deleted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEngine(t)
			a := f.cli(t)
			a.isTerminal = func(io.Reader) bool { return tt.terminal }
			r := a.execute(t, tt.stdin, append([]string{"destroy", "blog"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			if got := slices.Contains(f.got(), del); got != tt.deleted {
				t.Errorf("deleted = %v, want %v (requests %q)", got, tt.deleted, f.got())
			}
		})
	}
}

func TestListings(t *testing.T) {
	f := newFakeEngine(t)
	f.set(func(f *fakeEngine) {
		f.apps = []api.App{{Name: "blog", Release: 3, Status: "running", Scale: map[string]int{"web": 2, "worker": 1}, URLs: []string{"http://blog.localhost:8080"}}}
		f.ps = []api.Instance{
			{Instance: "web.1", Process: "web", Release: 3, State: "running", Port: 40001, PID: 1234, Limits: "512M"},
			{Instance: "worker.1", Process: "worker", Release: 3, State: "crash-loop", Restarts: 7, LastExit: "exit status 1"},
		}
		f.logs = []api.LogLine{
			{Time: time.Date(2026, 11, 21, 20, 0, 0, 0, time.UTC), Instance: "web.1", Stream: "stdout", Text: "GET / 200"},
			{Time: time.Date(2026, 11, 21, 20, 0, 1, 0, time.FixedZone("X", 3600)), Process: "worker", Stream: "pier", Text: "exited 1"},
		}
	})
	a := f.cli(t)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"apps"}, []string{
			"NAME  RELEASE  STATUS   SCALE           URL",
			"blog  v3       running  web=2 worker=1  http://blog.localhost:8080",
		}},
		{[]string{"releases", "--app", "blog"}, []string{
			"RELEASE  STATUS  KIND    CAUSE      CREATED               ERROR",
			"v2       active  python  env set A  2026-11-21T20:00:00Z  ",
			"v1       failed  python  deploy     -                     build failed ...",
		}},
		{[]string{"ps", "--app", "blog"}, []string{
			"INSTANCE  RELEASE  STATE       RESTARTS  PORT   PID   LIMITS",
			"web.1     v3       running     0         40001  1234  512M",
			"worker.1  v3       CRASH-LOOP  7         -      -     -",
			"! worker.1 keeps crashing; pier waits longer and longer between restarts (7 restarts, last exit: exit status 1).",
			"  See why: pier logs --app blog --process worker",
		}},
		{[]string{"logs", "--app", "blog"}, []string{
			"2026-11-21T20:00:00Z app[web.1]: GET / 200",
			"2026-11-21T19:00:01Z pier[worker]: exited 1",
		}},
		{[]string{"scale", "web=3", "worker=0", "--app", "blog"}, []string{"Scaled blog: web=3 worker=0"}},
	}
	for _, tt := range tests {
		r := a.execute(t, "", tt.args...)
		if r.code != 0 {
			t.Errorf("%q: exit %d, stderr %q", tt.args, r.code, r.stderr)
			continue
		}
		for _, line := range tt.want {
			if !strings.Contains(r.stdout, line+"\n") {
				t.Errorf("%q: output lacks line %q:\n%s", tt.args, line, r.stdout)
			}
		}
	}
	reqs := f.got()
	if !slices.Contains(reqs, "GET /v1/apps/blog/logs?lines=100") {
		t.Errorf("logs request not as expected: %q", reqs)
	}

	r := a.execute(t, "", "apps", "--json")
	var apps []api.App
	if err := json.Unmarshal([]byte(r.stdout), &apps); err != nil || len(apps) != 1 || apps[0].Name != "blog" {
		t.Errorf("apps --json = %q: %v", r.stdout, err)
	}
	if !strings.Contains(r.stdout, "\n  {\n    \"name\": \"blog\"") {
		t.Errorf("apps --json is not indented:\n%s", r.stdout)
	}
}

func TestErrors(t *testing.T) {
	f := newFakeEngine(t)
	home := t.TempDir()
	writeFiles(t, home, map[string]string{"token": "stale\n"})
	a := testCLI(t, map[string]string{"PIER_API": f.srv.URL, "PIER_HOME": home})
	r := a.execute(t, "", "apps")
	if r.code != 1 || !strings.Contains(r.stderr, "pier: the engine refused the API token from "+home+"/token: give the right one") || !strings.Contains(r.stderr, "(the engine said: bad token)") {
		t.Errorf("wrong token: exit %d, stderr %q", r.code, r.stderr)
	}

	a = testCLI(t, map[string]string{"PIER_API": f.srv.URL})
	r = a.execute(t, "", "apps")
	if r.code != 1 || !strings.Contains(r.stderr, "none was found") {
		t.Errorf("no token: exit %d, stderr %q", r.code, r.stderr)
	}

	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	a = testCLI(t, map[string]string{"PIER_API": strings.TrimPrefix(url, "http://")})
	r = a.execute(t, "", "ps", "--app", "blog")
	if want := "pier: cannot reach the engine at " + url + " (is \"pier up\" running?)\n"; r.code != 1 || r.stderr != want {
		t.Errorf("engine down: exit %d, stderr %q; want %q", r.code, r.stderr, want)
	}

	app := t.TempDir()
	writeFiles(t, app, map[string]string{"index.html": "hi"})
	r = a.execute(t, "", "deploy", app, "--app", "blog")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the engine") {
		t.Errorf("deploy with the engine down: exit %d, stderr %q", r.code, r.stderr)
	}

	a = f.cli(t)
	a.wd = t.TempDir()
	r = a.execute(t, "", "ps")
	if r.code != 1 || r.stderr != "pier: "+errNoApp.Error()+"\n" {
		t.Errorf("no app: exit %d, stderr %q", r.code, r.stderr)
	}
	r = a.execute(t, "", "scale", "web")
	if r.code != 1 || !strings.Contains(r.stderr, "Run 'pier scale --help' for usage.") {
		t.Errorf("usage error: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestUpAndServeHooks(t *testing.T) {
	var up UpOptions
	var serve ServeOptions
	home := t.TempDir()
	a := testCLI(t, map[string]string{"PIER_HOME": home, "PIER_API": "http://10.9.9.9:1"})
	a.hooks = Hooks{
		Up:    func(ctx context.Context, o UpOptions) error { up = o; return nil },
		Serve: func(ctx context.Context, o ServeOptions) error { serve = o; return nil },
	}
	if r := a.execute(t, "", "up", "--http", ":9090", "--log-level", "debug"); r.code != 0 {
		t.Fatalf("up: exit %d, stderr %q", r.code, r.stderr)
	}
	if up.Home != home || up.HTTP != ":9090" || up.API != "127.0.0.1:7070" || up.Domain != "localhost" || up.Logger == nil {
		t.Errorf("up got %+v", up)
	}
	if !up.Logger.Enabled(context.Background(), -4) {
		t.Errorf("--log-level debug: logger does not log debug")
	}
	if r := a.execute(t, "", "up", "--api", "0.0.0.0:7171"); r.code != 0 || up.API != "0.0.0.0:7171" {
		t.Errorf("up --api: exit %d, API %q", r.code, up.API)
	}
	if r := a.execute(t, "", "up", "--log-level", "loud"); r.code != 1 || !strings.Contains(r.stderr, "--log-level") {
		t.Errorf("bad log level: exit %d, stderr %q", r.code, r.stderr)
	}

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"pier.yaml": "name: shop\nprocesses: {web: ./shop}\n"})
	if r := a.execute(t, "", "serve", dir, "--http", ":9000"); r.code != 0 {
		t.Fatalf("serve: exit %d, stderr %q", r.code, r.stderr)
	}
	if serve.Dir != dir || serve.App != "shop" || serve.HTTP != ":9000" || serve.Logger == nil {
		t.Errorf("serve got %+v", serve)
	}

	a.hooks = Hooks{}
	if r := a.execute(t, "", "up"); r.code != 1 || !strings.Contains(r.stderr, "not available") {
		t.Errorf("nil hook: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	a := testCLI(t, map[string]string{"PIER_API": "http://127.0.0.1:1"})
	r := a.execute(t, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "pier ") {
		t.Errorf("version: exit %d, stdout %q", r.code, r.stdout)
	}
}
