package gateway

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testLogger discards logs unless the test runs with -v.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTestGateway starts a Gateway behind an httptest.Server and returns it
// with the server's base URL and a client with its own connection pool.
func newTestGateway(t *testing.T, routes ...Route) (*Gateway, string, *http.Client) {
	t.Helper()
	return newTestGatewayWith(t, Options{Logger: testLogger(t)}, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}, routes...)
}

// newTestGatewayWith is newTestGateway with options, behind Guard, as the
// engine runs it.
func newTestGatewayWith(t *testing.T, opts Options, guard GuardOptions, routes ...Route) (*Gateway, string, *http.Client) {
	t.Helper()
	g := New(opts)
	g.SetRoutes(routes)
	srv := httptest.NewUnstartedServer(g)
	srv.Listener = Guard(srv.Listener, guard)
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return g, srv.URL, &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// startBackend starts an app instance on 127.0.0.1 and returns its address.
func startBackend(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// namedBackend answers with its name in the body and the X-Backend header.
func namedBackend(t *testing.T, name string) string {
	t.Helper()
	return startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name)
	}))
}

// refusingAddr returns an address on which nothing listens.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// hangupBackend accepts connections, reads the request head and closes the
// connection without answering, like an instance killed mid-request. It
// returns its address and the number of connections it accepted.
func hangupBackend(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), &accepted
}

// get sends a request for host through the gateway and returns the status,
// body and response.
func get(t *testing.T, c *http.Client, base, method, host, path string, body io.Reader) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s%s: reading body: %v", method, host, path, err)
	}
	return resp.StatusCode, string(b), resp
}

// rawGet sends exactly "GET target HTTP/1.1" to addr, so paths reach the
// gateway without any client-side cleaning.
func rawGet(t *testing.T, addr, host, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
