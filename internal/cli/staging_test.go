package cli

import (
	"strings"
	"testing"
)

// TestStagingUsage: bad uses of deploy --to and promote --from are refused
// before the engine is asked, with a message that says what is allowed.
func TestStagingUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "--to", "prod"}, `--to "prod": the only environment besides production is staging`},
		{[]string{"deploy", "--to", "staging", "--canary", "10%"}, "--to staging and --canary do not go together"},
		{[]string{"promote", "--from", "qa", "--app", "blog"}, `--from "qa": the only environment to promote from is staging`},
		{[]string{"promote", "blog", "--app", "shop", "--from", "staging"}, "name the app once"},
		{[]string{"promote", "a", "b"}, "at most 1"},
	} {
		a := testCLI(t, map[string]string{"PIER_URL": "http://127.0.0.1:1"})
		r := a.execute(t, "", tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("pier %s: exit %d, stderr %q; want a failure saying %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}
