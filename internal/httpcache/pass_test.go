package httpcache

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestPassKey: the lookup key Passing builds on the stack is keyOf's.
func TestPassKey(t *testing.T) {
	long := "/" + strings.Repeat("x", 300)
	cases := []struct {
		host, uri string
		tls       bool
	}{
		{"app.test", "/hello", false},
		{"App.Test:8080", "/hello?a=1", false},
		{"APP.TEST", "/", true},
		{"[::1]:8080", "/v6", false},
		{"[::1]", "/v6", false},
		{"bücher.test", "/unicode", false},
		{"app.test", long, false},
		{"", "/nohost", false},
		{"app.test", "", false}, // no RequestURI: the URL's
	}
	for _, c := range cases {
		r := &http.Request{Host: c.host, RequestURI: c.uri, URL: &url.URL{Path: "/from-url", RawQuery: "q=1"}}
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		want, _, _ := keyOf("app", r)
		var buf [256]byte
		if got := passKey(buf[:0], "app", r); got != want {
			t.Errorf("host %q uri %q tls %v: passKey %q, keyOf %q", c.host, c.uri, c.tls, got, want)
		}
	}
}

func FuzzPassKey(f *testing.F) {
	f.Add("app", "App.Test:80", "/x?y", false)
	f.Add("a", "[::1]:1", "/", true)
	f.Fuzz(func(t *testing.T, app, host, uri string, secure bool) {
		r := &http.Request{Host: host, RequestURI: uri, URL: &url.URL{Path: "/p"}}
		if secure {
			r.TLS = &tls.ConnectionState{}
		}
		want, _, _ := keyOf(app, r)
		var buf [256]byte
		if got := passKey(buf[:0], app, r); got != want {
			t.Fatalf("passKey %q, keyOf %q", got, want)
		}
	})
}
