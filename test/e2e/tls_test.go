package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoApp answers with what it received: the protocol it was spoken to
// in, X-Forwarded-Proto and Host.
var echoApp = map[string]string{
	"pier.yaml": "name: tlsecho\nprocesses:\n  web: python3 app.py\ndomains: [nocert.example.com, later.example.com]\n",
	"app.py": `import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("proto=%s xfp=%s host=%s" % (self.request_version, self.headers.get("X-Forwarded-Proto"), self.headers.get("Host"))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
}

// certAuthority signs the test's certificates.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCertAuthority(t *testing.T) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pier e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &certAuthority{cert: cert, key: key, pool: pool}
}

// writePair writes dir/<file>.crt and .key for names.
func (ca *certAuthority) writePair(t *testing.T, dir, file string, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	// The key first: the pair is complete when the certificate appears.
	os.WriteFile(filepath.Join(dir, file+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	os.WriteFile(filepath.Join(dir, file+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// httpsClient dials addr whatever the URL's host, with SNI for the URL's
// host, over HTTP/2 (h2) or HTTP/1.1 only.
func httpsClient(ca *certAuthority, addr string, h2 bool) *http.Client {
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
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// TestTLS serves a deployed app over --https with certificates from a
// directory: HTTP/2 and HTTP/1.1 clients reach it with SNI, the app sees
// X-Forwarded-Proto https, a host without a certificate gets a TLS alert,
// and a certificate added later is served after SIGHUP.
func TestTLS(t *testing.T) {
	ca := newCertAuthority(t)
	certs := t.TempDir()
	ca.writePair(t, certs, "tlsecho.localhost", "tlsecho.localhost")
	ca.writePair(t, certs, "wild", "*.example.org") // not this app's
	e := startEngineTLS(t, certs)
	httpsAddr := e.https
	e.must(writeApp(t, echoApp), "deploy")

	get := func(c *http.Client, host string) (*http.Response, string, error) {
		resp, err := c.Get("https://" + host + "/")
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body), nil
	}
	for _, h2 := range []bool{true, false} {
		resp, body, err := get(httpsClient(ca, httpsAddr, h2), "tlsecho.localhost")
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		want := map[bool]int{true: 2, false: 1}[h2]
		if resp.StatusCode != 200 || resp.ProtoMajor != want || body != "proto=HTTP/1.1 xfp=https host=tlsecho.localhost" {
			t.Errorf("h2=%v: %d over HTTP/%d: %q, want 200 over HTTP/%d with xfp=https", h2, resp.StatusCode, resp.ProtoMajor, body, want)
		}
	}
	// Plain HTTP still works, and says so to the app.
	if code, body := e.get("tlsecho", "/"); code != 200 || !strings.Contains(body, "xfp=http ") {
		t.Errorf("plain HTTP: %d %q", code, body)
	}

	// A host the app is served at, without a certificate: a clear TLS
	// alert, never another domain's certificate.
	_, _, err := get(httpsClient(ca, httpsAddr, true), "nocert.example.com")
	if err == nil || !strings.Contains(err.Error(), "unrecognized name") {
		t.Errorf("host without a certificate: %v, want a TLS unrecognized_name alert", err)
	}

	// A certificate added later is served after SIGHUP (or within the
	// reload interval).
	ca.writePair(t, certs, "later", "later.example.com")
	e.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 30*time.Second, "the new certificate is served", func() bool {
		resp, body, err := get(httpsClient(ca, httpsAddr, true), "later.example.com")
		return err == nil && resp.StatusCode == 200 && strings.Contains(body, "xfp=https")
	})
}
