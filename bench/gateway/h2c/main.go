// h2cbench is the upstream of bench/gateway/h2c.sh: one process that
// answers /hello (13 bytes, no-store) in HTTP/1.1 and in h2c on the same
// port, so that the manifest's protocol alone decides how pier's gateway
// speaks to it.
package main

import (
	"net/http"
	"os"
)

func main() {
	hello := []byte("hello, world\n")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Proto", r.Proto) // the script checks it
		w.Write(hello)
	})
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Addr: "127.0.0.1:" + os.Getenv("PORT"), Handler: mux, Protocols: &protos}
	srv.ListenAndServe()
}
