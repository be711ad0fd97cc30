package errortrack

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters bound ingestion with token buckets: one per app, and one for
// the node across all apps, so that many apps flooding at once cannot take
// more of the engine than the node's cap even when each stays under its
// own rate. Limits are per engine node: with several nodes an app may send
// that much to each.
type limiters struct {
	defRate  float64
	defBurst int
	node     *rate.Limiter // nil: no cap on the node

	mu    sync.Mutex // guards byApp
	byApp map[string]*appLimiter
}

type appLimiter struct {
	lim   *rate.Limiter
	rate  float64
	burst int
}

// newLimiters makes the per-app buckets (rate r, burst) and the node's
// (nodeRate, nodeBurst; nodeRate <= 0 for none).
func newLimiters(r float64, burst int, nodeRate float64, nodeBurst int) *limiters {
	l := &limiters{defRate: r, defBurst: burst, byApp: map[string]*appLimiter{}}
	if nodeRate > 0 {
		l.node = rate.NewLimiter(rate.Limit(nodeRate), nodeBurst)
	}
	return l
}

// limitScope says which bound refused events.
type limitScope string

const (
	limitNone limitScope = ""
	limitApp  limitScope = "project"      // the app's own rate (Sentry's project scope)
	limitNode limitScope = "organization" // the node's cap over every app (Sentry's widest scope)
)

// allow takes n events from app's bucket and the node's. When either is
// empty nothing is taken from either, and it says which refused and how
// long the SDK should wait (at least a second: Retry-After counts whole
// seconds).
func (l *limiters) allow(app string, n int, cfg Config, now time.Time) (limitScope, time.Duration) {
	r, burst := l.defRate, l.defBurst
	if cfg.RatePerSecond > 0 {
		r = cfg.RatePerSecond
	}
	if cfg.Burst > 0 {
		burst = cfg.Burst
	}
	l.mu.Lock()
	al, ok := l.byApp[app]
	if !ok || al.rate != r || al.burst != burst {
		al = &appLimiter{lim: rate.NewLimiter(rate.Limit(r), burst), rate: r, burst: burst}
		l.byApp[app] = al
	}
	l.mu.Unlock()
	// An envelope of more events than a bucket holds costs a full bucket,
	// so that it can pass once the bucket is full again.
	ra := al.lim.ReserveN(now, min(n, burst))
	if wait := ra.DelayFrom(now); wait > 0 {
		ra.CancelAt(now)
		return limitApp, roundUpSecond(wait)
	}
	if l.node != nil {
		rn := l.node.ReserveN(now, min(n, l.node.Burst()))
		if wait := rn.DelayFrom(now); wait > 0 {
			// Refused for the node's sake: the app's tokens go back, so
			// a quiet app is not charged for the flood of others.
			rn.CancelAt(now)
			ra.CancelAt(now)
			return limitNode, roundUpSecond(wait)
		}
	}
	return limitNone, 0
}

func roundUpSecond(d time.Duration) time.Duration {
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

func (l *limiters) forget(app string) {
	l.mu.Lock()
	delete(l.byApp, app)
	l.mu.Unlock()
}
