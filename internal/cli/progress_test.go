package cli

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"pier/internal/api"
)

// TestDeployProgressOnATerminal: on a terminal the bundle's upload is
// counted on one line, each step says how long after the start it came,
// and the last line the total; build output is left as it is. (Piped
// output is TestDeploy's, unchanged.)
func TestDeployProgressOnATerminal(t *testing.T) {
	f := newFakeEngine(t)
	f.set(func(f *fakeEngine) {
		f.events = []api.Event{
			{Type: api.EventBuild, Release: 3, Message: "Building python"},
			{Type: api.EventLog, Message: "Collecting flask"},
			{Type: api.EventStart, Release: 3, Message: "Starting v3 (2 web)"},
			{Type: api.EventSwap, Release: 3},
			{Type: api.EventDone, Release: 3},
		}
	})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"pier.yaml": "name: blog\nprocesses:\n  web: python app.py\n", "app.py": "print('hi')\n"})
	for _, tc := range []struct {
		name    string
		noColor bool
		time    string // how a time is shown
	}{
		{"dimmed", false, `\x1b\[2m\(\d+\.\ds\)\x1b\[0m`},
		{"NO_COLOR", true, `\(\d+\.\ds\)`},
	} {
		env := map[string]string{"PIER_API": f.srv.URL, "PIER_TOKEN": testToken}
		if tc.noColor {
			env["NO_COLOR"] = "1"
		}
		a := testCLI(t, env)
		a.isTerminal = func(io.Reader) bool { return true }
		r := a.execute(t, "", "deploy", dir)
		if r.code != 0 {
			t.Fatalf("%s: exit %d, stderr:\n%s", tc.name, r.code, r.stderr)
		}
		want := []string{
			`-----> Deploying blog from .* to .*`,
			// the upload line, rewritten in place until the first event
			`(\r\x1b\[K-----> Uploading \d+(\.\d)? [KM]?B)*\r\x1b\[K-----> Uploaded \d+(\.\d)? [KM]?B ` + tc.time,
			`-----> Building python ` + tc.time,
			`       Collecting flask`,
			`-----> Starting v3 \(2 web\) ` + tc.time,
			`-----> Routing to v3 ` + tc.time,
			`-----> Done: v3 at http://blog.localhost:8080 ` + tc.time,
		}
		got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(got) != len(want) {
			t.Fatalf("%s: stdout:\n%s\nwant %d lines", tc.name, r.stdout, len(want))
		}
		for i, w := range want {
			if !regexp.MustCompile("^" + w + "$").MatchString(got[i]) {
				t.Errorf("%s: line %d: got %q, want /%s/", tc.name, i+1, got[i], w)
			}
		}
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {999, "999 B"}, {1000, "1.0 KB"}, {34_567, "34.6 KB"}, {12_100_000, "12.1 MB"}} {
		if got := byteSize(tc.n); got != tc.want {
			t.Errorf("byteSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
