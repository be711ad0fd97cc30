package engine

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"pier/internal/gateway"
)

type servesSet map[string]bool

func (s servesSet) Serves(h string) bool { return s[h] }

func TestACMEDecision(t *testing.T) {
	gw := servesSet{"blog.example.com": true, "localhost": true, "127.0.0.1": true, "intranet": true}
	for name, ok := range map[string]bool{
		"blog.example.com":  true,
		"other.example.com": false, // no app is served there
		"localhost":         false, // served, but no public CA issues for it
		"127.0.0.1":         false,
		"intranet":          false,
	} {
		if err := acmeDecision(gw, name); (err == nil) != ok {
			t.Errorf("acmeDecision(%q) = %v, want allowed %v", name, err, ok)
		}
	}
}

func TestCheckTLS(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // part of the error, "" = none
	}{
		{Config{}, ""},
		{Config{HTTPS: ":8443", TLSDir: "/certs"}, ""},
		{Config{HTTPS: ":8443", ACMEEmail: "ops@example.com"}, ""},
		{Config{HTTPS: ":8443"}, "--https needs certificates"},
		{Config{TLSDir: "/certs"}, "need --https"},
	} {
		err := tc.cfg.checkTLS()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkTLS(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestACMEWiring sets ACME up against a stand-in CA on 127.0.0.1 and checks
// that a handshake for a host no app is served at never reaches it: no
// certificate, no ACME traffic.
func TestACMEWiring(t *testing.T) {
	var hits atomic.Int64
	ca := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "not a CA", http.StatusServiceUnavailable)
	}))
	defer ca.Close()

	gw := gateway.New(gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	gw.SetRoutes([]gateway.Route{{App: "blog", Hosts: []string{"blog.example.com"}, Backends: []string{"127.0.0.1:1"}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := Config{Home: t.TempDir(), HTTPS: ln.Addr().String(), ACMEEmail: "ops@example.com", ACMECA: ca.URL + "/directory",
		Logger: slog.New(slog.DiscardHandler)}
	tg, err := newTLSGateway(ctx, cfg, gw, ln, &http.Server{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.stop()
	if tg.chooser.ACME == nil || tg.issuer == nil {
		t.Fatal("ACME is not wired")
	}
	if h := tg.plainHandler(http.NotFoundHandler()); h == nil {
		t.Fatal("no HTTP-01 challenge handler")
	}

	for _, name := range []string{"unknown.example.com", "localhost", ""} {
		hello := &tls.ClientHelloInfo{ServerName: name}
		if cert, err := tg.chooser.GetCertificate(hello); cert != nil || err != nil {
			t.Errorf("%q: got a certificate or an error (%v), want none (unrecognized_name)", name, err)
		}
	}
	// certmagic's own on-demand check refuses it too.
	hello := &tls.ClientHelloInfo{ServerName: "unknown.example.com"}
	if _, err := tg.magic.GetCertificateWithContext(ctx, hello); err == nil {
		t.Error("certmagic issued for a host no app is served at")
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the CA was asked %d times for hosts no app is served at", n)
	}
	if !tg.chooser.Allowed("blog.example.com") {
		t.Error("ACME is not allowed for a host an app is served at")
	}
}
