package gateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA signs leaf certificates for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pier test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf returns PEM certificate and key for names, valid for validFor.
func (ca *testCA) leaf(t *testing.T, validFor time.Duration, names ...string) (crtPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writePair writes dir/name.crt and dir/name.key.
func (ca *testCA) writePair(t *testing.T, dir, name string, names ...string) {
	t.Helper()
	crt, key := ca.leaf(t, 24*time.Hour, names...)
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), crt, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedName is the first DNS name of the certificate serving host, "" if none.
func servedName(d *CertDir, host string) string {
	c := d.Lookup(host)
	if c == nil {
		return ""
	}
	return c.Leaf.DNSNames[0]
}

func TestCertDirLookup(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.writePair(t, dir, "blog.example.com", "blog.example.com", "www.blog.example.com")
	ca.writePair(t, dir, "wild", "*.shops.example.com")
	ca.writePair(t, dir, "shops.example.com", "shops.example.com")
	os.WriteFile(filepath.Join(dir, "orphan.crt"), []byte("no key"), 0o644) // skipped
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a pair"), 0o644)
	d, err := OpenCertDir(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ host, want string }{
		{"blog.example.com", "blog.example.com"},
		{"WWW.Blog.Example.com.", "blog.example.com"},
		{"a.shops.example.com", "*.shops.example.com"},
		{"shops.example.com", "shops.example.com"}, // the apex has its own pair
		{"a.b.shops.example.com", ""},              // a wildcard covers one label
		{"example.com", ""},
		{"other.example.org", ""},
		{"", ""},
	} {
		if got := servedName(d, tc.host); got != tc.want {
			t.Errorf("Lookup(%q) serves %q, want %q", tc.host, got, tc.want)
		}
	}
	if _, err := OpenCertDir(filepath.Join(dir, "missing"), testLogger(t)); err == nil {
		t.Error("OpenCertDir of a missing directory: no error")
	}
}

func TestCertDirReload(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.writePair(t, dir, "a", "a.example.com")
	d, err := OpenCertDir(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	first := d.Lookup("a.example.com")

	// Nothing changed: nothing reparsed.
	if changed, err := d.Reload(); changed || err != nil {
		t.Fatalf("Reload without changes = %v, %v", changed, err)
	}
	// A new pair is picked up.
	ca.writePair(t, dir, "b", "b.example.com")
	if changed, err := d.Reload(); !changed || err != nil || d.Lookup("b.example.com") == nil {
		t.Fatalf("Reload after adding b = %v, %v; b served: %v", changed, err, d.Lookup("b.example.com") != nil)
	}
	// A rotation half written (a key that does not match yet) keeps
	// the previous certificate.
	crt, _ := ca.leaf(t, time.Hour, "a.example.com", "new.a.example.com")
	os.WriteFile(filepath.Join(dir, "a.crt"), crt, 0o644)
	d.Reload()
	if d.Lookup("a.example.com") != first {
		t.Fatal("a half-written rotation replaced the certificate")
	}
	// The finished rotation replaces it.
	ca.writePair(t, dir, "a", "a.example.com", "new.a.example.com")
	d.Reload()
	if c := d.Lookup("a.example.com"); c == first || c == nil || d.Lookup("new.a.example.com") != c {
		t.Fatal("the rotated certificate is not served")
	}
	// A removed pair stops being served.
	os.Remove(filepath.Join(dir, "b.crt"))
	d.Reload()
	if d.Lookup("b.example.com") != nil {
		t.Fatal("a removed pair is still served")
	}
}

func TestCertDirWatch(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	d, err := OpenCertDir(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	reload := make(chan struct{})
	go func() { defer close(done); d.Watch(ctx, time.Hour, reload) }()
	ca.writePair(t, dir, "c", "c.example.com")
	reload <- struct{}{} // as SIGHUP does
	reload <- struct{}{} // the first reload is over once this one is taken
	cancel()
	<-done
	if d.Lookup("c.example.com") == nil {
		t.Fatal("a reload signal did not load the new pair")
	}
}

func TestCertDirOverlap(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	crt, key := ca.leaf(t, time.Hour, "x.example.com")
	os.WriteFile(filepath.Join(dir, "a-short.crt"), crt, 0o644)
	os.WriteFile(filepath.Join(dir, "a-short.key"), key, 0o600)
	crt, key = ca.leaf(t, 48*time.Hour, "x.example.com", "long")
	os.WriteFile(filepath.Join(dir, "b-long.crt"), crt, 0o644)
	os.WriteFile(filepath.Join(dir, "b-long.key"), key, 0o600)
	d, err := OpenCertDir(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Lookup("x.example.com"); c == nil || len(c.Leaf.DNSNames) != 2 {
		t.Fatal("of two certificates for a name, the one valid longest is not chosen")
	}
}

func TestCertChooser(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	ca.writePair(t, dir, "f", "files.example.com")
	d, err := OpenCertDir(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	acmeCert := &tls.Certificate{}
	var asked []string
	c := &CertChooser{
		Files: d,
		ACME: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			asked = append(asked, h.ServerName)
			return acmeCert, nil
		},
		Allowed: func(name string) bool { return name == "app.example.com" || name == "files.example.com" },
	}
	for _, tc := range []struct {
		name   string
		protos []string
		want   string // "files", "acme" or ""
	}{
		{"files.example.com", nil, "files"}, // files first, even if ACME could
		{"APP.example.com", nil, "acme"},
		{"unknown.example.com", nil, ""},
		{"", nil, ""},
		{"unknown.example.com", []string{"acme-tls/1"}, "acme"}, // a challenge: certmagic decides
	} {
		asked = nil
		got, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.name, SupportedProtos: tc.protos})
		var kind string
		switch {
		case err != nil:
			t.Fatalf("%q: %v", tc.name, err)
		case got == nil:
		case got == acmeCert:
			kind = "acme"
		case got == d.Lookup("files.example.com"):
			kind = "files"
		}
		if kind != tc.want {
			t.Errorf("GetCertificate(%q, %v) from %q, want %q (ACME asked for %v)", tc.name, tc.protos, kind, tc.want, asked)
		}
	}
	// Without ACME, nothing but files.
	c.ACME = nil
	if got, _ := c.GetCertificate(&tls.ClientHelloInfo{ServerName: "app.example.com"}); got != nil {
		t.Error("no ACME: a certificate for a name no file serves")
	}
}

func TestGatewayServes(t *testing.T) {
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{{App: "a", Hosts: []string{"a.example.com", "*.sites.example.com"}, Backends: []string{"127.0.0.1:1"}}})
	for host, want := range map[string]bool{
		"a.example.com": true, "A.Example.com.": true, "x.sites.example.com": true,
		"sites.example.com": false, "b.example.com": false, "127.0.0.1": false, "": false,
	} {
		if got := g.Serves(host); got != want {
			t.Errorf("Serves(%q) = %v, want %v", host, got, want)
		}
	}
}

// tlsGateway serves a gateway over GuardTLS as the engine does and
// returns its address and the CA its certificates come from.
func tlsGateway(t *testing.T, routes ...Route) (addr string, ca *testCA) {
	t.Helper()
	ca = newTestCA(t)
	dir := t.TempDir()
	ca.writePair(t, dir, "app", "app.example.com")
	certs, err := OpenCertDir(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes(routes)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	chooser := &CertChooser{Files: certs}
	tln := GuardTLS(ln, TLSOptions{
		Config: &tls.Config{GetCertificate: chooser.GetCertificate},
		Guard:  GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute},
		Logger: testLogger(t),
	})
	srv := &http.Server{Handler: WithTLSState(g), ConnContext: TLSConnContext, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(tln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), ca
}

// protoBackend answers with what the app sees of the request.
func protoBackend(t *testing.T) string {
	return startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "proto=%s xfp=%s host=%s body=%s", r.Proto, r.Header.Get("X-Forwarded-Proto"), r.Host, body)
	}))
}

