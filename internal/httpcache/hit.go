package httpcache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file is the cache's fast hit: a fresh stored response answered
// from bytes prepared when it was stored, for a caller (the gateway's own
// HTTP/1.1 loop) that has the request's head parsed but builds neither an
// *http.Request nor an http.Header for it, as varnish answers hits. It
// serves only what ServeHTTP would answer with a plain write of the stored
// response and X-Cache: HIT, or with the 304 of an If-None-Match naming
// the stored tag; everything else (other conditional and range requests,
// authenticated ones, stale or missing responses, ...) is left to
// ServeHTTP, which the caller then runs as usual.

// wireHead is the head of a response as the gateway's loop writes it from
// a header map (status line, then each field, values trimmed, CR and LF
// turned into spaces, fields with invalid names dropped), without the final
// empty line. It returns nil when hits of the response must be written by
// ServeHTTP: a status without a reason phrase or body (204), no
// Content-Type for a body the writer would sniff one for, or a body not in
// memory (its Content-Length is not bodyLen: on the disk tier).
func wireHead(status int, h http.Header, bodyLen int) []byte {
	text := http.StatusText(status)
	if text == "" || status == http.StatusNoContent || status < 200 {
		return nil
	}
	if cl := h["Content-Length"]; len(cl) != 1 || cl[0] != strconv.Itoa(bodyLen) {
		return nil
	}
	if _, ok := h["Content-Type"]; !ok && bodyLen > 0 {
		return nil
	}
	if _, ok := h["Trailer"]; ok {
		return nil
	}
	return appendWire(nil, status, text, h, false)
}

// wireNotModified is the head of the 304 http.ServeContent answers, from
// a stored 200 with the entity-tag etag, to a request whose If-None-Match
// is that tag: the stored fields without Content-Type, Content-Length,
// Content-Encoding and Last-Modified. nil when etag is not one tag as
// ServeContent reads it.
func wireNotModified(h http.Header, etag string) []byte {
	if !wellFormedETag(etag) {
		return nil
	}
	return appendWire(nil, http.StatusNotModified, "Not Modified", h, true)
}

