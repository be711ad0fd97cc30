// Command gw is one part of bench/metrics, run as its own process so that
// bench/metrics/run.sh can read each part's CPU time from /proc:
//
//	gw -backend                  the app: a small fixed answer
//	gw -to ADDR -metrics on|off  a pier gateway in front of ADDR, served by
//	                             the gateway's own HTTP/1.1 loop (Front) as
//	                             the engine serves it, with the metrics hook
//	                             and collector (its exposition under
//	                             /_pier/), or without
//
// Each prints the address it listens on (127.0.0.1, a free port) and runs
// until it is killed.
package main

import (
	"context"
	"flag"
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
	backend := flag.Bool("backend", false, "serve the backend app")
	to := flag.String("to", "", "the backend's address, for a gateway")
	withMetrics := flag.String("metrics", "on", "the gateway's metrics: on or off")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	if *backend {
		fmt.Println(ln.Addr().String())
		fail(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, "hello from the bench backend\n")
		})))
	}
	if *to == "" || (*withMetrics != "on" && *withMetrics != "off") {
		fail(fmt.Errorf("want -backend, or -to ADDR and -metrics on|off"))
	}
	quiet := slog.New(slog.DiscardHandler)
	opts := gateway.Options{Logger: quiet}
	if *withMetrics == "on" {
		m := metrics.New(metrics.Options{Logger: quiet})
		m.Start(context.Background()) // the collector's work every 10 s is part of the cost
		opts.Observe = m.Observe
		// run.sh reads the exposition at the end: proof that the hook saw
		// the requests.
		opts.Internal = m.PrometheusHandler(nil)
	}
	g := gateway.New(opts)
	g.SetRoutes([]gateway.Route{{App: "bench", Hosts: []string{"bench.localhost"}, Backends: []string{*to}}})
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: g}
	fail(srv.Serve(g.Front(ln, g, gateway.FrontOptions{Logger: quiet})))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gw:", err)
	os.Exit(1)
}
