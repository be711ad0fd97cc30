package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"time"
)

// Apps that declare `protocol: h2c` for their web process are spoken to in
// HTTP/2 without TLS, with prior knowledge: the gateway opens a TCP
// connection and starts HTTP/2 on it at once, without an HTTP/1.1 Upgrade
// round trip. Many requests share one connection as concurrent streams, so
// an app sees a handful of connections however busy the gateway is.
//
// The requests go through a ReverseProxy of their own whose transport is one
// http.Transport per gateway restricted to unencrypted HTTP/2. Everything
// else is what the HTTP/1.1 path does, by the same code: Rewrite sets
// X-Forwarded-For/Host/Proto, ReverseProxy drops hop-by-hop fields both ways
// and passes trailers on, modifyResponse drops the app's X-Request-Id, and
// retryTransport picks the backend of each attempt and tries another one when
// the request never reached an instance (or, for idempotent requests, the
// connection broke before any response byte). The cache and the observe hook
// wrap ServeHTTP, so they see h2c apps as any other.
//
// A protocol switch (a websocket's Upgrade) cannot be carried over HTTP/2
// streams: RFC 8441's extended CONNECT would, but Go's HTTP/2 server turns it
// off unless GODEBUG=http2xconnect=1 and the common websocket libraries do
// not accept it. Upgrades therefore go to an h2c app over HTTP/1.1, as for
// any app; an app that wants websockets must accept HTTP/1.1 on the same
// port (Go: http.Server.Protocols with both HTTP1 and UnencryptedHTTP2). An
// app that speaks h2c alone refuses them and the client gets a 502.

// newH2CTransport returns the transport the gateway uses for apps that speak
// h2c: HTTP/2 over plain TCP with prior knowledge only (an http:// URL is
// never sent as HTTP/1.1), connections made by dial, no proxy from the
// environment, no transparent compression, response heads bounded as the
// HTTP/1.1 forwarder bounds them. A connection carries up to the app's
// SETTINGS_MAX_CONCURRENT_STREAMS requests at once (250 for a Go server);
// more open another connection rather than wait.
func newH2CTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		Protocols:              &protos,
		DisableCompression:     true,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxResponseHead,
		HTTP2: &http.HTTP2Config{
			// A connection whose app stopped answering (a frozen
			// instance) is found and closed instead of holding
			// every stream on it until their clients give up.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
}

// newH2CProxy returns the proxy to apps that speak h2c, dialling with dial
// (the forwarder's; nil = the default dialer).
func (g *Gateway) newH2CProxy(dial dialer, log *slog.Logger) *httputil.ReverseProxy {
	if dial == nil {
		dial = defaultDialer()
	}
	return &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: &retryTransport{g: g, inner: newH2CTransport(dial)},
		// 0, not the HTTP/1.1 proxy's -1: ReverseProxy flushes
		// at once anyway a body of unknown length (a stream, which
		// an h2 response is unless the app finished it first) and an
		// event stream, and a response of known length then goes to
		// the client whole, with its Content-Length, in one write.
		FlushInterval:  0,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ErrorHandler:   g.proxyError,
		ModifyResponse: modifyH2CResponse,
		BufferPool:     copyBuffers{},
	}
}

// modifyH2CResponse is modifyResponse, and makes a response with trailers
// go to an HTTP/1.1 client chunked. An HTTP/2 app may send a Content-Length
// and trailers (a Go server does for a short body); a client on HTTP/1.1
// can only be sent trailers after a chunked body, so the length goes.
func modifyH2CResponse(resp *http.Response) error {
	if len(resp.Trailer) > 0 {
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	return modifyResponse(resp)
}

// speaksH2C reports whether the backends a request goes to (the canary's
// when canary is set and the route has one) speak h2c.
func (rt *route) speaksH2C(canary bool) bool {
	if canary && rt.canary != nil {
		return rt.canaryH2C
	}
	return rt.h2c
}

// forwardH2C proxies r to one of rt's backends (or its canary's) over h2c.
// A retry picks from the table current at the time, like the HTTP/1.1 path;
// were the app redeployed between two attempts with another protocol, the
// retry fails as any attempt to an instance that does not answer.
func (g *Gateway) forwardH2C(w http.ResponseWriter, r *http.Request, rt *route, canary bool) {
	st := &proxyState{app: rt.app, route: rt, canary: canary}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	g.h2c.ServeHTTP(w, r)
}
