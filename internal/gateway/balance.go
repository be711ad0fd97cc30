package gateway

import (
	"sync/atomic"
	"time"
)

// downFor is how long a backend that refused a connection is skipped while
// another one is available (passive health checking).
const downFor = time.Second

// epoch makes monotonic timestamps that fit in an atomic.Int64.
var epoch = time.Now()

func monoNow() int64 { return int64(time.Since(epoch)) }

// monoAt is monoNow for a clock reading taken before (with its monotonic
// part): no second reading.
func monoAt(t time.Time) int64 { return int64(t.Sub(epoch)) }

// backend is one instance address. The same *backend is shared by every table
// that lists its address, so its counters survive swaps.
type backend struct {
	addr        string
	outstanding atomic.Int64 // requests in flight, bodies and upgrades included
	downUntil   atomic.Int64 // monoNow() until which the backend is considered down
	pool        upPool       // idle keep-alive connections of the forwarder

	// Guarded by Gateway.mu.
	inTable     bool      // listed in the current table
	unusedSince time.Time // when it left the table
}

func (b *backend) down(now int64) bool { return b.downUntil.Load() > now }

func (b *backend) markDown() { b.downUntil.Store(monoNow() + int64(downFor)) }

// pick returns a backend of rt for a request, from the canary's backends
// when canary is set and the route still has a canary.
func (rt *route) pick(canary bool, exclude []*backend) *backend {
	if canary && rt.canary != nil {
		return pickFrom(rt.canary.backends, &rt.canary.next, exclude)
	}
	return pickFrom(rt.backends, &rt.next, exclude)
}

// pickFrom returns the backend of list with the fewest requests in flight,
// preferring backends that are not marked down and skipping those in
// exclude. Ties go to the first one found from a rotating start (next), so
// equal load spreads. It returns nil when every backend is excluded.
func pickFrom(list []*backend, next *atomic.Uint32, exclude []*backend) *backend {
	n := uint32(len(list))
	if n == 0 {
		return nil
	}
	if n == 1 {
		b := list[0]
		if contains(exclude, b) {
			return nil
		}
		return b
	}
	now := monoNow()
	start := next.Add(1)
	var (
		best     *backend
		bestLoad int64
		bestDown bool
	)
	for i := uint32(0); i < n; i++ {
		b := list[(start+i)%n]
		if contains(exclude, b) {
			continue
		}
		load, down := b.outstanding.Load(), b.down(now)
		if best == nil || (bestDown && !down) || (down == bestDown && load < bestLoad) {
			best, bestLoad, bestDown = b, load, down
		}
	}
	return best
}

func contains(list []*backend, b *backend) bool {
	for _, x := range list {
		if x == b {
			return true
		}
	}
	return false
}
