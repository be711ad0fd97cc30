package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// startH2CBackend serves h on 127.0.0.1 with HTTP/2 with prior knowledge
// only (also HTTP/1.1 when http1 is set) and returns its address and the
// number of TCP connections it accepted.
func startH2CBackend(t *testing.T, h http.Handler, http1 bool) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	protos.SetHTTP1(http1)
	srv := &http.Server{Handler: h, Protocols: &protos, ReadHeaderTimeout: 10 * time.Second}
	cl := &countingListener{Listener: ln}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &cl.accepted
}

type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// h2cEcho answers with what it was sent, as JSON, after the app's own
// X-Request-Id (which the gateway must drop) and a trailer of each kind.
var h2cEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	w.Header().Set("X-Request-Id", "set-by-the-app")
	w.Header().Set("Trailer", "X-Body-Sha256")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{
		"proto":   r.Proto,
		"method":  r.Method,
		"host":    r.Host,
		"path":    r.URL.RequestURI(),
		"length":  fmt.Sprint(len(body)),
		"sha256":  hex.EncodeToString(sum[:]),
		"xff":     strings.Join(r.Header.Values("X-Forwarded-For"), "|"),
		"xfh":     r.Header.Get("X-Forwarded-Host"),
		"xfp":     r.Header.Get("X-Forwarded-Proto"),
		"id":      strings.Join(r.Header.Values("X-Request-Id"), "|"),
		"secret":  r.Header.Get("X-Secret"),
		"keep":    r.Header.Get("Keep-Alive"),
		"custom":  r.Header.Get("X-Custom"),
		"te":      r.Header.Get("Te"),
		"conn":    r.Header.Get("Connection"),
		"upgrade": r.Header.Get("Upgrade"),
	})
	w.Header().Set("X-Body-Sha256", hex.EncodeToString(sum[:]))
	w.Header().Set(http.TrailerPrefix+"X-Late", "undeclared")
})

// TestH2CBackendIsH2COnly makes sure the backends of these tests refuse
// HTTP/1.1, so that a request they answer came over h2c.
func TestH2CBackendIsH2COnly(t *testing.T) {
	addr, _ := startH2CBackend(t, h2cEcho, false)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("an HTTP/1.1 GET to the h2c-only backend got %s, want a refusal", resp.Status)
		}
	}
}

