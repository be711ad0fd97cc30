package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// TLSOptions configures GuardTLS.
type TLSOptions struct {
	// Config chooses the certificates (GetCertificate or Certificates).
	// GuardTLS works on a clone whose NextProtos offer h2 and http/1.1
	// first, then whatever Config.NextProtos lists (acme-tls/1 for ACME's
	// TLS-ALPN challenge). It must not be nil.
	Config *tls.Config

	// Guard applies to HTTP/1.1 connections, inside TLS.
	Guard GuardOptions

	// HandshakeTimeout bounds a client's TLS handshake. If 0,
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// Logger gets failed handshakes at Debug. If nil, slog.Default().
	Logger *slog.Logger
}

// DefaultHandshakeTimeout bounds a TLS handshake when
// TLSOptions.HandshakeTimeout is 0.
const DefaultHandshakeTimeout = 10 * time.Second

// maxHandshakes bounds the TLS handshakes in progress at once; more
// clients wait in the kernel's accept queue.
const maxHandshakes = 1024

// GuardTLS wraps a TCP listener of the gateway in TLS. It makes each TLS
// handshake itself, before http.Server sees the connection, so that the
// request guard (see Guard) can sit inside TLS for HTTP/1.1 only:
//
//   - a client that negotiated h2 (ALPN) gets its *tls.Conn as is, which
//     http.Server hands to its HTTP/2 server: HTTP/2 framing has no
//     Content-Length/Transfer-Encoding ambiguity to guard against;
//   - any other client (http/1.1 or no ALPN) gets the guard around its
//     *tls.Conn, as plain connections do. http.Server then does not know
//     the connection is TLS: serve such a listener with TLSConnContext and
//     a handler wrapped in WithTLSState, which give requests their r.TLS.
//
// A handshake for acme-tls/1 (ACME's TLS-ALPN-01 challenge, answered by
// the certificate callback) ends there: the connection is closed.
//
// Handshakes run on their own goroutines, at most maxHandshakes at once,
// each bounded by HandshakeTimeout, so a slow client never holds up
// Accept.
func GuardTLS(ln net.Listener, opts TLSOptions) net.Listener {
	cfg := opts.Config.Clone()
	protos := []string{"h2", "http/1.1"}
	for _, p := range cfg.NextProtos {
		if !slices.Contains(protos, p) {
			protos = append(protos, p)
		}
	}
	cfg.NextProtos = protos
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12 // HTTP/2 requires it
	}
	l := &tlsListener{
		Listener: ln,
		cfg:      cfg,
		guard:    opts.Guard,
		timeout:  opts.HandshakeTimeout,
		log:      opts.Logger,
		conns:    make(chan net.Conn),
		done:     make(chan struct{}),
		slots:    make(chan struct{}, maxHandshakes),
	}
	if l.timeout <= 0 {
		l.timeout = DefaultHandshakeTimeout
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	go l.acceptLoop()
	return l
}

type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	guard   GuardOptions
	timeout time.Duration
	log     *slog.Logger

	conns chan net.Conn // handshaken connections for Accept
	slots chan struct{} // one per handshake in progress
	done  chan struct{} // closed by Close or a failed Accept
	once  sync.Once     // closes done
	err   error         // why done was closed; written before close(done)
	errMu sync.Mutex    // guards err
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.errMu.Lock()
		defer l.errMu.Unlock()
		return nil, l.err
	}
}

func (l *tlsListener) Close() error {
	err := l.Listener.Close()
	l.stop(net.ErrClosed)
	return err
}

func (l *tlsListener) stop(err error) {
	l.once.Do(func() {
		l.errMu.Lock()
		l.err = err
		l.errMu.Unlock()
		close(l.done)
	})
}

// acceptLoop accepts TCP connections and starts their handshakes. It ends
// when the listener fails for good; temporary errors (out of file
// descriptors) are retried with a backoff, as http.Server does.
func (l *tlsListener) acceptLoop() {
	var backoff time.Duration
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.log.Warn("gateway: tls accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-l.done:
					return
				}
			}
			l.stop(err)
			return
		}
		backoff = 0
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			raw.Close()
			return
		}
		go l.handshake(raw)
	}
}

// isTemporary reports an accept error worth retrying (EMFILE, ENFILE,
// ECONNABORTED): the net package still marks those Temporary.
func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// handshake makes raw's TLS handshake and hands the connection to Accept.
func (l *tlsListener) handshake(raw net.Conn) {
	defer func() { <-l.slots }()
	tc := tls.Server(raw, l.cfg)
	raw.SetDeadline(time.Now().Add(l.timeout))
	// The context bounds the certificate callback too (an ACME issuance
	// on a first visit), which the connection's deadline does not.
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.log.Debug("gateway: tls handshake failed", "client", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	var c net.Conn
	switch tc.ConnectionState().NegotiatedProtocol {
	case "h2":
		c = tc
	case "acme-tls/1":
		tc.Close()
		return
	default:
		c = &guardConn{Conn: tc, bodyTimeout: l.guard.BodyTimeout, sendTimeout: l.guard.SendTimeout}
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// tlsStateKey is the context key of a guarded TLS connection's state.
type tlsStateKey struct{}

// TLSConnContext is the http.Server ConnContext for a GuardTLS listener:
// it keeps the TLS state of an HTTP/1.1 connection, which http.Server
// cannot see through the guard, for WithTLSState.
func TLSConnContext(ctx context.Context, c net.Conn) context.Context {
	if g, ok := c.(*guardConn); ok {
		if tc, ok := g.Conn.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return context.WithValue(ctx, tlsStateKey{}, &st)
		}
	}
	return ctx
}

// WithTLSState gives the requests of guarded HTTP/1.1 TLS connections
// their r.TLS (saved by TLSConnContext), which the gateway uses for
// X-Forwarded-Proto: https. HTTP/2 requests already have it.
func WithTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r2 := new(http.Request)
				*r2 = *r // handlers must not change the server's request
				r2.TLS = st
				r = r2
			}
		}
		h.ServeHTTP(w, r)
	})
}
