package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// canaryGet fetches / from app with an optional Cookie header and returns
// the release that answered ("v2") and the pier_canary cookie it was given.
func canaryGet(t *testing.T, c *http.Client, e *engine, app, cookie string) (release, setCookie string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.httpAddr+"/", nil)
	req.Host = app + ".localhost"
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("GET /: %v", err)
		return "", ""
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /: %d %q", resp.StatusCode, body)
		return "", ""
	}
	_, rest, _ := strings.Cut(string(body), "release ")
	release, _, _ = strings.Cut(rest, "<")
	for _, sc := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "pier_canary=") {
			setCookie, _, _ = strings.Cut(sc, ";")
		}
	}
	return release, setCookie
}

// TestCanary: a canary deploy gets its share of new clients (within 2
// points over 10,000 of them), a client keeps its release through the
// cookie, rollback ends the canary and promote makes it current.
func TestCanary(t *testing.T) {
	e := startEngine(t)
	dir := example(t, "hello-python")
	app := "hello-python"
	e.must(dir, "deploy") // v1
	redeploy := func(args ...string) string {
		t.Helper()
		os.WriteFile(filepath.Join(dir, "version.txt"), []byte(time.Now().String()), 0o644)
		return e.must(dir, append([]string{"deploy"}, args...)...)
	}
	if out := redeploy("--canary", "10%"); !strings.Contains(out, "10% of clients") { // v2
		t.Fatalf("canary deploy output:\n%s", out)
	}
	if ps := e.ps(app); len(ps) != 2 {
		t.Fatalf("with a canary: instances %+v, want v1 and v2", ps)
	}

	// 10,000 new clients (no cookie): about 10% get v2.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	const total = 10000
	var mu sync.Mutex
	counts := map[string]int{}
	cookies := map[string]string{}
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range 4 { // hello-python answers HTTP/1.0 with a listen backlog of 5: a connection per request
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				rel, cookie := canaryGet(t, client, e, app, "")
				mu.Lock()
				counts[rel]++
				if cookie != "" {
					cookies[rel] = cookie
				}
				mu.Unlock()
			}
		}()
	}
	for range total {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	share := float64(counts["v2"]) / total * 100
	t.Logf("answers by release: %v (canary share %.2f%%)", counts, share)
	if counts["v1"]+counts["v2"] != total || share < 8 || share > 12 {
		t.Fatalf("canary share %.2f%% (%v), want 10%% within 2 points", share, counts)
	}

	// Stickiness: a client keeps the release its cookie names.
	if cookies["v1"] != "pier_canary=1" || cookies["v2"] != "pier_canary=2" {
		t.Fatalf("cookies given: %v", cookies)
	}
	for _, rel := range []string{"v1", "v2"} {
		for range 50 {
			got, again := canaryGet(t, client, e, app, "session=abc; "+cookies[rel])
			if got != rel || again != "" {
				t.Fatalf("client with %q got %s (new cookie %q), want %s", cookies[rel], got, again, rel)
			}
		}
	}

	// Rollback ends the canary: everyone is back on v1, v2 is stopped.
	e.must(dir, "rollback")
	for range 50 {
		if got, _ := canaryGet(t, client, e, app, cookies["v2"]); got != "v1" {
			t.Fatalf("after rollback, a canary client got %s, want v1", got)
		}
	}
	if ps := e.ps(app); len(ps) != 1 || ps[0].Release != 1 {
		t.Fatalf("after rollback: instances %+v, want v1 alone", ps)
	}

	// Promote makes a new canary current and stops the old release.
	redeploy("--canary", "50%") // v3
	if out := e.must(dir, "promote"); !strings.Contains(out, "v3") {
		t.Fatalf("promote output:\n%s", out)
	}
	for range 50 {
		if got, cookie := canaryGet(t, client, e, app, ""); got != "v3" || cookie != "" {
			t.Fatalf("after promote: %s (cookie %q), want v3 and no cookie", got, cookie)
		}
	}
	if ps := e.ps(app); len(ps) != 1 || ps[0].Release != 3 {
		t.Fatalf("after promote: instances %+v, want v3 alone", ps)
	}
	if rels := e.must(dir, "releases"); !strings.Contains(rels, "v3") {
		t.Fatalf("releases:\n%s", rels)
	}
	if _, errs, code := e.pier(dir, "promote"); code == 0 || !strings.Contains(errs, "no canary") {
		t.Fatalf("promote without a canary: exit %d %q", code, errs)
	}
}