func TestH2CForward(t *testing.T) {
	addr, accepted := startH2CBackend(t, h2cEcho, false)
	route := Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}, H2C: true}
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{route})
	frontAddr, fronted := startFront(t, g, g)
	_, netBase, _ := newTestGatewayWith(t, Options{Logger: testLogger(t)}, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}, route)
	// HTTP/2 end to end, as a gRPC client would have it: TLS to the
	// gateway, h2c to the app.
	tlsGW := New(Options{Logger: testLogger(t)})
	tlsGW.SetRoutes([]Route{route})
	tlsSrv := httptest.NewUnstartedServer(tlsGW)
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16) // 100 KiB: net/http serves it, not Front
	bigSum := sha256.Sum256(big)
	small := []byte(`{"hello":"h2c"}`)
	smallSum := sha256.Sum256(small)
	tests := []struct {
		name    string
		method  string
		body    []byte
		chunked bool // no Content-Length: the gateway buffers it
		header  map[string]string
	}{
		{name: "get", method: "GET", header: map[string]string{
			"X-Custom": "kept", "Connection": "X-Secret", "X-Secret": "dropped",
			"X-Forwarded-For": "203.0.113.7", "X-Request-Id": "client-id-1",
		}},
		{name: "get with te trailers", method: "GET", header: map[string]string{"Te": "trailers"}},
		{name: "head", method: "HEAD"},
		{name: "post small", method: "POST", body: small},
		{name: "post 100 KiB", method: "POST", body: big},
		{name: "post chunked", method: "POST", body: big, chunked: true},
		{name: "put empty", method: "PUT", body: []byte{}},
	}
	for _, srv := range []struct {
		name, base string
		h2         bool // the client speaks HTTP/2 (over TLS) to the gateway
	}{{"front", "http://" + frontAddr, false}, {"net/http", netBase, false}, {"tls h2", tlsSrv.URL, true}} {
		for _, tt := range tests {
			t.Run(srv.name+"/"+tt.name, func(t *testing.T) {
				// A connection of its own: Front hands a connection to
				// net/http for good after a request of an unusual shape.
				client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 20 * time.Second}
				if srv.h2 {
					tr := tlsSrv.Client().Transport.(*http.Transport).Clone()
					tr.DisableCompression = true
					client.Transport = tr
				}
				defer client.CloseIdleConnections()
				var body io.Reader
				if tt.body != nil {
					body = bytes.NewReader(tt.body)
					if tt.chunked {
						body = io.MultiReader(body) // hides the length
					}
				}
				req, err := http.NewRequest(tt.method, srv.base+"/echo?q=1", body)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = "app.localhost"
				for k, v := range tt.header {
					if srv.h2 && (k == "Connection" || k == "X-Secret") {
						continue // HTTP/2 has no Connection header to name it
					}
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				raw, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("reading the body: %v", err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %s, body %q", resp.Status, raw)
				}
				if want := map[bool]int{false: 1, true: 2}[srv.h2]; resp.ProtoMajor != want {
					t.Fatalf("the client spoke HTTP/%d to the gateway, want HTTP/%d", resp.ProtoMajor, want)
				}
				ids := resp.Header.Values("X-Request-Id")
				if len(ids) != 1 || ids[0] == "set-by-the-app" {
					t.Fatalf("response X-Request-Id %q; want one, the gateway's", ids)
				}
				if tt.method == "HEAD" {
					if len(raw) != 0 {
						t.Errorf("HEAD answered with a body %q", raw)
					}
					return
				}
				var got map[string]string
				if err := json.Unmarshal(raw, &got); err != nil {
					t.Fatalf("body %q: %v", raw, err)
				}
				want := map[string]string{
					"proto": "HTTP/2.0", "method": tt.method, "host": "app.localhost", "path": "/echo?q=1",
					"xff": "127.0.0.1", "xfh": "app.localhost", "xfp": "http", "id": ids[0],
					"secret": "", "keep": "", "te": "", "conn": "", "upgrade": "",
					"length": "0", "sha256": hex.EncodeToString(sha256.New().Sum(nil)),
				}
				if srv.h2 {
					want["xfp"] = "https"
				}
				switch {
				case tt.header["X-Forwarded-For"] != "":
					want["xff"] = tt.header["X-Forwarded-For"] + ", 127.0.0.1"
					want["id"] = "client-id-1"
					want["custom"] = "kept"
				case tt.header["Te"] != "":
					want["te"] = "trailers"
				}
				switch {
				case bytes.Equal(tt.body, big):
					want["length"], want["sha256"] = fmt.Sprint(len(big)), hex.EncodeToString(bigSum[:])
				case bytes.Equal(tt.body, small):
					want["length"], want["sha256"] = fmt.Sprint(len(small)), hex.EncodeToString(smallSum[:])
				}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("app saw %s = %q, want %q", k, got[k], v)
					}
				}
				if s := resp.Trailer.Get("X-Body-Sha256"); s != want["sha256"] {
					t.Errorf("trailer X-Body-Sha256 = %q, want %q (trailer %v)", s, want["sha256"], resp.Trailer)
				}
				if s := resp.Trailer.Get("X-Late"); s != "undeclared" {
					t.Errorf("undeclared trailer X-Late = %q, want %q (trailer %v)", s, "undeclared", resp.Trailer)
				}
			})
		}
	}
	if fronted.Load() == 0 {
		t.Errorf("Front served none of the requests itself; the test does not cover its ResponseWriter")
	}
	if n := accepted.Load(); n != 3 {
		// One connection per gateway, every request multiplexed on it.
		t.Errorf("the app accepted %d connections from three gateways, want 3", n)
	}
}

