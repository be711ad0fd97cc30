package cli

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestUpSearchIdleClose(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		want    time.Duration
		errText string
	}{
		{"default", nil, 5 * time.Minute, ""},
		{"a duration", []string{"--search-idle-close", "90s"}, 90 * time.Second, ""},
		{"zero is never", []string{"--search-idle-close", "0"}, -1, ""},
		{"negative", []string{"--search-idle-close", "-1m"}, 0, "--search-idle-close"},
		{"not a duration", []string{"--search-idle-close", "soon"}, 0, "search-idle-close"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var up UpOptions
			a := testCLI(t, map[string]string{"PIER_HOME": t.TempDir()})
			a.hooks = Hooks{Up: func(ctx context.Context, o UpOptions) error { up = o; return nil }}
			r := a.execute(t, "", append([]string{"up"}, tt.args...)...)
			if tt.errText != "" {
				if r.code == 0 || !strings.Contains(r.stderr, tt.errText) {
					t.Errorf("exit %d, stderr %q; want an error naming %s", r.code, r.stderr, tt.errText)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if up.SearchIdleClose != tt.want {
				t.Errorf("SearchIdleClose = %v, want %v", up.SearchIdleClose, tt.want)
			}
		})
	}
}
