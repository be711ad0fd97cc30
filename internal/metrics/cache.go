package metrics

// The cache results the gateway reports, as indexes into per-app counters.
// cacheNone counts requests no cache answered (no cache in front, or a
// result this package does not know), so the counters always add up to the
// requests.
const (
	cacheNone = iota
	cacheHit
	cacheMiss
	cacheStale
	cacheRevalidated
	cacheBypass
	numCache
)

// cacheNames are the X-Cache values, by index.
var cacheNames = [numCache]string{"", "HIT", "MISS", "STALE", "REVALIDATED", "BYPASS"}

// cacheIndex maps an X-Cache value to its counter.
func cacheIndex(v string) int {
	switch v {
	case "HIT":
		return cacheHit
	case "MISS":
		return cacheMiss
	case "STALE":
		return cacheStale
	case "REVALIDATED":
		return cacheRevalidated
	case "BYPASS":
		return cacheBypass
	}
	return cacheNone
}