func TestH2CStreaming(t *testing.T) {
	release := make(chan struct{})
	addr, _ := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "b")
	}), false)
	checkStreamed(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}, H2C: true}, release)
}

// TestH2CMultiplexed holds 100 requests in the app at once: they are
// concurrent streams of the one connection the gateway opened.
func TestH2CMultiplexed(t *testing.T) {
	const n = 100
	var (
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
	)
	addr, accepted := startH2CBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			mu.Lock()
			if arrived++; arrived == n {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, r.Proto)
	}), false)
	_, base, _ := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}, H2C: true})
	// Clients with connections of their own: the gateway gets n requests at once.
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}

	// The first request makes the connection; concurrent first requests
	// could each dial one before HTTP/2 shares (and closes the extras).
	if code, body, _ := get(t, c, base, "GET", "app.localhost", "/", nil); code != 200 || body != "HTTP/2.0" {
		t.Fatalf("first request: %d %q", code, body)
	}
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			req, _ := http.NewRequest("GET", base+"/held", nil)
			req.Host = "app.localhost"
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != 200 || string(b) != "HTTP/2.0") {
				err = fmt.Errorf("got %s %q", resp.Status, b)
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := accepted.Load(); got != 1 {
		t.Errorf("the app accepted %d connections for %d concurrent requests, want 1", got, n+1)
	}
}

// TestH2CRetryRefused: a request that could not reach an instance goes to
// another one, whatever its method.
func TestH2CRetryRefused(t *testing.T) {
	good, _ := startH2CBackend(t, h2cEcho, false)
	dead := refusingAddr(t)
	_, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{dead, good}, H2C: true})
	for i := 0; i < 10; i++ {
		for _, method := range []string{"GET", "POST"} {
			code, body, _ := get(t, c, base, method, "app.localhost", "/", strings.NewReader("x"))
			if code != 200 || !strings.Contains(body, `"proto":"HTTP/2.0"`) {
				t.Fatalf("%s %d: %d %q", method, i, code, body)
			}
		}
	}
	code, body, _ := get(t, c, base, "GET", "app.localhost", "/", nil)
	if code != 200 {
		t.Fatalf("after the retries: %d %q", code, body)
	}

	_, base, c = newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{dead}, H2C: true})
	if code, body, _ := get(t, c, base, "GET", "app.localhost", "/", nil); code != http.StatusBadGateway || !strings.Contains(body, "connection refused") {
		t.Errorf("lone dead instance: %d %q, want 502 connection refused", code, body)
	}
}

// TestH2CCanary: the stable release and its canary may speak differently.
func TestH2CCanary(t *testing.T) {
	h1 := startBackend(t, h2cEcho)
	h2, _ := startH2CBackend(t, h2cEcho, false)
	for _, tt := range []struct {
		name           string
		stable, canary string
		stableH2C      bool
		canaryH2C      bool
	}{
		{"http1 stable, h2c canary", h1, h2, false, true},
		{"h2c stable, http1 canary", h2, h1, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"},
				Backends: []string{tt.stable}, H2C: tt.stableH2C, Release: 1,
				Canary: []string{tt.canary}, CanaryH2C: tt.canaryH2C, CanaryRelease: 2, CanaryWeight: 5000})
			for release, h2c := range map[string]bool{"1": tt.stableH2C, "2": tt.canaryH2C} {
				req, _ := http.NewRequest("GET", base+"/", nil)
				req.Host = "app.localhost"
				req.Header.Set("Cookie", CanaryCookie+"="+release)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := `"proto":"HTTP/1.1"`
				if h2c {
					want = `"proto":"HTTP/2.0"`
				}
				if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
					t.Errorf("release %s: %s %q, want %s", release, resp.Status, b, want)
				}
			}
		})
	}
}

