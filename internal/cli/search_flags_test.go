package cli

import (
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
			up, ok := upWith(t, tt.args, tt.errText)
			if !ok {
				return
			}
			if up.SearchIdleClose != tt.want {
				t.Errorf("SearchIdleClose = %v, want %v", up.SearchIdleClose, tt.want)
			}
		})
	}
}
