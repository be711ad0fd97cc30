package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps test-only packages out of the pier binary, as Tailscale's
// cmd/tailscaled/deps_test.go does: they bloat it and register test flags.
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "pier/cmd/pier").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["pier/internal/cli"] {
		t.Fatalf("go list -deps does not list pier/internal/cli; output:\n%s", out)
	}
	for _, bad := range []string{"testing", "net/http/httptest", "testing/fstest", "testing/iotest"} {
		if deps[bad] {
			t.Errorf("the pier binary depends on %q; find who imports it with: go list -deps -f '{{.ImportPath}} {{.Imports}}' pier/cmd/pier | grep %s", bad, bad)
		}
	}
}