// TestH2CWebsocket: a protocol switch goes over HTTP/1.1 even to an h2c
// app, so an app that also accepts HTTP/1.1 gets its websockets, and one
// that speaks h2c alone gets none (a 502, not a hang).
func TestH2CWebsocket(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		typ, msg, err := conn.Read(r.Context())
		if err != nil {
			return
		}
		conn.Write(r.Context(), typ, append([]byte("echo: "), msg...))
	})
	both, _ := startH2CBackend(t, echo, true)
	only, _ := startH2CBackend(t, echo, false)
	_, base, _ := newTestGateway(t,
		Route{App: "both", Hosts: []string{"both.localhost"}, Backends: []string{both}, H2C: true},
		Route{App: "only", Hosts: []string{"only.localhost"}, Backends: []string{only}, H2C: true})
	ws := "ws" + strings.TrimPrefix(base, "http") + "/socket"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, ws, &websocket.DialOptions{Host: "both.localhost"})
	if err != nil {
		t.Fatalf("websocket to an app speaking h2c and HTTP/1.1: %v", err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := conn.Read(ctx); err != nil || string(got) != "echo: hi" {
		t.Fatalf("got %q, %v; want \"echo: hi\"", got, err)
	}
	conn.Close(websocket.StatusNormalClosure, "")

	_, resp, err := websocket.Dial(ctx, ws, &websocket.DialOptions{Host: "only.localhost"})
	if err == nil {
		t.Fatal("websocket to an h2c-only app was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("websocket to an h2c-only app: %v, response %v; want a 502", err, resp)
	}
}

// BenchmarkH2CPass passes GET /hello through Guard, Front and the gateway
// to one app that answers both HTTP/1.1 and h2c on its port, spoken to in
// each (the route's H2C alone differs), from keep-alive clients on raw
// connections. Compare the two in one run; -cpuprofile shows the h2c
// client's share.
func BenchmarkH2CPass(b *testing.B) {
	hello := []byte("hello, world\n")
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	app := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write(hello)
	})}
	go app.Serve(ln)
	defer app.Close()
	for _, h2c := range []bool{false, true} {
		name := map[bool]string{false: "http1", true: "h2c"}[h2c]
		b.Run(name, func(b *testing.B) {
			g := New(Options{Logger: slog.New(slog.DiscardHandler)})
			g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{ln.Addr().String()}, H2C: h2c}})
			cpu0 := processCPU()
			benchFrontGets(b, g)
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
		})
	}
}

// processCPU is the user and system CPU time this process used so far, in
// nanoseconds: the cost per request on a busy machine, where wall time
// per request says more about the neighbours.
func processCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestH2CLoseOneOfTwo: one of two h2c instances goes away under load,
// killed (its connections cut) or shut down gracefully (GOAWAY, then its
// port closes) while still routed; no request fails: those that never
// reached it go to the other instance.
func TestH2CLoseOneOfTwo(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		name := map[bool]string{false: "killed", true: "shut down"}[graceful]
		t.Run(name, func(t *testing.T) {
			var protos http.Protocols
			protos.SetUnencryptedHTTP2(true)
			serve := func(name string) (*http.Server, string) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.WriteString(w, name)
				})}
				go srv.Serve(ln)
				t.Cleanup(func() { srv.Close() })
				return srv, ln.Addr().String()
			}
			victim, victimAddr := serve("victim")
			_, survivor := serve("survivor")
			_, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"},
				Backends: []string{victimAddr, survivor}, H2C: true})

			var fromVictim atomic.Int64
			seen := func(body string) {
				if body == "victim" {
					fromVictim.Add(1)
				}
			}
			loseOneUnderLoad(t, base, c, seen, func() {
				if graceful {
					go victim.Shutdown(context.Background())
				} else {
					victim.Close()
				}
			}, func() bool { return fromVictim.Load() > 0 })
		})
	}
}
