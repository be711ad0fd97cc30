package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"pier/internal/gateway"
)

// certReloadInterval is how often the certificate directory is checked for
// changed files (a stat per file; SIGHUP reloads at once).
const certReloadInterval = 10 * time.Second

// tlsGateway is the gateway's HTTPS side: the certificates (files and
// ACME), the TLS listener with the request guard inside TLS for HTTP/1.1,
// and its http.Server.
type tlsGateway struct {
	log     *slog.Logger
	files   *gateway.CertDir      // nil = no certificate files
	magic   *certmagic.Config     // nil = no ACME
	issuer  *certmagic.ACMEIssuer // with magic
	cache   *certmagic.Cache      // with magic
	chooser *gateway.CertChooser
	srv     *http.Server
	ln      net.Listener // GuardTLS
}

// checkTLS reports flags that make no sense together.
func (c *Config) checkTLS() error {
	switch {
	case c.HTTPS == "" && (c.TLSDir != "" || c.ACMEEmail != ""):
		return errors.New("--tls-dir and --acme-email need --https ADDR")
	case c.HTTPS != "" && c.TLSDir == "" && c.ACMEEmail == "":
		return errors.New("--https needs certificates: --tls-dir DIR (<host>.crt/<host>.key pairs) and/or --acme-email EMAIL")
	}
	return nil
}

// newTLSGateway loads the certificates and sets up ACME, ready to serve
// gw on ln. plain is the plain-HTTP server, whose bounds it copies.
func newTLSGateway(ctx context.Context, cfg Config, gw *gateway.Gateway, ln net.Listener, plain *http.Server) (*tlsGateway, error) {
	log := cfg.Logger.With("part", "tls")
	t := &tlsGateway{log: log, chooser: &gateway.CertChooser{}}
	if cfg.TLSDir != "" {
		files, err := gateway.OpenCertDir(cfg.TLSDir, log)
		if err != nil {
			return nil, err
		}
		t.files, t.chooser.Files = files, files
		log.Info("tls: certificates loaded", "dir", cfg.TLSDir, "names", files.Len())
	}
	tlsCfg := &tls.Config{GetCertificate: t.chooser.GetCertificate}
	if cfg.ACMEEmail != "" {
		t.startACME(cfg, gw)
		t.chooser.ACME = t.magic.GetCertificate
		t.chooser.Allowed = func(name string) bool { return acmeDecision(gw, name) == nil }
		tlsCfg.NextProtos = []string{"acme-tls/1"}
	}
	timeout := gateway.DefaultHandshakeTimeout
	if t.magic != nil {
		timeout = 30 * time.Second // a first visit may wait for a certificate to be issued
	}
	t.ln = gateway.GuardTLS(ln, gateway.TLSOptions{
		Config:           tlsCfg,
		Guard:            gateway.GuardOptions{BodyTimeout: gateway.DefaultBodyTimeout, SendTimeout: gateway.DefaultSendTimeout},
		HandshakeTimeout: timeout,
		Logger:           log,
	})
	t.srv = &http.Server{
		Handler:           gateway.WithTLSState(gw),
		ConnContext:       gateway.TLSConnContext,
		ReadHeaderTimeout: plain.ReadHeaderTimeout,
		IdleTimeout:       plain.IdleTimeout,
		MaxHeaderBytes:    plain.MaxHeaderBytes,
		ErrorLog:          plain.ErrorLog,
		// HTTP/2 connections do not go through the guard: the send
		// timeout is the HTTP/2 server's own.
		HTTP2: &http.HTTP2Config{WriteByteTimeout: gateway.DefaultSendTimeout},
	}
	if t.files != nil {
		go t.watch(ctx)
	}
	return t, nil
}

// watch reloads the certificate files when they change and on SIGHUP.
func (t *tlsGateway) watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	t.files.Watch(ctx, certReloadInterval, reload)
}

// startACME sets up certmagic for on-demand certificates of the hosts the
// gateway serves, stored under <home>/acme.
func (t *tlsGateway) startACME(cfg Config, gw *gateway.Gateway) {
	zl := zap.New(slogCore{h: t.log.With("acme", true).Handler()})
	t.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return t.magic, nil },
		Logger:           zl,
	})
	t.magic = certmagic.New(t.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: filepath.Join(cfg.Home, "acme")},
		OnDemand: &certmagic.OnDemandConfig{
			DecisionFunc: func(_ context.Context, name string) error { return acmeDecision(gw, name) },
		},
		Logger: zl,
	})
	ca := cfg.ACMECA
	if ca == "" {
		ca = certmagic.LetsEncryptProductionCA
	}
	t.issuer = certmagic.NewACMEIssuer(t.magic, certmagic.ACMEIssuer{
		CA:     ca,
		Email:  cfg.ACMEEmail,
		Agreed: true,
		Logger: zl,
	})
	t.magic.Issuers = []certmagic.Issuer{t.issuer}
	t.log.Info("tls: ACME on demand for the hosts apps are served at", "ca", ca, "email", cfg.ACMEEmail)
}

// acmeDecision allows an ACME certificate for name only when an app is
// served at it and a public CA could issue one for it (not localhost, an
// IP address or a name without a dot).
func acmeDecision(gw interface{ Serves(string) bool }, name string) error {
	if !certmagic.SubjectQualifiesForPublicCert(name) || !strings.Contains(strings.Trim(name, "."), ".") {
		return fmt.Errorf("tls: %q cannot have a public certificate", name)
	}
	if !gw.Serves(name) {
		return fmt.Errorf("tls: no app is served at %q", name)
	}
	return nil
}

// plainHandler is the plain-HTTP gateway handler: with ACME it answers
// HTTP-01 challenges first.
func (t *tlsGateway) plainHandler(h http.Handler) http.Handler {
	if t == nil || t.issuer == nil {
		return h
	}
	return t.issuer.HTTPChallengeHandler(h)
}

// wrapperPrefix is the path prefix plainHandler takes ahead of the
// gateway: certmagic's test for an HTTP-01 challenge (LooksLikeHTTPChallenge).
func (t *tlsGateway) wrapperPrefix() string {
	if t == nil || t.issuer == nil {
		return ""
	}
	return "/.well-known/acme-challenge"
}

// serve serves HTTPS until the server is shut down.
func (t *tlsGateway) serve() error {
	t.log.Info("gateway serves HTTPS (HTTP/2 and HTTP/1.1)", "addr", t.ln.Addr().String())
	return serve(t.srv, t.ln)
}

// stop ends certmagic's maintenance; the server is shut down with the
// others.
func (t *tlsGateway) stop() {
	if t != nil && t.cache != nil {
		t.cache.Stop()
	}
}

// slogCore sends certmagic's zap logs to slog.
type slogCore struct {
	h     slog.Handler
	attrs []slog.Attr
}

var _ zapcore.Core = slogCore{}

func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), zapToSlog(l))
}

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	return slogCore{h: c.h, attrs: append(c.attrs[:len(c.attrs):len(c.attrs)], fieldAttrs(fields)...)}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, zapToSlog(e.Level), e.Message, 0)
	r.AddAttrs(c.attrs...)
	r.AddAttrs(fieldAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (slogCore) Sync() error { return nil }

func fieldAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}
