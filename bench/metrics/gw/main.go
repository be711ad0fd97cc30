// Command gw serves one backend behind two pier gateways, one with the
// metrics hook and one without, and prints their addresses ("on off"), so
// that bench/metrics/run.sh can load both alternately with wrk. It runs
// until stdin closes.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"

	"pier/internal/gateway"
	"pier/internal/metrics"
)

func main() {
	backend := listen()
	go http.Serve(backend, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "hello from the bench backend\n")
	}))
	m := metrics.New(metrics.Options{})
	quiet := slog.New(slog.DiscardHandler)
	var addrs []string
	for _, on := range []bool{true, false} {
		opts := gateway.Options{Logger: quiet}
		if on {
			opts.Observe = m.Observe
		}
		g := gateway.New(opts)
		g.SetRoutes([]gateway.Route{{App: "bench", Hosts: []string{"bench.localhost"}, Backends: []string{backend.Addr().String()}}})
		ln := listen()
		go (&http.Server{Handler: g}).Serve(ln)
		addrs = append(addrs, ln.Addr().String())
	}
	fmt.Println(addrs[0], addrs[1])
	io.Copy(io.Discard, os.Stdin)
}

func listen() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return ln
}
