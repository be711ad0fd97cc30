package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestZeroDowntime: under a steady load of about 200 requests/s for 30 s,
// three deploys and a kill -9 of one of two instances fail no request.
func TestZeroDowntime(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s load test")
	}
	e := startEngine(t)
	dir := example(t, "hello-python")
	app := "hello-python"
	e.must(dir, "deploy")
	e.must(dir, "scale", "web=2")

	const (
		rate     = 200
		duration = 30 * time.Second
	)
	var ok, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	go func() {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		end := time.After(duration)
		for n := 0; n < rate*int(duration/time.Second); n++ {
			select {
			case <-end:
				close(stop)
				return
			case <-tick.C:
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				req, _ := http.NewRequest("GET", "http://"+e.httpAddr+"/slow?ms=10", nil)
				req.Host = app + ".localhost"
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					failMu.Lock()
					if err != nil {
						failures = append(failures, err.Error())
					} else {
						failures = append(failures, fmt.Sprintf("%s at %s", resp.Status, time.Now().Format("15:04:05.000")))
					}
					failMu.Unlock()
					return
				}
				ok.Add(1)
			}()
		}
		close(stop)
	}()

	deploy := func(i int) {
		os.WriteFile(filepath.Join(dir, "version.txt"), []byte(fmt.Sprint(i)), 0o644)
		e.must(dir, "deploy")
	}
	time.Sleep(3 * time.Second)
	deploy(1)
	time.Sleep(2 * time.Second)
	deploy(2)
	time.Sleep(2 * time.Second)
	ps := e.ps(app)
	if len(ps) != 2 || ps[0].PID == 0 {
		t.Fatalf("want 2 running instances, got %+v", ps)
	}
	if err := syscall.Kill(ps[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	deploy(3)
	<-stop
	wg.Wait()

	t.Logf("requests: %d ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed; first: %v", failed.Load(), failures[:min(5, len(failures))])
	}
	if ok.Load() < int64(rate*duration/time.Second)*8/10 {
		t.Fatalf("only %d requests were made; the load generator fell behind", ok.Load())
	}
	if code, body := e.get(app, "/"); code != 200 || !strings.Contains(body, "v4") {
		t.Fatalf("after the deploys: %d %q, want v4", code, body)
	}
}

// TestEngineKill9 kills the engine during a deploy and after one: the
// restarted engine serves exactly what was acknowledged.
func TestEngineKill9(t *testing.T) {
	e := startEngine(t)
	dir := example(t, "hello-python")
	app := "hello-python"
	e.must(dir, "deploy")
	e.must(dir, "scale", "web=2")
	e.must(dir, "env", "set", "GREETING=acked") // v2

	// During a deploy: kill the engine while v3 waits for its health check
	// (its web process takes 5 s to start listening).
	yaml, _ := os.ReadFile(filepath.Join(dir, "pier.yaml"))
	slow := strings.Replace(string(yaml), "web: python app.py", "web: sleep 5 && exec python app.py", 1)
	if slow == string(yaml) {
		t.Fatalf("pier.yaml of hello-python changed shape:\n%s", yaml)
	}
	os.WriteFile(filepath.Join(dir, "pier.yaml"), []byte(slow), 0o644)
	cmd := exec.Command(pierBin, "deploy")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PIER_API=http://"+e.apiAddr, "PIER_HOME="+e.home)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Starting v3") {
			break
		}
	}
	os.WriteFile(filepath.Join(dir, "pier.yaml"), yaml, 0o644)
	e.kill9()
	go io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err == nil {
		t.Error("the interrupted deploy exited 0")
	}

	e.start()
	waitFor(t, 60*time.Second, "v2 serving again after the restart", func() bool {
		code, body := e.get(app, "/")
		return code == 200 && strings.Contains(body, "v2") && strings.Contains(body, "acked")
	})
	waitFor(t, 30*time.Second, "both instances back", func() bool {
		n := 0
		for _, in := range e.ps(app) {
			if in.Ready {
				n++
			}
		}
		return n == 2
	})
	rels := e.must(dir, "releases")
	if !strings.Contains(rels, "v3") || !strings.Contains(rels, "failed") {
		t.Errorf("the interrupted v3 is not recorded as failed:\n%s", rels)
	}

	// After a deploy: everything acknowledged survives.
	e.must(dir, "deploy") // v4
	e.kill9()
	e.start()
	waitFor(t, 60*time.Second, "v4 serving after the restart", func() bool {
		code, body := e.get(app, "/")
		return code == 200 && strings.Contains(body, "v4") && strings.Contains(body, "acked")
	})
	waitFor(t, 30*time.Second, "scale 2 kept", func() bool { return len(e.ps(app)) == 2 })
}

