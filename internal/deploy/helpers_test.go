package deploy

import (
	"context"
	"sync"
	"testing"

	"pier/internal/store"
)

// testBuckets opens an embedded store in a temporary directory and returns
// the named buckets, in order; the store closes when the test ends.
func testBuckets(t *testing.T, names ...string) []*store.Bucket {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	out := make([]*store.Bucket, len(names))
	for i, name := range names {
		if out[i], err = st.Bucket(ctx, name, 1); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// routeLog keeps the last table a Router handed over; set is the Router's
// callback.
type routeLog struct {
	mu   sync.Mutex // guards last
	last []Route
}

func (l *routeLog) set(routes []Route) {
	l.mu.Lock()
	l.last = routes
	l.mu.Unlock()
}

// route returns app's route in the last table (zero when absent).
func (l *routeLog) route(app string) Route {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rt := range l.last {
		if rt.App == app {
			return rt
		}
	}
	return Route{}
}

func (l *routeLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.last)
}

// runTestRouter runs a router, until t ends, over apps and instances
// buckets of a store of its own; log has every table it sets.
func runTestRouter(t *testing.T) (r *Router, apps, inst *store.Bucket, log *routeLog) {
	t.Helper()
	b := testBuckets(t, "apps", "instances")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // before the store closes
	apps, inst, log = b[0], b[1], &routeLog{}
	r = NewRouter(apps, inst, log.set, nil)
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	return r, apps, inst, log
}
