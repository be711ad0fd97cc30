package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// stagedApp answers with the code version it was built from (version.txt),
// the app it runs as and a config var, so the test can tell production and
// its staging copy apart.
var stagedApp = map[string]string{
	"pier.yaml":   "name: shop\nprocesses:\n  web: python3 app.py\nhealth: {path: /healthz}\ndomains: [shop.example.com]\n",
	"version.txt": "one\n",
	"app.py": `import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CODE = open("version.txt").read().strip()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("code=%s app=%s greeting=%s" % (CODE, os.environ["PIER_APP"], os.environ.get("GREETING", "-"))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
}

// TestStaging: pier deploy --to staging runs a second copy of the app on
// its own host while production keeps its release and traffic; pier
// promote --from staging releases the staged code to production without a
// failed request; destroy takes the copy along. Bad uses fail clearly.
func TestStaging(t *testing.T) {
	e := startEngine(t)
	dir := writeApp(t, stagedApp)
	expect := func(host, want string) {
		t.Helper()
		if code, body := e.getHost(host, "/"); code != 200 || body != want {
			t.Fatalf("GET %s: %d %q, want 200 %q", host, code, body, want)
		}
	}

	// Bad uses before there is anything to stage.
	bad := func(want string, args ...string) {
		t.Helper()
		out, errs, code := e.pier(dir, args...)
		if code == 0 || !strings.Contains(errs, want) {
			t.Fatalf("pier %s: exit %d, want a failure saying %q\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errs)
		}
	}
	bad(`no app named "shop": deploy it without --to staging first`, "deploy", "--to", "staging")
	bad(`--to "qa": the only environment besides production is staging`, "deploy", "--to", "qa")

	e.must(dir, "deploy")                    // shop v1
	e.must(dir, "env", "set", "GREETING=hi") // shop v2: production's config
	expect("shop.localhost", "code=one app=shop greeting=hi")
	bad("shop has no staging copy to promote (pier deploy --to staging makes one)", "promote", "shop", "--from", "staging")

	os.WriteFile(filepath.Join(dir, "version.txt"), []byte("two\n"), 0o644)
	out := e.must(dir, "deploy", "--to", "staging")
	if !strings.Contains(out, "shop-staging") || !strings.Contains(out, "http://shop-staging.localhost:") {
		t.Fatalf("staging deploy output does not name the copy and its URL:\n%s", out)
	}
	// The copy runs the new code with production's config vars, at its
	// own host only; production keeps its release, instances and domains.
	expect("shop-staging.localhost", "code=two app=shop-staging greeting=hi")
	expect("shop.localhost", "code=one app=shop greeting=hi")
	expect("shop.example.com", "code=one app=shop greeting=hi")
	var prod struct {
		Release int    `json:"release"`
		Staging string `json:"staging"`
	}
	e.apiGet("/v1/apps/shop", &prod)
	if prod.Release != 2 || prod.Staging != "shop-staging" {
		t.Fatalf("production after the staging deploy: %+v, want release 2 with staging copy shop-staging", prod)
	}
	for _, in := range e.ps("shop") {
		if in.Release != 2 {
			t.Fatalf("production instances after the staging deploy: %+v, want v2 only", e.ps("shop"))
		}
	}
	if ps := e.must(dir, "ps"); !strings.Contains(ps, "Staging copy shop-staging:") {
		t.Fatalf("pier ps does not show the staging copy:\n%s", ps)
	}
	if apps := e.must(dir, "apps"); !strings.Contains(apps, "shop-staging") {
		t.Fatalf("pier apps does not show the staging copy:\n%s", apps)
	}
	// Its config is its own from now on.
	e.must(dir, "env", "set", "GREETING=staged", "--app", "shop-staging")
	expect("shop-staging.localhost", "code=two app=shop-staging greeting=staged")
	expect("shop.localhost", "code=one app=shop greeting=hi")

	bad("shop-staging is the staging copy of shop", "deploy", "--to", "staging", "--app", "shop-staging")
	// Another app whose manifest asks for production's domain is refused,
	// naming shop, and shop keeps it.
	rival := writeApp(t, map[string]string{
		"pier.yaml": "name: rival\nprocesses:\n  web: python3 app.py\ndomains: [www.rival.test, shop.example.com]\n",
		"app.py":    stagedApp["app.py"], "version.txt": "rival\n",
	})
	bad("shop.example.com (app shop is served at shop.example.com)", "deploy", rival)
	expect("shop.example.com", "code=one app=shop greeting=hi")
	bad(`--from "prod": the only environment to promote from is staging`, "promote", "--from", "prod")
	bad("shop has no canary to promote", "promote", "shop")

	// Promote while clients keep asking production: none may fail.
	var stop atomic.Bool
	var failed, served atomic.Int64
	var lastBad atomic.Value
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				code, body := e.getHost("shop.localhost", "/")
				if code != 200 || !strings.HasPrefix(body, "code=") {
					failed.Add(1)
					lastBad.Store(body)
				}
				served.Add(1)
			}
		}()
	}
	out = e.must(dir, "promote", "shop", "--from", "staging")
	stop.Store(true)
	wg.Wait()
	if served.Load() == 0 {
		t.Fatal("no request reached production during the promote")
	}
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests to production failed during the promote (last: %v)", failed.Load(), served.Load(), lastBad.Load())
	}
	if !strings.Contains(out, "Done: v3") {
		t.Fatalf("promote output:\n%s", out)
	}
	// Production runs the staged code with its own config; the copy stays.
	expect("shop.localhost", "code=two app=shop greeting=hi")
	expect("shop.example.com", "code=two app=shop greeting=hi")
	expect("shop-staging.localhost", "code=two app=shop-staging greeting=staged")
	if rels := e.must(dir, "releases"); !strings.Contains(rels, "promote shop-staging v") {
		t.Fatalf("pier releases does not say where v3 came from:\n%s", rels)
	}

	if out := e.must(dir, "destroy", "shop", "--yes"); !strings.Contains(out, "Destroyed shop and its staging copy shop-staging.") {
		t.Fatalf("destroy output: %q", out)
	}
	if _, errs, code := e.pier(dir, "ps", "--app", "shop-staging"); code == 0 || !strings.Contains(errs, "no app named") {
		t.Fatalf("the staging copy outlived its app: exit %d, %s", code, errs)
	}
	if code, _ := e.getHost("shop-staging.localhost", "/"); code == 200 {
		t.Fatalf("shop-staging.localhost still answers after destroy")
	}
}