// TestBadInputs: each bad input is a clear error, and the running release
// keeps serving.
func TestBadInputs(t *testing.T) {
	e := startEngine(t)
	dir := example(t, "hello-python")
	app := "hello-python"
	e.must(dir, "deploy")
	stillV1 := func(t *testing.T) {
		t.Helper()
		if code, body := e.get(app, "/"); code != 200 || !strings.Contains(body, "v1") {
			t.Fatalf("the running release was disturbed: %d %q", code, body)
		}
	}
	manifest := func(body string) string {
		return "name: hello-python\n" + body
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // in the CLI's output
	}{
		{"broken yaml", map[string]string{"pier.yaml": manifest("processes:\n  web: [python3\n")}, []string{"pier.yaml:"}},
		{"unknown key", map[string]string{"pier.yaml": manifest("procesess:\n  web: python3 app.py\n")}, []string{"pier.yaml:2", "procesess", `did you mean "processes"`}},
		{"missing command", map[string]string{"pier.yaml": manifest("processes:\n  web: no-such-command-xyz\nhealth: {path: /healthz, timeout: 5s}\n")}, []string{"no-such-command-xyz"}},
		{"port never opened", map[string]string{"pier.yaml": manifest("processes:\n  web: sleep 600\nhealth: {path: /healthz, timeout: 2s}\n")}, []string{"did not answer"}},
		{"failing health check", map[string]string{
			"pier.yaml": manifest("processes:\n  web: python3 app.py\nhealth: {path: /broken, timeout: 2s}\n"),
		}, []string{"/broken"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := example(t, "hello-python")
			for name, content := range tc.files {
				os.WriteFile(filepath.Join(bad, name), []byte(content), 0o644)
			}
			out, errs, code := e.pier(bad, "deploy")
			if code == 0 {
				t.Fatalf("deploy succeeded:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output does not mention %q:\n%s\n%s", w, out, errs)
				}
			}
			stillV1(t)
		})
	}

	t.Run("symlink out of the tree", func(t *testing.T) {
		bad := example(t, "hello-python")
		os.Symlink("/etc/passwd", filepath.Join(bad, "passwd"))
		out, errs, code := e.pier(bad, "deploy")
		if code == 0 || !strings.Contains(errs, "passwd") {
			t.Fatalf("deploy with a symlink out of the tree: exit %d\n%s\n%s", code, out, errs)
		}
		stillV1(t)
	})

	// Hostile bundles sent straight to the API, as a modified client could.
	for _, tc := range []struct {
		name    string
		entries []tar.Header
	}{
		{"dotdot path", []tar.Header{{Name: "../../escape.txt", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}},
		{"absolute path", []tar.Header{{Name: "/tmp/escape.txt", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644}}},
		{"symlink out", []tar.Header{
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../../../../etc"},
			{Name: "link/escape.txt", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		}},
	} {
		t.Run("api "+tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			gz := gzip.NewWriter(&buf)
			tw := tar.NewWriter(gz)
			for _, h := range tc.entries {
				tw.WriteHeader(&h)
				if h.Typeflag == tar.TypeReg {
					tw.Write([]byte("x"))
				}
			}
			tw.Close()
			gz.Close()
			req, _ := http.NewRequest("POST", "http://"+e.apiAddr+"/v1/apps/"+app+"/deploy", &buf)
			req.Header.Set("Authorization", "Bearer "+e.token())
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), `"error"`) {
				t.Fatalf("hostile bundle accepted: %d %s", resp.StatusCode, body)
			}
			for _, p := range []string{"/tmp/escape.txt", filepath.Join(e.home, "escape.txt"), "/etc/escape.txt"} {
				if _, err := os.Stat(p); err == nil {
					os.Remove(p)
					t.Fatalf("the bundle wrote %s", p)
				}
			}
			stillV1(t)
		})
	}

	t.Run("api without token", func(t *testing.T) {
		resp, err := http.Get("http://" + e.apiAddr + "/v1/apps")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("GET /v1/apps without a token: %d, want 401", resp.StatusCode)
		}
	})
}
