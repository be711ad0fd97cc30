package errortrack

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLimiters: the app's bucket, then the node's; a refusal takes nothing
// from either, and an app refused for the node's sake keeps its tokens.
func TestLimiters(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type call struct {
		app       string
		n         int
		at        time.Duration // after now
		want      limitScope
		wantRetry time.Duration
	}
	tests := []struct {
		name      string
		rate      float64
		burst     int
		nodeRate  float64
		nodeBurst int
		calls     []call
	}{
		{"app over its burst", 1, 3, 100, 100, []call{
			{"a", 3, 0, limitNone, 0},
			{"a", 1, 0, limitApp, time.Second},
			{"b", 3, 0, limitNone, 0},
			{"a", 1, time.Second, limitNone, 0},
		}},
		{"node cap over two apps", 100, 100, 1, 4, []call{
			{"a", 3, 0, limitNone, 0},
			{"b", 1, 0, limitNone, 0},
			{"b", 1, 0, limitNode, time.Second},
			{"a", 2, 0, limitNode, 2 * time.Second},
			{"b", 1, time.Second, limitNone, 0},
		}},
		{"refused by the node, the app keeps its tokens", 0.001, 1, 1, 1, []call{
			{"a", 1, 0, limitNone, 0},
			{"b", 1, 0, limitNode, time.Second},
			{"b", 1, time.Second, limitNone, 0}, // b's one token is still there
			{"b", 1, 2 * time.Second, limitApp, 999 * time.Second},
		}},
		{"an envelope bigger than a bucket costs a full one", 1, 2, 100, 100, []call{
			{"a", 5, 0, limitNone, 0},
			{"a", 1, 0, limitApp, time.Second},
		}},
		{"no node cap", 1000, 1000, -1, 0, []call{
			{"a", 1000, 0, limitNone, 0},
			{"b", 1000, 0, limitNone, 0},
		}},
		{"retry rounds up to whole seconds", 0.4, 1, 100, 100, []call{
			{"a", 1, 0, limitNone, 0},
			{"a", 1, 500 * time.Millisecond, limitApp, 2 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiters(tt.rate, tt.burst, tt.nodeRate, tt.nodeBurst)
			for i, c := range tt.calls {
				got, retry := l.allow(c.app, c.n, Config{}, now.Add(c.at))
				if got != c.want || retry != c.wantRetry {
					t.Errorf("call %d (%s, %d events): got %q retry %v, want %q retry %v", i+1, c.app, c.n, got, retry, c.want, c.wantRetry)
				}
			}
		})
	}
}

// TestNodeRateLimit: several apps, each under its own rate, together pass
// the node's cap: the SDK gets 429 with Retry-After and an
// X-Sentry-Rate-Limits of the widest scope, whichever app sends.
func TestNodeRateLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.RatePerSecond, o.Burst = 1000, 1000
		o.NodeRatePerSecond, o.NodeBurst = 0.01, 6
	})
	apps := []string{"a", "b", "c"}
	for _, app := range apps {
		e.dsn(app)
	}
	env := envelope(sampleEvent)
	var codes []string
	var limited []string
	for i := range 9 {
		app := apps[i%3]
		code, hdr, body := e.post(e.envelopePath(app), env, e.authHeader(app))
		codes = append(codes, fmt.Sprintf("%s:%d", app, code))
		if code == 429 {
			ra := hdr.Get("Retry-After")
			if n, err := strconv.Atoi(ra); err != nil || n < 1 {
				t.Errorf("Retry-After %q", ra)
			}
			if rl := hdr.Get("X-Sentry-Rate-Limits"); rl != ra+":error;default;security:organization" {
				t.Errorf("X-Sentry-Rate-Limits %q", rl)
			}
			if !strings.Contains(body, "cap over all apps") || hdr.Get("X-Sentry-Error") == "" {
				t.Errorf("429 body %q, X-Sentry-Error %q", body, hdr.Get("X-Sentry-Error"))
			}
			limited = append(limited, app)
		}
	}
	if got := strings.Join(codes, " "); got != "a:200 b:200 c:200 a:200 b:200 c:200 a:429 b:429 c:429" {
		t.Fatalf("codes: %s", got)
	}
	// What was acknowledged is stored and counted.
	for _, app := range apps {
		e.waitIssues(app, "2 events", func(is []Issue) bool { return totalCount(is) == 2 })
	}
}
