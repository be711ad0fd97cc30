package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h2cApp speaks only h2c (HTTP/2 without TLS, prior knowledge): Node's
// http2.createServer refuses HTTP/1.1. It is Node rather than
// examples/hello-h2c (Go) because a Go build in a fresh engine home
// compiles the standard library (about 30 s of CPU), and e2e tests stay
// short; the two answer alike.
var h2cApp = map[string]string{
	"pier.yaml": "name: h2capp\nprocesses:\n  web: {command: node server.js, protocol: h2c}\nhealth: {path: /healthz}\n" +
		"cache:\n  - {path: /healthz, ttl: 1m}\n",
	"package.json": `{"name": "h2capp", "version": "1.0.0", "private": true}`,
	"server.js": `// An app that speaks only h2c (HTTP/2 without TLS, prior knowledge):
// Node's http2.createServer refuses HTTP/1.1 on its port.
const crypto = require("crypto");

// PROTO=http makes it an HTTP/1.1 app (TestH2CApp switches to it and back).
const server = require(process.env.PROTO === "http" ? "http" : "http2").createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/healthz") {
    res.end("ok HTTP/" + req.httpVersion + "\n");
    return;
  }
  if (url.pathname === "/stream") {
    const n = Number(url.searchParams.get("n")) || 3;
    res.setHeader("Trailer", "X-Lines");
    res.writeHead(200, { "content-type": "text/plain" });
    let i = 0;
    const next = () => {
      if (++i > n) {
        res.addTrailers({ "X-Lines": String(n) });
        res.end();
        return;
      }
      res.write("line " + i + " of " + n + " over HTTP/" + req.httpVersion + "\n", next);
    };
    next();
    return;
  }
  if (url.pathname === "/echo" && req.method === "POST") {
    const h = crypto.createHash("sha256");
    let len = 0;
    req.on("data", (c) => { len += c.length; h.update(c); });
    req.on("end", () => {
      const sum = h.digest("hex");
      res.setHeader("Trailer", "X-Sha256");
      res.write("h2c: " + len + " bytes over HTTP/" + req.httpVersion + ", sha256 " + sum + "\n");
      res.addTrailers({ "X-Sha256": sum });
      res.end();
    });
    return;
  }
  const hd = req.headers;
  res.end("h2c: proto=HTTP/" + req.httpVersion + " conn=" + req.socket.remoteAddress + ":" + req.socket.remotePort + "\n" +
    "x-forwarded-for=" + (hd["x-forwarded-for"] || "") + " x-forwarded-proto=" + (hd["x-forwarded-proto"] || "") +
    " x-forwarded-host=" + (hd["x-forwarded-host"] || "") + " x-request-id=" + (hd["x-request-id"] || "") + "\n");
});
server.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`,
}

