package supervisor

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestCheckH2C: an app that speaks h2c alone is healthy to the h2c probe,
// and not to the HTTP/1.1 one (which is why Spec.HealthH2C exists).
func TestCheckH2C(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor != 2 || r.URL.Path != "/healthz" {
				http.Error(w, "no", http.StatusTeapot)
			}
		})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	s := New(Options{})
	for _, tt := range []struct {
		name   string
		health string
		h2c    bool
		ok     bool
	}{
		{"h2c probe", "/healthz", true, true},
		{"h2c probe, wrong path", "/nope", true, false},
		{"http/1.1 probe", "/healthz", false, false},
		{"tcp connect", "", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := s.check(ctx, port, tt.health, tt.h2c)
			if (err == nil) != tt.ok {
				t.Errorf("check(%q, h2c %v) = %v, want ok %v", tt.health, tt.h2c, err, tt.ok)
			}
		})
	}
}
