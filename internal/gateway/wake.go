package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Waker starts an app that sleeps while idle. Wake returns once the app's
// instances are in the routing table (SetRoutes was called with them), or
// with the reason they are not.
type Waker interface {
	Wake(ctx context.Context, app string) error
}

// DefaultWakeTimeout bounds how long a request waits for its app to start
// when Options.WakeTimeout is 0.
const DefaultWakeTimeout = 30 * time.Second

// touchEvery is how stale an app's last-request time may get before a
// request writes it again: most requests only read it.
const touchEvery = int64(100 * time.Millisecond)

// appState is what the gateway keeps per app across tables: when it was
// last asked for, and the start of a sleeping app under way.
type appState struct {
	last atomic.Int64 // monoNow() of the latest request, 0 = none yet

	mu     sync.Mutex // guards waking
	waking *wakeCall  // the start under way, nil = none
}

// wakeCall is one start of a sleeping app, shared by the requests that
// wait for it.
type wakeCall struct {
	done chan struct{} // closed when err is set
	err  error
}

func (s *appState) touch() { s.touchAt(monoNow()) }

// touchAt is touch with the clock read by the caller (monoNow's scale).
func (s *appState) touchAt(now int64) {
	if now-s.last.Load() > touchEvery {
		s.last.Store(now)
	}
}

// wake starts app through w, once for all the requests that ask while a
// start is under way, and waits for it or for ctx. The start itself is
// bounded by timeout, not by the request that began it.
func (s *appState) wake(ctx context.Context, w Waker, app string, timeout time.Duration) error {
	s.mu.Lock()
	c := s.waking
	if c == nil {
		c = &wakeCall{done: make(chan struct{})}
		s.waking = c
		go func() {
			wctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := w.Wake(wctx, app)
			cancel()
			s.mu.Lock()
			s.waking = nil
			s.mu.Unlock()
			c.err = err
			close(c.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wake starts the sleeping app of rt and returns its route once it has
// backends. It answers the request itself (503) and returns nil when the
// app did not start in time.
func (g *Gateway) wake(w http.ResponseWriter, r *http.Request, rt *route) *route {
	ctx, cancel := context.WithTimeout(r.Context(), g.wakeTimeout)
	err := rt.state.wake(ctx, g.waker, rt.app, g.wakeTimeout)
	cancel()
	if err == nil {
		rt.state.touch() // the start took time: the app was not idle meanwhile
		if now := g.table.Load().byApp[rt.app]; now != nil && len(now.backends) > 0 {
			return now
		}
		err = errNoBackend
	}
	if r.Context().Err() != nil {
		return nil // the client left; nobody reads an answer
	}
	g.log.Warn("gateway: app did not start for a request", "app", rt.app, "err", err)
	w.Header().Set("Retry-After", "1")
	msg := "pier: app " + strconv.Quote(rt.app) + " could not be started"
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "pier: app " + strconv.Quote(rt.app) + " did not start within " + g.wakeTimeout.String()
	}
	writeText(w, http.StatusServiceUnavailable, msg)
	return nil
}

// LastRequest reports when a request for app last reached the gateway,
// within 100 ms; zero when none did since the app entered the table. The
// engine stops apps that sleep while idle after enough time without one.
func (g *Gateway) LastRequest(app string) time.Time {
	g.mu.Lock()
	s := g.apps[app]
	g.mu.Unlock()
	if s == nil {
		return time.Time{}
	}
	last := s.last.Load()
	if last == 0 {
		return time.Time{}
	}
	return epoch.Add(time.Duration(last))
}

// CanaryCookie is the cookie that keeps a client in its group while an app
// has a canary release: its value is the release the client was given.
const CanaryCookie = "pier_canary"

// canarySplit sends a share of an app's new clients to a release under
// trial and keeps each client in its group with CanaryCookie.
type canarySplit struct {
	backends []*backend
	next     atomic.Uint32
	weight   uint64        // share of new clients, in basis points (1/100 %)
	n        atomic.Uint64 // new clients assigned so far

	canaryValue, stableValue string   // cookie values: the releases' numbers
	setCanary, setStable     []string // Set-Cookie values; len == cap, so appends copy
}

func newCanarySplit(backends []*backend, weight, canaryRelease, stableRelease int) *canarySplit {
	c := &canarySplit{
		backends:    backends,
		weight:      uint64(weight),
		canaryValue: strconv.Itoa(canaryRelease),
		stableValue: strconv.Itoa(stableRelease),
	}
	cookie := func(v string) []string {
		return []string{CanaryCookie + "=" + v + "; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"}[:1:1]
	}
	c.setCanary, c.setStable = cookie(c.canaryValue), cookie(c.stableValue)
	return c
}

// choose says whether r goes to the canary. A client with a cookie naming
// either release keeps it; a new client is assigned so that exactly the
// weight's share of new clients (to one client) goes to the canary, and is
// told with a cookie. It does not allocate.
func (c *canarySplit) choose(w http.ResponseWriter, r *http.Request) bool {
	switch cookieValue(r.Header["Cookie"], CanaryCookie) {
	case c.canaryValue:
		return true
	case c.stableValue:
		return false
	}
	n := c.n.Add(1)
	in := n*c.weight/10000 != (n-1)*c.weight/10000
	if in {
		w.Header()["Set-Cookie"] = c.setCanary
	} else {
		w.Header()["Set-Cookie"] = c.setStable
	}
	return in
}

// cookieValue returns the value of the cookie name in Cookie header lines,
// or "". It does not allocate.
func cookieValue(lines []string, name string) string {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if k, v, ok := strings.Cut(part, "="); ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

// canaryKey marks, in a request's context, a request the canary serves
// when it passes through the cache before reaching the proxy.
type canaryKey struct{}