func appendWire(b []byte, status int, text string, h http.Header, notModified bool) []byte {
	n := len("HTTP/1.1 200 ") + len(text) + 2
	for k, vv := range h {
		for _, v := range vv {
			n += len(k) + len(v) + 4
		}
	}
	b = append(make([]byte, 0, len(b)+n), b...)
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, "\r\n"...)
	for k, vv := range h {
		if !validFieldName(k) {
			continue
		}
		if notModified {
			switch k {
			case "Content-Type", "Content-Length", "Content-Encoding", "Last-Modified":
				continue
			}
		}
		for _, v := range vv {
			b = append(b, k...)
			b = append(b, ": "...)
			for _, c := range []byte(strings.TrimSpace(v)) {
				if c == '\r' || c == '\n' {
					c = ' '
				}
				b = append(b, c)
			}
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// wellFormedETag reports an entity-tag that net/http's If-None-Match
// parsing (scanETag) reads whole: "text" or W/"text".
func wellFormedETag(s string) bool {
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 2 || s[0] != '"' {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0x21 || c >= 0x23 && c <= 0x7E || c >= 0x80:
		case c == '"':
			return i == len(s)-1
		default:
			return false
		}
	}
	return false
}

// validFieldName reports a token (RFC 9110 section 5.6.2), as the gateway's
// writer checks the names it writes.
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// AppendHit answers a GET or HEAD request from the cache when ServeHTTP
// would answer it with a fresh stored response (X-Cache: HIT) written as
// stored. host is the request's Host field, target its origin-form target
// without percent-escapes, fields its other header fields as name, value
// pairs (names in any case, in order).
//
// On a hit it appends to dst the response head: status line, stored
// fields, Age, X-Cache and Date when needed, each ending in CRLF but
// without the final empty line, so the caller adds its own fields (the
// request id, Connection: close). It returns the extended slice, the body
// (shared: never modify it) and the status. ok false means the caller must
// serve the request through ServeHTTP; dst is then returned unchanged.
func (h *appHandler) AppendHit(dst []byte, host, target string, fields []string) (head, body []byte, status int, ok bool) {
	head, body, status, ok, _, _ = h.AppendHitPass(dst, host, target, fields)
	return head, body, status, ok
}

// AppendHitPass is AppendHit that also says what its lookup of the key
// found, for PassingMarked, so that the caller that goes on to Passing
// need not look the key up again: looked reports that it looked it up,
// marked that the key is marked pass (never with ok).
func (h *appHandler) AppendHitPass(dst []byte, host, target string, fields []string) (head, body []byte, status int, ok, looked, marked bool) {
	c := h.c
	path, _, _ := strings.Cut(target, "?")
	if rule := h.rule(path); rule != nil && !rule.Cache {
		return dst, nil, 0, false, false, false
	}
	inm, inms := "", 0
	for i := 0; i+1 < len(fields); i += 2 {
		if len(fields[i]) == len("If-None-Match") && strings.EqualFold(fields[i], "If-None-Match") {
			inm, inms = fields[i+1], inms+1
			continue
		}
		if slowField(fields[i]) {
			return dst, nil, 0, false, false, false
		}
	}
	var kb [256]byte
	obj, _ := c.mem.GetIfPresent(hitKey(kb[:0], h.app, host, target))
	if obj == nil {
		return dst, nil, 0, false, true, h.pathPassed(kb[:0], target)
	}
	if obj.pass {
		return dst, nil, 0, false, true, true
	}
	v := obj.findFields(fields)
	if v == nil || v.wire == nil {
		return dst, nil, 0, false, true, false
	}
	now := c.now()
	age := v.age(now)
	if age >= v.fresh || v.noCache {
		return dst, nil, 0, false, true, false
	}
	wire, body, status := v.wire, v.body, v.status
	switch {
	case inms == 0:
	case inms == 1 && v.wire304 != nil && inm == v.etag:
		// ServeContent's 304: the tag itself matches (weak, lists and
		// other tags are left to it).
		wire, body, status = v.wire304, nil, http.StatusNotModified
	default:
		return dst, nil, 0, false, true, false
	}
	head = append(dst, wire...)
	head = append(head, "Age: "...)
	head = strconv.AppendInt(head, int64(age/time.Second), 10)
	head = append(head, "\r\nX-Cache: HIT\r\n"...)
	if !v.hasDate {
		// The gateway's writer adds one to a response without.
		head = append(head, "Date: "...)
		head = now.UTC().AppendFormat(head, http.TimeFormat)
		head = append(head, "\r\n"...)
	}
	return head, body, status, true, true, false
}

// hitKey is keyFor's key of a plain-HTTP request, built in buf when it
// fits and the host is ASCII (see appendKey).
func hitKey(buf []byte, app, hostport, target string) string {
	return appendKey(buf, app, hostport, target, false)
}

// slowFields are the request fields that make ServeHTTP do more than a
// plain write of a fresh stored response: conditional and range requests
// (http.ServeContent), authenticated ones (never looked up), request
// Cache-Control (no-store bypasses the cache), protocol switches.
var slowFields = []string{
	"Authorization", "Cache-Control", "Range", "If-Range", "If-None-Match", "If-Modified-Since",
	"If-Match", "If-Unmodified-Since", "Upgrade",
}

func slowField(name string) bool {
	if len(name) < 5 {
		return false
	}
	for _, s := range slowFields {
		if len(s) == len(name) && strings.EqualFold(s, name) {
			return true
		}
	}
	return false
}

// findFields is find for a request known by its fields. A response that
// varies on X-Request-Id (which the gateway replaces before ServeHTTP runs)
// is left to ServeHTTP.
func (o *object) findFields(fields []string) *variant {
	if o.vary == nil {
		if len(o.variants) > 0 {
			return o.variants[0]
		}
		return nil
	}
	var buf [256]byte
	vk := appendVaryKey(buf[:0], o.vary, fields)
	if vk == nil {
		return nil
	}
	for _, v := range o.variants {
		if v.varyKey == string(vk) {
			return v
		}
	}
	return nil
}

// appendVaryKey appends to b what varyKey computes from a header map,
// from fields, or returns nil for a Vary the fields cannot answer.
func appendVaryKey(b []byte, names []string, fields []string) []byte {
	for i, n := range names {
		if n == "X-Request-Id" {
			return nil
		}
		if i > 0 {
			b = append(b, 0)
		}
		j := 0
		for f := 0; f+1 < len(fields); f += 2 {
			if len(fields[f]) != len(n) || !strings.EqualFold(fields[f], n) {
				continue
			}
			if j > 0 {
				b = append(b, ',')
			}
			j++
			for v := fields[f+1]; v != ""; {
				var item string
				item, v = nextItem(v)
				b = append(b, strings.TrimSpace(item)...)
				if v != "" {
					b = append(b, ',')
				}
			}
		}
	}
	if b == nil {
		b = []byte{} // an empty key is a key
	}
	return b
}