func tlsClient(ca *testCA, addr string, h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool},
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	if !h2 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

func TestGuardTLS(t *testing.T) {
	addr, ca := tlsGateway(t, Route{App: "app", Hosts: []string{"app.example.com", "nocert.example.com"}, Backends: []string{protoBackend(t)}})

	for _, h2 := range []bool{true, false} {
		c := tlsClient(ca, addr, h2)
		for i := range 2 { // twice: the second request reuses the connection
			resp, err := c.Post("https://app.example.com/x", "text/plain", strings.NewReader(fmt.Sprint("body", i)))
			if err != nil {
				t.Fatalf("h2=%v: %v", h2, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantMajor := map[bool]int{true: 2, false: 1}[h2]
			want := fmt.Sprintf("proto=HTTP/1.1 xfp=https host=app.example.com body=body%d", i)
			if resp.ProtoMajor != wantMajor || string(body) != want {
				t.Errorf("h2=%v: HTTP/%d %q, want HTTP/%d %q", h2, resp.ProtoMajor, body, wantMajor, want)
			}
		}
	}

	// A host the gateway routes but no certificate serves: a TLS alert,
	// not another domain's certificate.
	_, err := tlsClient(ca, addr, true).Get("https://nocert.example.com/")
	if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("no certificate for the host: err %v, want an unrecognized name alert", err)
	}
	// Without SNI, the same.
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Error("a handshake without SNI succeeded")
	} else if !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("no SNI: %v, want an unrecognized name alert", err)
	}
}

// TestGuardTLSAmbiguous sends a smuggling attempt over TLS with HTTP/1.1:
// the guard inside TLS refuses it as it does on plain connections.
func TestGuardTLSAmbiguous(t *testing.T) {
	addr, ca := tlsGateway(t, Route{App: "app", Hosts: []string{"app.example.com"}, Backends: []string{protoBackend(t)}})
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "app.example.com", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("CL+TE over TLS: %d, want 400", resp.StatusCode)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the connection stayed open after a refused request")
	}
}

// TestGuardTLSHandshakeTimeout: a client that never finishes its handshake
// does not keep others from being served.
func TestGuardTLSSlowHandshake(t *testing.T) {
	addr, ca := tlsGateway(t, Route{App: "app", Hosts: []string{"app.example.com"}, Backends: []string{protoBackend(t)}})
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	resp, err := tlsClient(ca, addr, true).Get("https://app.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestGuardTLSClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := GuardTLS(ln, TLSOptions{Config: &tls.Config{}})
	errc := make(chan error, 1)
	go func() { _, err := tln.Accept(); errc <- err }()
	tln.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}
