// minisites serves the mini-sites of many tenants from one app, as a
// yellow-pages publisher does: the Host header picks the business, whose
// pages are rendered from its data by one set of templates.
//
// A tenant's data is DATA_DIR/<host>.json when that file exists, else it is
// made up deterministically from the host name, so 70,000 domains need no
// 70,000 files. MAX_AGE (default 60) is the s-maxage pages are sent with,
// for the gateway's cache; 0 sends none.
//
// "app -hosts N" prints N tenant host names, to attach with
// pier domains add minisites -f -; "app -gen N -out DIR" writes N tenant files.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	log.SetOutput(os.Stdout) // pier collects stdout
	hosts := flag.Int("hosts", 0, "print N tenant host names and exit")
	gen := flag.Int("gen", 0, "write N tenant JSON files into -out and exit")
	out := flag.String("out", "tenants", "directory -gen writes into")
	suffix := flag.String("suffix", "minisites.test", "domain under which -hosts and -gen name tenants")
	flag.Parse()
	switch {
	case *hosts > 0:
		for i := range *hosts {
			fmt.Println(TenantHost(i, *suffix))
		}
		return
	case *gen > 0:
		if err := generate(*gen, *suffix, *out); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := serve(); err != nil {
		log.Fatal(err)
	}
}

func serve() error {
	// MAX_AGE=0 sends no Cache-Control: every page is rendered anew.
	maxAge := 60
	if v := os.Getenv("MAX_AGE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("MAX_AGE=%q: want a number of seconds", v)
		}
		maxAge = n
	}
	s := &Sites{DataDir: os.Getenv("DATA_DIR"), MaxAge: maxAge}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{
		Addr:              net.JoinHostPort("", port),
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("minisites listening on :%s (release %s)", port, os.Getenv("PIER_RELEASE"))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// generate writes n tenant files into dir.
func generate(n int, suffix, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range n {
		host := TenantHost(i, suffix)
		data, err := json.MarshalIndent(MakeTenant(host), "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, host+".json"), append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TenantHost is the host name of tenant i: "t00042.minisites.test".
func TenantHost(i int, suffix string) string {
	return fmt.Sprintf("t%05d.%s", i, strings.TrimPrefix(suffix, "."))
}
