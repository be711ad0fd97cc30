package errortrack

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters bound each app's ingestion with a token bucket. Limits are per
// engine node: with several nodes an app may send that much to each.
type limiters struct {
	defRate  float64
	defBurst int

	mu    sync.Mutex // guards byApp
	byApp map[string]*appLimiter
}

type appLimiter struct {
	lim          *rate.Limiter
	rate         float64
	burst        int
	limitedSince time.Time // first refusal of the current flood (zero = not flooding)
	refused      int64     // events refused in the current flood
}

func newLimiters(r float64, burst int) *limiters {
	return &limiters{defRate: r, defBurst: burst, byApp: map[string]*appLimiter{}}
}

// allow takes n events from app's bucket. When the app is over its rate
// it returns false and how long the SDK should wait.
func (l *limiters) allow(app string, n int, cfg Config, now time.Time) (bool, time.Duration) {
	r, burst := l.defRate, l.defBurst
	if cfg.RatePerSecond > 0 {
		r = cfg.RatePerSecond
	}
	if cfg.Burst > 0 {
		burst = cfg.Burst
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	al, ok := l.byApp[app]
	if !ok || al.rate != r || al.burst != burst {
		al = &appLimiter{lim: rate.NewLimiter(rate.Limit(r), burst), rate: r, burst: burst}
		l.byApp[app] = al
	}
	if n > burst {
		n = burst
	}
	if al.lim.AllowN(now, n) {
		al.limitedSince, al.refused = time.Time{}, 0
		return true, 0
	}
	if al.limitedSince.IsZero() {
		al.limitedSince = now
	}
	al.refused += int64(n)
	// Time until n tokens are back, at least a second: Retry-After counts
	// in whole seconds.
	missing := float64(n) - al.lim.TokensAt(now)
	wait := time.Duration(math.Ceil(missing/r)) * time.Second
	return false, max(wait, time.Second)
}

func (l *limiters) forget(app string) {
	l.mu.Lock()
	delete(l.byApp, app)
	l.mu.Unlock()
}
