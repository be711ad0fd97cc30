package httpcache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// directives is a parsed Cache-Control header (RFC 9111 section 5.2). A
// directive with a value the cache cannot read is treated as absent, except
// that qualified no-cache and private ("private=Set-Cookie") count as their
// unqualified, stricter forms.
type directives struct {
	noStore, noCache, private, public    bool
	mustRevalidate, proxyRevalidate      bool
	maxAge, sMaxAge                      time.Duration
	hasMaxAge, hasSMaxAge                bool
	staleWhileRevalidate, staleIfError   time.Duration
	hasStaleWhileRevalidate, hasStaleErr bool
}

// parseDirectives reads every Cache-Control field value of h.
func parseDirectives(h http.Header) directives {
	var d directives
	for _, v := range h["Cache-Control"] {
		for v != "" {
			var item string
			item, v = nextItem(v)
			name, val, _ := strings.Cut(item, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch name {
			case "no-store":
				d.noStore = true
			case "no-cache":
				d.noCache = true
			case "private":
				d.private = true
			case "public":
				d.public = true
			case "must-revalidate":
				d.mustRevalidate = true
			case "proxy-revalidate":
				d.proxyRevalidate = true
			case "max-age":
				d.maxAge, d.hasMaxAge = seconds(val)
			case "s-maxage":
				d.sMaxAge, d.hasSMaxAge = seconds(val)
			case "stale-while-revalidate":
				d.staleWhileRevalidate, d.hasStaleWhileRevalidate = seconds(val)
			case "stale-if-error":
				d.staleIfError, d.hasStaleErr = seconds(val)
			}
		}
	}
	return d
}

// nextItem splits the first comma-separated item off a header value,
// keeping commas inside quoted strings.
func nextItem(v string) (item, rest string) {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '\\':
			if quoted {
				i++
			}
		case ',':
			if !quoted {
				return v[:i], v[i+1:]
			}
		}
	}
	return v, ""
}

// maxSeconds caps delta-seconds, as RFC 9111 section 1.2.2 allows (2^31).
const maxSeconds = 1 << 31

// seconds parses delta-seconds.
func seconds(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		// An overflowing number is still a valid, very long time.
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && s[0] != '-' {
			return maxSeconds * time.Second, true
		}
		return 0, false
	}
	return time.Duration(min(n, maxSeconds)) * time.Second, true
}

// storableStatus lists the final status codes the cache stores when the
// response carries explicit freshness (or a manifest rule gives it a TTL).
// Partial content (206) and 304 are never stored as a response.
func storableStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 302, 307, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// plan is the decision to store one response, and for how long.
type plan struct {
	store          bool
	reason         string        // why not, for debug logs
	fresh          time.Duration // freshness lifetime
	swr, sie       time.Duration // stale-while-revalidate, stale-if-error windows
	mustRevalidate bool          // never serve it stale
	noCache        bool          // revalidate before every use
}

// decide applies RFC 9111 section 3 (storing responses in a shared cache)
// to a response, with a manifest rule on top: a rule's TTL replaces the
// freshness the response states (or lacks). Nothing overrides no-store,
// private, Vary: *, or Set-Cookie / an authenticated request without
// public: those are never stored.
func decide(req *http.Request, status int, h http.Header, rule *Rule, now time.Time) plan {
	if !storableStatus(status) {
		return plan{reason: "status " + strconv.Itoa(status)}
	}
	d := parseDirectives(h)
	switch {
	case d.noStore:
		return plan{reason: "no-store"}
	case d.private:
		return plan{reason: "private"}
	case len(h["Set-Cookie"]) > 0 && !d.public:
		return plan{reason: "Set-Cookie without public"}
	case req.Header.Get("Authorization") != "" && !(d.public || d.hasSMaxAge || d.mustRevalidate):
		return plan{reason: "authenticated request"}
	case varyStar(h):
		return plan{reason: "Vary: *"}
	case len(h["Trailer"]) > 0:
		return plan{reason: "trailers"}
	case h.Get("Content-Range") != "":
		return plan{reason: "partial content"}
	}
	p := plan{
		store:          true,
		swr:            d.staleWhileRevalidate,
		sie:            d.staleIfError,
		mustRevalidate: d.mustRevalidate || d.proxyRevalidate,
		noCache:        d.noCache,
	}
	// Stale responses are only ever served within the app's explicit
	// stale-while-revalidate / stale-if-error windows, and never when it
	// says must-revalidate or proxy-revalidate.
	switch {
	case rule != nil:
		p.fresh, p.noCache, p.mustRevalidate = rule.TTL, false, d.mustRevalidate || d.proxyRevalidate
	case d.hasSMaxAge:
		p.fresh = d.sMaxAge
	case d.hasMaxAge:
		p.fresh = d.maxAge
	case h.Get("Expires") != "":
		exp, err := http.ParseTime(h.Get("Expires"))
		if err != nil {
			p.fresh = 0 // an invalid Expires means already expired
		} else {
			date, err := http.ParseTime(h.Get("Date"))
			if err != nil {
				date = now
			}
			p.fresh = max(0, exp.Sub(date))
		}
	case d.noCache:
		// Stored only to be revalidated on every use.
	default:
		return plan{reason: "no explicit freshness"}
	}
	if p.fresh == 0 && h.Get("ETag") == "" && h.Get("Last-Modified") == "" && p.swr == 0 && p.sie == 0 {
		return plan{reason: "expired on arrival and no validator"}
	}
	return p
}

func varyStar(h http.Header) bool {
	for _, v := range h["Vary"] {
		for v != "" {
			var item string
			item, v = nextItem(v)
			if strings.TrimSpace(item) == "*" {
				return true
			}
		}
	}
	return false
}

// varyNames returns the canonical request header names a response varies
// on, or nil.
func varyNames(h http.Header) []string {
	var names []string
	for _, v := range h["Vary"] {
		for v != "" {
			var item string
			item, v = nextItem(v)
			if n := strings.TrimSpace(item); n != "" {
				names = append(names, http.CanonicalHeaderKey(n))
			}
		}
	}
	return names
}

// initialAge computes corrected_initial_age (RFC 9111 section 4.2.3) of a
// response requested at reqTime and received at respTime.
func initialAge(h http.Header, reqTime, respTime time.Time) time.Duration {
	var apparent time.Duration
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		apparent = max(0, respTime.Sub(date))
	}
	ageValue, _ := seconds(strings.TrimSpace(h.Get("Age")))
	corrected := ageValue + respTime.Sub(reqTime)
	return max(apparent, corrected)
}
