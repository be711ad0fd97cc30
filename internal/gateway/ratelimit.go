package gateway

import (
	"maps"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit bounds the requests an app is served, as the manifest's
// limits: {requests, per_ip} say. Each bound allows a burst of one
// second's worth (at least one request); requests over it are answered
// 429 with Retry-After, before any other work.
type RateLimit struct {
	Requests float64 // per second, for the whole app; 0 = no bound
	PerIP    float64 // per second, for each client address; 0 = no bound
}

// SetRateLimit sets app's rate limits; the zero RateLimit removes them.
// Requests already counted against earlier limits start afresh.
func (g *Gateway) SetRateLimit(app string, l RateLimit) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var next limitTable
	if old := g.limits.Load(); old != nil {
		next = maps.Clone(*old)
	}
	if next == nil {
		next = make(limitTable)
	}
	if l.Requests > 0 || l.PerIP > 0 {
		next[app] = newLimiter(l)
	} else {
		delete(next, app)
	}
	g.limits.Store(&next)
}

// limitTable holds the apps' limiters by app. Immutable once stored.
type limitTable map[string]*limiter

// limited answers a request over app's limits and reports whether it did.
func (g *Gateway) limited(w http.ResponseWriter, r *http.Request, app string) bool {
	limits := g.limits.Load()
	if limits == nil || len(*limits) == 0 {
		return false
	}
	l := (*limits)[app]
	if l == nil {
		return false
	}
	wait := l.wait(clientIP(r.RemoteAddr), time.Now())
	if wait <= 0 {
		return false
	}
	w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(wait.Seconds())), 10))
	writeText(w, http.StatusTooManyRequests, "pier: too many requests for app "+app)
	return true
}

// maxClients bounds the client addresses a limiter remembers. Past it,
// addresses whose bucket is full again (idle for a second or more) are
// forgotten, then others if that is not enough.
const maxClients = 65536

// limiter holds one app's token buckets.
type limiter struct {
	app   *rate.Limiter // nil = no app-wide bound
	perIP rate.Limit    // 0 = no per-client bound
	burst int

	mu      sync.Mutex // guards clients
	clients map[string]*rate.Limiter
}

func newLimiter(l RateLimit) *limiter {
	out := &limiter{}
	if l.Requests > 0 {
		out.app = rate.NewLimiter(rate.Limit(l.Requests), burstOf(l.Requests))
	}
	if l.PerIP > 0 {
		out.perIP, out.burst = rate.Limit(l.PerIP), burstOf(l.PerIP)
		out.clients = make(map[string]*rate.Limiter)
	}
	return out
}

// burstOf is one second's worth of requests, at least one.
func burstOf(perSecond float64) int {
	return int(max(1, min(math.Ceil(perSecond), 1<<20)))
}

// wait takes a token for a request from ip at now, or says how long until
// one is available without taking it.
func (l *limiter) wait(ip string, now time.Time) time.Duration {
	var client *rate.Reservation
	if l.perIP > 0 {
		client = l.client(ip).ReserveN(now, 1)
		if d := client.DelayFrom(now); d > 0 {
			client.CancelAt(now)
			return d
		}
	}
	if l.app != nil {
		r := l.app.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > 0 {
			r.CancelAt(now)
			if client != nil {
				client.CancelAt(now) // not served: the client keeps its token
			}
			return d
		}
	}
	return 0
}

func (l *limiter) client(ip string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.clients[ip]; b != nil {
		return b
	}
	if len(l.clients) >= maxClients {
		now := time.Now()
		for k, b := range l.clients {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.clients, k)
			}
		}
		for k := range l.clients { // still full: forget arbitrary ones
			if len(l.clients) < maxClients/2 {
				break
			}
			delete(l.clients, k)
		}
	}
	b := rate.NewLimiter(l.perIP, l.burst)
	l.clients[ip] = b
	return b
}

// clientIP is the address part of a RemoteAddr, without allocating.
func clientIP(remote string) string {
	for i := len(remote) - 1; i >= 0; i-- {
		if remote[i] == ':' {
			h := remote[:i]
			if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
				h = h[1 : len(h)-1]
			}
			return h
		}
	}
	return remote
}
