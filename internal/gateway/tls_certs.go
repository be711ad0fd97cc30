package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CertDir serves certificates from files in a directory: each pair
// <name>.crt (the certificate chain, PEM, leaf first) and <name>.key (its
// private key, PEM). The names a certificate serves are those of its
// leaf's DNS SANs, wildcards ("*.example.com") included, whatever the
// file is called; a leaf without DNS SANs serves <name>. Lookup costs two
// map probes whatever the number of certificates: the exact name, then the
// wildcard of its parent ("a.example.com" -> "*.example.com").
//
// Reload re-reads the directory; only pairs whose files changed are parsed
// again, and a pair that fails to load (a rotation half written) keeps its
// previous certificate until it loads. Lookups never wait for a reload.
type CertDir struct {
	dir string
	log *slog.Logger

	idx atomic.Pointer[certIndex]

	mu     sync.Mutex           // serializes Reload; guards loaded
	loaded map[string]*certFile // by pair name, what the index was built from
}

// certFile is one loaded pair.
type certFile struct {
	crt, key fileStamp
	cert     *tls.Certificate
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  time.Time
	size int64
}

// certIndex is an immutable name -> certificate map.
type certIndex struct {
	exact map[string]*tls.Certificate // "a.example.com"
	wild  map[string]*tls.Certificate // "example.com" for "*.example.com"
}

// OpenCertDir loads the certificates in dir. A pair that fails to load is
// logged and skipped; a directory that cannot be read is an error.
func OpenCertDir(dir string, log *slog.Logger) (*CertDir, error) {
	if log == nil {
		log = slog.Default()
	}
	d := &CertDir{dir: dir, log: log, loaded: make(map[string]*certFile)}
	d.idx.Store(&certIndex{})
	if _, err := d.Reload(); err != nil {
		return nil, err
	}
	return d, nil
}

// Reload re-reads the directory and reports whether the set of
// certificates changed. Errors of single pairs are logged, not returned.
func (d *CertDir) Reload() (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return false, fmt.Errorf("tls certificates: %w", err)
	}
	next := make(map[string]*certFile, len(d.loaded))
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".crt")
		if !ok || e.IsDir() || name == "" {
			continue
		}
		prev := d.loaded[name]
		f, err := d.load(name, prev)
		if err != nil {
			if prev != nil {
				d.log.Warn("tls: certificate pair does not load; the previous one stays", "pair", name, "err", err)
				next[name] = prev
			} else {
				d.log.Warn("tls: certificate pair skipped", "pair", name, "err", err)
			}
			continue
		}
		if f != prev {
			changed = true
		}
		next[name] = f
	}
	if len(next) != len(d.loaded) {
		changed = true
	}
	if !changed {
		return false, nil
	}
	d.loaded = next
	d.idx.Store(buildCertIndex(next))
	return true, nil
}

// load returns the pair name, prev itself when its files did not change.
func (d *CertDir) load(name string, prev *certFile) (*certFile, error) {
	crtPath := filepath.Join(d.dir, name+".crt")
	keyPath := filepath.Join(d.dir, name+".key")
	crt, err := stamp(crtPath)
	if err != nil {
		return nil, err
	}
	key, err := stamp(keyPath)
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.crt == crt && prev.key == key {
		return prev, nil
	}
	cert, err := tls.LoadX509KeyPair(crtPath, keyPath)
	if err != nil {
		return nil, err
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
	}
	if now := time.Now(); now.After(cert.Leaf.NotAfter) {
		d.log.Warn("tls: certificate expired", "pair", name, "not_after", cert.Leaf.NotAfter)
	}
	return &certFile{crt: crt, key: key, cert: &cert}, nil
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// buildCertIndex indexes pairs by the names they serve. When two
// certificates serve one name, the one valid longest wins; ties go to the
// pair name sorting first, so the choice does not depend on map order.
func buildCertIndex(files map[string]*certFile) *certIndex {
	idx := &certIndex{exact: make(map[string]*tls.Certificate), wild: make(map[string]*tls.Certificate)}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	put := func(m map[string]*tls.Certificate, key string, c *tls.Certificate) {
		if old, ok := m[key]; !ok || c.Leaf.NotAfter.After(old.Leaf.NotAfter) {
			m[key] = c
		}
	}
	for _, n := range names {
		c := files[n].cert
		dns := c.Leaf.DNSNames
		if len(dns) == 0 {
			dns = []string{n}
		}
		for _, h := range dns {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
			if parent, ok := strings.CutPrefix(h, "*."); ok {
				put(idx.wild, parent, c)
			} else {
				put(idx.exact, h, c)
			}
		}
	}
	return idx
}

// lookup finds the certificate for a server name, nil when none serves it.
func (x *certIndex) lookup(name string) *tls.Certificate {
	if c := x.exact[name]; c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return x.wild[name[i+1:]]
	}
	return nil
}

// Lookup returns the certificate serving name (a host name, any case, a
// trailing dot allowed), or nil.
func (d *CertDir) Lookup(name string) *tls.Certificate {
	return d.idx.Load().lookup(normalizeServerName(name))
}

// Len is the number of names served exactly plus wildcard names.
func (d *CertDir) Len() int {
	x := d.idx.Load()
	return len(x.exact) + len(x.wild)
}

// normalizeServerName lowercases name and drops a trailing dot.
func normalizeServerName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// Watch reloads the directory every interval and whenever reload receives,
// until ctx ends. A reload that fails (the directory went away) keeps the
// certificates loaded so far.
func (d *CertDir) Watch(ctx context.Context, interval time.Duration, reload <-chan struct{}) {
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("tls: certificate watcher panicked", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var asked bool
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-reload:
			asked = true
		}
		changed, err := d.Reload()
		switch {
		case err != nil:
			d.log.Warn("tls: reload certificates", "err", err)
		case changed || asked:
			d.log.Info("tls: certificates loaded", "dir", d.dir, "names", d.Len())
		}
	}
}

// CertChooser picks the certificate of a TLS handshake: from files first,
// then from ACME for names the gateway serves. A name nothing serves gets
// no certificate, which crypto/tls answers with an unrecognized_name alert:
// a client is never handed another domain's certificate.
type CertChooser struct {
	// Files, when set, are looked up first.
	Files *CertDir

	// ACME, when set, gets names the files do not serve and Allowed
	// accepts (it obtains or renews a certificate on demand), and every
	// acme-tls/1 challenge handshake.
	ACME func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// Allowed says whether ACME may get a certificate for name. If nil,
	// no name is.
	Allowed func(name string) bool
}

// GetCertificate is a tls.Config.GetCertificate.
func (c *CertChooser) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.ACME != nil && slices.Contains(hello.SupportedProtos, "acme-tls/1") {
		return c.ACME(hello)
	}
	name := normalizeServerName(hello.ServerName)
	if name == "" {
		return nil, nil // no SNI: no way to choose
	}
	if c.Files != nil {
		if cert := c.Files.Lookup(name); cert != nil {
			return cert, nil
		}
	}
	if c.ACME != nil && c.Allowed != nil && c.Allowed(name) {
		return c.ACME(hello)
	}
	return nil, nil
}

// Serves reports whether the current routing table has an app for host
// (exact or wildcard). ACME's on-demand decision uses it: pier asks for a
// certificate only for a name some app is served at.
func (g *Gateway) Serves(host string) bool {
	host = normalizeServerName(host)
	if host == "" || net.ParseIP(host) != nil {
		return false
	}
	return g.table.Load().lookup(host) != nil
}
