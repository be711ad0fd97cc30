package metrics

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear (as in HdrHistogram): values are
// whole microseconds; values below 64 µs have a bucket each, and every
// power of two above is cut into 64 equal buckets. A bucket is at most
// 1/64 of its lower bound wide, so a quantile read at a bucket's midpoint
// is within 1/128 (0.8 %) of the exact value. Values beyond about 2.4 hours
// land in the last bucket.
const (
	subBits   = 6
	subCount  = 1 << subBits // buckets per power of two
	maxExp    = 28           // powers of two above subCount
	nBuckets  = subCount * (maxExp + 1)
	lastIndex = nBuckets - 1
)

// bucketOf returns the bucket of v microseconds.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [subCount, 2*subCount)
	if e >= maxExp {
		return lastIndex
	}
	return (e+1)*subCount + int(v>>e) - subCount
}

// bucketBounds returns bucket b's range [lo, hi) in microseconds.
func bucketBounds(b int) (lo, hi uint64) {
	if b < subCount {
		return uint64(b), uint64(b) + 1
	}
	e := uint(b/subCount - 1)
	m := uint64(b%subCount + subCount)
	return m << e, (m + 1) << e
}

// Histogram counts durations in log-linear buckets. Observe is lock-free
// and does not allocate; the counts only grow, and readers take deltas
// between two Loads.
type Histogram struct {
	counts [nBuckets]atomic.Uint64
	sum    atomic.Uint64 // microseconds
}

// Observe adds one duration.
func (h *Histogram) Observe(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.counts[bucketOf(us)].Add(1)
	h.sum.Add(us)
}

// ObserveMicros adds one value in microseconds.
func (h *Histogram) ObserveMicros(us uint64) {
	h.counts[bucketOf(us)].Add(1)
	h.sum.Add(us)
}

// Load copies the cumulative counts into d.
func (h *Histogram) Load(d *Dist) {
	var n uint64
	for i := range h.counts {
		c := h.counts[i].Load()
		d.Counts[i] = c
		n += c
	}
	d.N = n
	d.Sum = h.sum.Load()
}

// Dist is a histogram's counts at one moment, or the difference between
// two moments. It is plain data, owned by one goroutine.
type Dist struct {
	Counts [nBuckets]uint64
	N      uint64 // sum of Counts
	Sum    uint64 // microseconds
}

// Reset empties d.
func (d *Dist) Reset() { *d = Dist{} }

// Add adds o to d.
func (d *Dist) Add(o *Dist) {
	for i, c := range o.Counts {
		d.Counts[i] += c
	}
	d.N += o.N
	d.Sum += o.Sum
}

// Delta sets d to cur - prev, bucket by bucket. A bucket read a moment
// apart from its neighbours may not have moved with them; a count that is
// lower than before (never, with cumulative counts) counts as zero.
func (d *Dist) Delta(cur, prev *Dist) {
	var n uint64
	for i := range d.Counts {
		var c uint64
		if cur.Counts[i] > prev.Counts[i] {
			c = cur.Counts[i] - prev.Counts[i]
		}
		d.Counts[i] = c
		n += c
	}
	d.N = n
	d.Sum = 0
	if cur.Sum > prev.Sum {
		d.Sum = cur.Sum - prev.Sum
	}
}

// Quantile returns the q-quantile (0 < q <= 1) in microseconds, read at the
// midpoint of the bucket holding it; NaN when d is empty.
func (d *Dist) Quantile(q float64) float64 {
	if d.N == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(d.N)))
	rank = min(max(rank, 1), d.N)
	var seen uint64
	for i, c := range d.Counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			if hi-lo == 1 {
				return float64(lo)
			}
			return float64(lo+hi) / 2
		}
	}
	return math.NaN()
}

// Mean returns the mean in microseconds; NaN when d is empty.
func (d *Dist) Mean() float64 {
	if d.N == 0 {
		return math.NaN()
	}
	return float64(d.Sum) / float64(d.N)
}
