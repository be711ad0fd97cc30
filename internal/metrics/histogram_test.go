package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	_, prevHi := bucketBounds(0)
	for b := 1; b < nBuckets; b++ {
		lo, hi := bucketBounds(b)
		if lo != prevHi || hi <= lo {
			t.Fatalf("bucket %d = [%d, %d), previous ended at %d", b, lo, hi, prevHi)
		}
		if got := bucketOf(lo); got != b {
			t.Fatalf("bucketOf(%d) = %d, want %d", lo, got, b)
		}
		if got := bucketOf(hi - 1); got != b {
			t.Fatalf("bucketOf(%d) = %d, want %d", hi-1, got, b)
		}
		prevHi = hi
	}
	if got := bucketOf(math.MaxUint64); got != lastIndex {
		t.Fatalf("bucketOf(max) = %d, want %d", got, lastIndex)
	}
}

// TestQuantilesWithinOnePercent compares the histogram's quantiles with the
// exact ones of known distributions.
func TestQuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 1-100ms": func() time.Duration { return time.Millisecond + time.Duration(rng.Int64N(int64(99*time.Millisecond))) },
		"exponential mean 20ms": func() time.Duration {
			return 200*time.Microsecond + time.Duration(rng.ExpFloat64()*float64(20*time.Millisecond))
		},
		"lognormal around 5ms": func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.2) * float64(5*time.Millisecond))
		},
		"bimodal 2ms and 900ms": func() time.Duration {
			if rng.IntN(10) == 0 {
				return 900*time.Millisecond + time.Duration(rng.Int64N(int64(100*time.Millisecond)))
			}
			return 2*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
		},
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			exact := make([]float64, 200000)
			for i := range exact {
				d := gen()
				h.Observe(d)
				exact[i] = float64(d / time.Microsecond)
			}
			slices.Sort(exact)
			var d Dist
			h.Load(&d)
			if d.N != uint64(len(exact)) {
				t.Fatalf("count %d, want %d", d.N, len(exact))
			}
			for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999} {
				want := exact[int(math.Ceil(q*float64(len(exact))))-1]
				got := d.Quantile(q)
				if rel := math.Abs(got-want) / want; rel > 0.01 {
					t.Errorf("p%v = %.0fµs, exact %.0fµs: off by %.2f%%", q*100, got, want, rel*100)
				}
			}
		})
	}
}

func TestDeltaAndEmpty(t *testing.T) {
	var h Histogram
	var a, b, d Dist
	if !math.IsNaN(d.Quantile(0.5)) {
		t.Fatal("quantile of nothing should be NaN")
	}
	for range 100 {
		h.Observe(time.Millisecond)
	}
	h.Load(&a)
	for range 50 {
		h.Observe(time.Second)
	}
	h.Load(&b)
	d.Delta(&b, &a)
	if d.N != 50 {
		t.Fatalf("delta count %d, want 50", d.N)
	}
	if got := d.Quantile(0.5) / 1e6; math.Abs(got-1) > 0.01 {
		t.Fatalf("delta median %.3fs, want 1s", got)
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	m := New(Options{})
	m.Observe("blog", 200, 10, time.Millisecond, "")
	if n := testing.AllocsPerRun(1000, func() { m.Observe("blog", 200, 512, 3*time.Millisecond, "HIT") }); n != 0 {
		t.Fatalf("Observe allocates %v times per call", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	m := New(Options{})
	for i := range 20 {
		m.Observe("app"+string(rune('a'+i)), 200, 1, 0, "")
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe("appk", 200, 512, 3*time.Millisecond, "MISS")
		}
	})
}
