// hello-h2c is a pier app that speaks only h2c: HTTP/2 without TLS, with
// prior knowledge, as gRPC-style and HTTP/2-only servers do. It refuses
// HTTP/1.1 on $PORT, so every answer it gives came over HTTP/2 from pier's
// gateway (its manifest says `protocol: h2c`), whatever the client spoke to
// the gateway. It shows what it saw: the protocol, the connection's
// address (concurrent requests share one connection), the forwarding
// headers and the request id. /stream sends lines as they are made and a
// trailer; /echo answers a POST's size and SHA-256, also in a trailer.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const name = "hello-h2c"

// connKey is the context key of the connection a request came on.
type connKey struct{}

func main() {
	log.SetOutput(os.Stdout) // pier collects stdout
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s: proto=%s conn=%s release=%s\n", name, r.Proto, r.Context().Value(connKey{}), env("PIER_RELEASE", "dev"))
		fmt.Fprintf(w, "x-forwarded-for=%s x-forwarded-proto=%s x-forwarded-host=%s x-request-id=%s\n",
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Request-Id"))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok", r.Proto)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 || n > 1000 {
			n = 3
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Trailer", "X-Lines")
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "line %d of %d over %s\n", i, n, r.Proto)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Lines", strconv.Itoa(n))
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := hex.EncodeToString(h.Sum(nil))
		w.Header().Set("Trailer", "X-Sha256")
		fmt.Fprintf(w, "%s: %d bytes over %s, sha256 %s\n", name, n, r.Proto, sum)
		w.Header().Set("X-Sha256", sum)
	})

	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true) // and not HTTP1: HTTP/1.1 requests are refused
	srv := &http.Server{
		Addr:              "127.0.0.1:" + env("PORT", "8000"),
		Handler:           logRequests(mux),
		Protocols:         &protos,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c.RemoteAddr().String())
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		// Stop accepting, let the requests in flight finish.
		shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("%s listening on %s (h2c only)", name, srv.Addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-stopped
	log.Printf("%s stopped", name)
}

// logRequests logs one line per request to stdout.
func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		log.Printf("%s %s %s %s", r.Proto, r.Method, r.URL.RequestURI(), time.Since(start).Round(time.Microsecond))
	})
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
