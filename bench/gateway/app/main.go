// benchapp is the upstream of bench/gateway: the same process serves pier,
// nginx and varnish. /hello must not be cached (no-store); /cached may be
// (max-age=600).
package main

import (
	"net/http"
	"os"
)

func main() {
	hello := []byte("hello, world\n")
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write(hello)
	})
	http.HandleFunc("/cached", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Write(hello)
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