// TestH2CApp deploys an app that speaks HTTP/2 without TLS only, and talks to it through the gateway over plain HTTP/1.1 and over
// HTTPS with HTTP/2 and HTTP/1.1: the app sees HTTP/2.0 every time (pier's
// health check included, or the deploy would fail), with the forwarding
// headers and request id of the HTTP/1.1 path; streamed bodies, trailers
// and uploads go through; concurrent requests share the gateway's one
// connection to the instance; the cache in front of it works as for any
// app.
func TestH2CApp(t *testing.T) {
	ca := newCertAuthority(t)
	certs := t.TempDir()
	ca.writePair(t, certs, "h2capp.localhost", "h2capp.localhost")
	e := startEngineTLS(t, certs)
	httpsAddr := e.https

	dir := writeApp(t, h2cApp)
	e.must(dir, "deploy")

	// The instance itself refuses HTTP/1.1.
	ps := e.ps("h2capp")
	if len(ps) != 1 || ps[0].Port == 0 {
		t.Fatalf("pier ps: %+v, want one web instance with a port", ps)
	}
	if resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/", ps[0].Port)); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("the instance answered HTTP/1.1 with %s; the app must speak h2c only", resp.Status)
		}
	}

	plain := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	clients := []struct {
		name      string
		c         *http.Client
		base      string
		wantProto int    // what the client speaks to the gateway
		wantXFP   string // X-Forwarded-Proto the app sees
	}{
		{"http/1.1", plain, "http://" + e.httpAddr, 1, "http"},
		{"https h2", httpsClient(ca, httpsAddr, true), "https://h2capp.localhost", 2, "https"},
		{"https http/1.1", httpsClient(ca, httpsAddr, false), "https://h2capp.localhost", 1, "https"},
	}
	do := func(c *http.Client, method, url string, body io.Reader) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "h2capp.localhost"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading the body: %v", method, url, err)
		}
		return resp, string(b)
	}
	connRE := regexp.MustCompile(`conn=(\S+)`)
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			resp, body := do(cl.c, "GET", cl.base+"/", nil)
			if resp.StatusCode != 200 || resp.ProtoMajor != cl.wantProto {
				t.Fatalf("GET /: %s over HTTP/%d: %q", resp.Status, resp.ProtoMajor, body)
			}
			for _, want := range []string{
				"proto=HTTP/2.0 ", "x-forwarded-for=127.0.0.1 ", "x-forwarded-proto=" + cl.wantXFP + " ",
				"x-forwarded-host=h2capp.localhost", "x-request-id=" + resp.Header.Get("X-Request-Id") + "\n",
			} {
				if !strings.Contains(body, want) || resp.Header.Get("X-Request-Id") == "" {
					t.Errorf("GET /: body %q lacks %q (response X-Request-Id %q)", body, want, resp.Header.Get("X-Request-Id"))
				}
			}

			resp, body = do(cl.c, "GET", cl.base+"/stream?n=50", nil)
			if resp.StatusCode != 200 || strings.Count(body, " over HTTP/2.0\n") != 50 || resp.Trailer.Get("X-Lines") != "50" {
				t.Errorf("GET /stream: %s, %d lines over HTTP/2.0, trailer %v", resp.Status, strings.Count(body, " over HTTP/2.0\n"), resp.Trailer)
			}

			upload := bytes.Repeat([]byte("pier h2c "), 1<<20/9) // ~1 MiB
			sum := sha256.Sum256(upload)
			resp, body = do(cl.c, "POST", cl.base+"/echo", bytes.NewReader(upload))
			want := fmt.Sprintf("h2c: %d bytes over HTTP/2.0, sha256 %s\n", len(upload), hex.EncodeToString(sum[:]))
			if resp.StatusCode != 200 || body != want || resp.Trailer.Get("X-Sha256") != hex.EncodeToString(sum[:]) {
				t.Errorf("POST /echo: %s %q, trailer %v; want %q", resp.Status, body, resp.Trailer, want)
			}
		})
	}

	// Concurrent requests on connections of their own to the gateway are
	// streams of one connection from the gateway to the instance.
	_, body := do(plain, "GET", "http://"+e.httpAddr+"/", nil)
	first := connRE.FindStringSubmatch(body)
	if first == nil {
		t.Fatalf("GET /: no conn= in %q", body)
	}
	const n = 20
	conns := make(chan string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			req, _ := http.NewRequest("GET", "http://"+e.httpAddr+"/", nil)
			req.Host = "h2capp.localhost"
			resp, err := c.Do(req)
			if err != nil {
				conns <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := connRE.FindStringSubmatch(string(b)); m != nil {
				conns <- m[1]
			} else {
				conns <- fmt.Sprintf("%s %q", resp.Status, b)
			}
		}()
	}
	wg.Wait()
	close(conns)
	for c := range conns {
		if c != first[1] {
			t.Errorf("a concurrent request came on %q, want the gateway's one connection %q", c, first[1])
		}
	}

	// Deploys that switch the app to HTTP/1.1 and back, under load: no
	// request fails, each instance is spoken to in its own protocol.
	for _, proto := range []string{"http", "h2c"} {
		manifest := strings.Replace(h2cApp["pier.yaml"], "protocol: h2c", "protocol: "+proto, 1) + "env: {PROTO: " + proto + "}\n"
		if err := os.WriteFile(filepath.Join(dir, "pier.yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		var ok, failed atomic.Int64
		stop := make(chan struct{})
		var load sync.WaitGroup
		for i := 0; i < 4; i++ {
			load.Add(1)
			go func() {
				defer load.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest("GET", "http://"+e.httpAddr+"/", nil)
					req.Host = "h2capp.localhost"
					resp, err := plain.Do(req)
					if err != nil {
						failed.Add(1)
						t.Errorf("during the deploy to %s: %v", proto, err)
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failed.Add(1)
						t.Errorf("during the deploy to %s: %s %q", proto, resp.Status, b)
						continue
					}
					ok.Add(1)
					time.Sleep(5 * time.Millisecond) // a steady load, not a CPU hog
				}
			}()
		}
		out, errs, code := e.pier(dir, "deploy")
		close(stop)
		load.Wait()
		if code != 0 {
			t.Fatalf("pier deploy (protocol %s): exit %d\n%s\n%s", proto, code, out, errs)
		}
		t.Logf("deploy to %s: %d requests ok, %d failed", proto, ok.Load(), failed.Load())
		want := map[string]string{"http": "proto=HTTP/1.1 ", "h2c": "proto=HTTP/2.0 "}[proto]
		if resp, body := do(plain, "GET", "http://"+e.httpAddr+"/", nil); resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("after the deploy to %s: %s %q, want %q", proto, resp.Status, body, want)
		}
	}

	// The cache in front of an h2c app: a miss, then a hit.
	for i, want := range []string{"MISS", "HIT"} {
		resp, body := do(plain, "GET", "http://"+e.httpAddr+"/healthz", nil)
		if resp.StatusCode != 200 || body != "ok HTTP/2.0\n" || resp.Header.Get("X-Cache") != want {
			t.Errorf("GET /healthz #%d: %s %q X-Cache %q, want %q", i+1, resp.Status, body, resp.Header.Get("X-Cache"), want)
		}
	}
}
