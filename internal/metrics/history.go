package metrics

import (
	"math"
	"time"
)

// Resolution and retention of the in-memory history.
const (
	Step       = 10 * time.Second // resolution of the last hour
	CoarseStep = time.Minute      // resolution beyond it
	FineSpan   = time.Hour        // how long 10 s points are kept
	Retention  = 24 * time.Hour   // how long 1 min points are kept

	fineCap   = int(FineSpan / Step)
	coarseCap = int(Retention / CoarseStep)
)

// Point is what one app's process type did in one window (10 s, or 1 min
// beyond the last hour). Fields are kept small: a series holds 1,800 of
// them. Latencies are in milliseconds; NaN-free (0 when there were no
// requests).
type Point struct {
	T         int64     // end of the window, Unix seconds
	Requests  uint32    // answered by the gateway
	Status    [5]uint32 // 1xx .. 5xx
	Bytes     uint64    // response bytes
	P50, P95  float32   // ms
	P99, Mean float32   // ms
	CPU       float32   // cores (1 = one core busy), summed over instances
	RSS       uint64    // bytes, summed over instances (max over the window when downsampled)
	Restarts  uint32    // instance restarts during the window
	Instances uint32    // instances at the end of the window
	Cache     [5]uint32 // cache results: HIT, MISS, STALE, REVALIDATED, BYPASS
}

// timed is a point with the end of its window (Unix seconds).
type timed interface{ time() int64 }

func (p Point) time() int64 { return p.T }

// ring keeps the newest cap(buf) points.
type ring[P timed] struct {
	buf  []P
	next int // where the next point goes
	full bool
}

func newRing[P timed](n int) ring[P] { return ring[P]{buf: make([]P, n)} }

func (r *ring[P]) add(p P) {
	r.buf[r.next] = p
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// since appends the points with T > t, oldest first.
func (r *ring[P]) since(t int64, out []P) []P {
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	for k := 0; k < n; k++ {
		i := k
		if r.full {
			i = (r.next + k) % len(r.buf)
		}
		if p := r.buf[i]; p.time() > t {
			out = append(out, p)
		}
	}
	return out
}

// last returns the newest point.
func (r *ring[P]) last() (P, bool) {
	if !r.full && r.next == 0 {
		var zero P
		return zero, false
	}
	return r.buf[(r.next+len(r.buf)-1)%len(r.buf)], true
}

// series is the history of one app's process type: 10 s points for the
// last hour, 1 min points for 24 h, and the minute being built. Owned by
// the collector goroutine (under Metrics.histMu for readers).
type series struct {
	fine, coarse ring[Point]
	minute       Dist  // latencies of the minute being built
	acc          Point // sums of the minute being built
	accKey       int64 // its minute (Unix seconds / 60), 0 = none
	accN         int   // 10 s points in acc
}

func newSeries() *series {
	return &series{fine: newRing[Point](fineCap), coarse: newRing[Point](coarseCap)}
}

// add records a 10 s point (lat: its latencies, may be nil) and folds it
// into the minute it belongs to, flushing the previous minute when p
// starts a new one.
func (s *series) add(p Point, lat *Dist) {
	s.fine.add(p)
	key := (p.T - 1) / 60 // the window (T-10, T] lies in this minute
	if s.accKey != 0 && key != s.accKey {
		s.flush()
	}
	if s.accKey == 0 {
		s.accKey = key
	}
	a := &s.acc
	a.Requests += p.Requests
	for i := range a.Status {
		a.Status[i] += p.Status[i]
	}
	a.Bytes += p.Bytes
	for i := range a.Cache {
		a.Cache[i] += p.Cache[i]
	}
	a.CPU += p.CPU
	a.RSS = max(a.RSS, p.RSS)
	a.Restarts += p.Restarts
	a.Instances = p.Instances
	if lat != nil {
		s.minute.Add(lat)
	}
	s.accN++
}

// flush closes the minute being built into a 1 min point.
func (s *series) flush() {
	if s.accN == 0 {
		return
	}
	p := s.acc
	p.T = (s.accKey + 1) * 60
	p.CPU /= float32(s.accN)
	p.P50, p.P95, p.P99, p.Mean = quantilesMS(&s.minute)
	s.coarse.add(p)
	s.acc, s.accN, s.accKey = Point{}, 0, 0
	s.minute.Reset()
}

// points returns the points after t: 10 s ones when t is within the last
// hour, else 1 min ones (the minute being built not included).
func (s *series) points(t, now int64) ([]Point, time.Duration) {
	if now-t <= int64(FineSpan/time.Second) {
		return s.fine.since(t, nil), Step
	}
	return s.coarse.since(t, nil), CoarseStep
}

// quantilesMS returns p50, p95, p99 and the mean of d in milliseconds, 0
// when d is empty.
func quantilesMS(d *Dist) (p50, p95, p99, mean float32) {
	if d.N == 0 {
		return 0, 0, 0, 0
	}
	ms := func(us float64) float32 { return float32(us / 1000) }
	return ms(d.Quantile(0.50)), ms(d.Quantile(0.95)), ms(d.Quantile(0.99)), ms(d.Mean())
}

// finite replaces NaN and ±Inf by 0, for JSON.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}
