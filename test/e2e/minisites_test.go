package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMinisites deploys examples/minisites, attaches 70,000 tenant domains
// to it through the CLI in one batch, and checks tenants get their own
// pages through the gateway, and that a removed domain is gone.
func TestMinisites(t *testing.T) {
	const tenants = 70_000
	e := startEngine(t)
	dir := example(t, "minisites")
	e.must(dir, "deploy")

	host := func(i int) string { return fmt.Sprintf("t%05d.minisites.test", i) }
	var list strings.Builder
	for i := range tenants {
		list.WriteString(host(i) + "\n")
	}
	file := filepath.Join(t.TempDir(), "domains.txt")
	if err := os.WriteFile(file, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := e.must(dir, "domains", "add", "minisites", "-f", file)
	t.Logf("pier domains add with %d hosts took %v: %s", tenants, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	if !strings.Contains(out, fmt.Sprintf("Added %d domain(s)", tenants)) {
		t.Fatalf("pier domains add: %q, want %d added", out, tenants)
	}

	// A handful of random tenants, first and last included, each get
	// their own pages.
	picks := []int{0, tenants - 1}
	for range 6 {
		picks = append(picks, rand.IntN(tenants))
	}
	names := map[string]bool{}
	for _, i := range picks {
		h := host(i)
		waitFor(t, 30*time.Second, h+" is routed", func() bool {
			code, _ := e.getHost(h, "/")
			return code == 200
		})
		for _, path := range []string{"/", "/services", "/contact"} {
			code, body := e.getHost(h, path)
			if code != 200 || !strings.Contains(body, `<p class="host">`+h+`</p>`) {
				t.Fatalf("GET %s%s: %d %q, want 200 with the tenant's own page", h, path, code, body)
			}
		}
		_, body := e.getHost(h, "/")
		name, _, _ := strings.Cut(body[strings.Index(body, "<h1>")+4:], "</h1>")
		names[name] = true
	}
	if len(names) < 2 {
		t.Errorf("%d tenants all render the same business %v", len(picks), names)
	}

	// Listing and the JSON form.
	var ds []struct{ Host, App string }
	if err := json.Unmarshal([]byte(e.must("", "domains", "minisites", "--json")), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds) != tenants || ds[0].App != "minisites" {
		t.Fatalf("pier domains minisites --json: %d domains, want %d", len(ds), tenants)
	}

	// A batch with an invalid host changes nothing.
	if _, errs, code := e.pier("", "domains", "add", "minisites", "ok.minisites.test", "bad host"); code == 0 || !strings.Contains(errs, "invalid") {
		t.Errorf("adding an invalid host: exit %d, stderr %q; want a failure naming it", code, errs)
	}

	// Removing one domain: 404 for it afterwards, its neighbours still served.
	gone, kept := host(picks[2]), host(picks[3])
	if gone == kept {
		kept = host(0)
	}
	out = e.must("", "domains", "remove", "minisites", gone)
	if !strings.Contains(out, fmt.Sprintf("it has %d now", tenants-1)) {
		t.Errorf("pier domains remove: %q", out)
	}
	waitFor(t, 30*time.Second, gone+" answers 404", func() bool {
		code, _ := e.getHost(gone, "/")
		return code == 404
	})
	if code, body := e.getHost(kept, "/"); code != 200 || !strings.Contains(body, kept) {
		t.Errorf("GET %s after removing %s: %d %q", kept, gone, code, body)
	}
	if _, errs, code := e.pier("", "domains", "remove", "minisites", gone); code == 0 {
		t.Errorf("removing %s twice: exit 0, want a failure (stderr %q)", gone, errs)
	}

	// The domains are kept in the store: a restarted engine serves them.
	e.stop()
	start = time.Now()
	e.start()
	waitFor(t, 60*time.Second, kept+" is served after a restart", func() bool {
		code, body := e.getHost(kept, "/services")
		return code == 200 && strings.Contains(body, kept)
	})
	t.Logf("after a restart, a tenant was served again in %v", time.Since(start).Round(time.Millisecond))
	if code, _ := e.getHost(gone, "/"); code != 404 {
		t.Errorf("GET %s after a restart: %d, want 404", gone, code)
	}
}

// getHost fetches path with the given Host header through the gateway.
func (e *engine) getHost(host, path string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+e.httpAddr+path, nil)
	req.Host = host
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
