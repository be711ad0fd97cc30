// benchapp is the upstream of bench/gateway: the same process serves pier,
// nginx and varnish. /hello must not be cached (no-store); /cached and
// /cached20k may be (max-age=600), with a 13-byte and a 20 KB body; /render
// takes 20 ms, as a page rendered from a database would, and must not be
// cached; /render/cached takes as long and may be.
package main

import (
	"bytes"
	"net/http"
	"os"
	"time"
)

func main() {
	hello := []byte("hello, world\n")
	big := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"), 20<<10/64) // 20 KB of text
	page := bytes.Repeat([]byte("<p>rendered</p>\n"), 128)                                                      // 2 KB
	render := func(cc string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(20 * time.Millisecond)
			w.Header().Set("Cache-Control", cc)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(page)
		}
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write(hello)
	})
	http.HandleFunc("/cached", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Write(hello)
	})
	http.HandleFunc("/cached20k", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(big)
	})
	http.HandleFunc("/render", render("no-store"))
	http.HandleFunc("/render/cached", render("public, max-age=600"))
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
