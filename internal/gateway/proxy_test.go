package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

func TestLeastOutstanding(t *testing.T) {
	release := make(chan struct{})
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("slow") == "1" {
				<-release
			}
			io.WriteString(w, name)
		})
	}
	a, b := startBackend(t, handler("a")), startBackend(t, handler("b"))
	g, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{a, b}})

	slowDone := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/?slow=1", nil)
		req.Host = "app.localhost"
		resp, err := c.Do(req)
		if err != nil {
			slowDone <- "error: " + err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slowDone <- string(body)
	}()
	waitFor(t, "the slow request to be in flight", func() bool { return g.Outstanding(a)+g.Outstanding(b) == 1 })
	busy, idle := "a", "b"
	if g.Outstanding(b) == 1 {
		busy, idle = "b", "a"
	}
	for i := 0; i < 10; i++ {
		if _, body, _ := get(t, c, base, "GET", "app.localhost", "/", nil); body != idle {
			t.Fatalf("request %d went to %q while %q was busy; want %q", i, body, busy, idle)
		}
	}
	close(release)
	if got := <-slowDone; got != busy {
		t.Errorf("slow request answered %q, want %q", got, busy)
	}
	waitFor(t, "outstanding counts to drop to 0", func() bool { return g.Outstanding(a) == 0 && g.Outstanding(b) == 0 })

	// With equal load, requests spread over both backends.
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		_, body, _ := get(t, c, base, "GET", "app.localhost", "/", nil)
		seen[body]++
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("idle backends not both used: %v", seen)
	}
}

func TestOutstanding(t *testing.T) {
	release := make(chan struct{})
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "head ")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "tail")
	}))
	g, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}})
	if n := g.Outstanding(addr); n != 0 {
		t.Fatalf("Outstanding before = %d, want 0", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		get(t, c, base, "GET", "app.localhost", "/", nil)
	}()
	waitFor(t, "Outstanding to reach 1", func() bool { return g.Outstanding(addr) == 1 })

	// The count survives a swap that routes the app elsewhere, so the
	// engine can drain the old instance.
	other := namedBackend(t, "other")
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{other}}})
	if n := g.Outstanding(addr); n != 1 {
		t.Errorf("Outstanding after swap = %d, want 1", n)
	}
	close(release)
	<-done
	waitFor(t, "Outstanding to drop to 0", func() bool { return g.Outstanding(addr) == 0 })
	if n := g.Outstanding("127.0.0.1:1"); n != 0 {
		t.Errorf("Outstanding(unknown) = %d, want 0", n)
	}
}

func TestRetryRefused(t *testing.T) {
	good := namedBackend(t, "good")
	for _, order := range []string{"refused first", "refused second"} {
		t.Run(order, func(t *testing.T) {
			bad := refusingAddr(t)
			backends := []string{bad, good}
			if order == "refused second" {
				backends = []string{good, bad}
			}
			g, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: backends})
			for i := 0; i < 6; i++ {
				method, body := "GET", io.Reader(nil)
				if i%2 == 1 {
					method, body = "POST", strings.NewReader("payload") // never sent: safe to retry
				}
				if status, got, _ := get(t, c, base, method, "app.localhost", "/", body); status != 200 || got != "good" {
					t.Fatalf("%s %d: got %d %q, want 200 %q", method, i, status, got, "good")
				}
			}
			g.mu.Lock()
			down := g.backends[bad].down(monoNow())
			g.mu.Unlock()
			if !down {
				t.Errorf("refusing backend not marked down")
			}
			if n := g.Outstanding(bad) + g.Outstanding(good); n != 0 {
				t.Errorf("outstanding = %d after all requests, want 0", n)
			}
		})
	}
}

func TestRetryHangup(t *testing.T) {
	good := namedBackend(t, "good")
	bad, accepted := hangupBackend(t)
	g, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{bad, good}})

	tests := []struct {
		method     string
		body       string
		wantStatus int // when the hanging-up backend got the request
	}{
		{"GET", "", 200},
		{"HEAD", "", 200},
		{"DELETE", "", 200}, // idempotent: retried
		{"POST", "", 502},   // a body-less POST may have acted: never sent twice
		{"POST", "payload", 502},
		{"PUT", strings.Repeat("x", 100_000), 502},
	}
	for _, tt := range tests {
		hit := false
		for i := 0; i < 10 && !hit; i++ {
			before := accepted.Load()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			status, got, _ := get(t, c, base, tt.method, "app.localhost", "/", body)
			hit = accepted.Load() > before
			want, wantBody := 200, "good"
			if hit {
				want = tt.wantStatus
			}
			if want == 502 {
				wantBody = `pier: app "app" did not answer: connection closed before a response` + "\n"
			}
			if tt.method == "HEAD" {
				wantBody = ""
			}
			if status != want || got != wantBody {
				t.Errorf("%s (hung-up backend hit: %v): got %d %q, want %d %q", tt.method, hit, status, got, want, wantBody)
			}
		}
		if !hit {
			t.Errorf("%s: the hanging-up backend never got a request", tt.method)
		}
	}
	waitFor(t, "outstanding counts to drop to 0", func() bool { return g.Outstanding(bad)+g.Outstanding(good) == 0 })
}

func TestAllBackendsFail(t *testing.T) {
	_, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{refusingAddr(t), refusingAddr(t)}})
	status, body, _ := get(t, c, base, "GET", "app.localhost", "/", nil)
	want := `pier: app "app" did not answer: connection refused` + "\n"
	if status != 502 || body != want {
		t.Errorf("got %d %q, want 502 %q", status, body, want)
	}
}

func TestForwardedHeaders(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "set-by-the-app")
		json.NewEncoder(w).Encode(map[string]string{
			"host":  r.Host,
			"xff":   strings.Join(r.Header.Values("X-Forwarded-For"), "|"),
			"proto": r.Header.Get("X-Forwarded-Proto"),
			"xfh":   r.Header.Get("X-Forwarded-Host"),
			"id":    strings.Join(r.Header.Values("X-Request-Id"), "|"),
		})
	})
	addr := startBackend(t, echo)
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}}})
	plain := httptest.NewServer(g)
	defer plain.Close()
	tls := httptest.NewTLSServer(g)
	defer tls.Close()

	long := strings.Repeat("a", 129)
	generated := make(map[string]bool)
	tests := []struct {
		name     string
		srv      *httptest.Server
		xff      string
		id       string
		wantXFF  string
		wantID   string // "" = a generated one
		wantProt string
	}{
		{"plain", plain, "", "", "127.0.0.1", "", "http"},
		{"append", plain, "203.0.113.7", "abc-123_x.y", "203.0.113.7, 127.0.0.1", "abc-123_x.y", "http"},
		{"bad id", plain, "", "no spaces allowed", "127.0.0.1", "", "http"},
		{"long id", plain, "", long, "127.0.0.1", "", "http"},
		{"max id", plain, "", long[:128], "127.0.0.1", long[:128], "http"},
		{"tls", tls, "", "", "127.0.0.1", "", "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.srv.URL+"/", nil)
			req.Host = "app.localhost:8443"
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			if tt.id != "" {
				req.Header.Set("X-Request-Id", tt.id)
			}
			resp, err := tt.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got["host"] != "app.localhost:8443" || got["xfh"] != "app.localhost:8443" {
				t.Errorf("Host %q, X-Forwarded-Host %q; want both %q", got["host"], got["xfh"], "app.localhost:8443")
			}
			if got["xff"] != tt.wantXFF {
				t.Errorf("X-Forwarded-For = %q, want %q", got["xff"], tt.wantXFF)
			}
			if got["proto"] != tt.wantProt {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got["proto"], tt.wantProt)
			}
			ids := resp.Header.Values("X-Request-Id")
			if len(ids) != 1 || ids[0] != got["id"] {
				t.Fatalf("response X-Request-Id %q, app saw %q; want one, the same", ids, got["id"])
			}
			if tt.wantID != "" && got["id"] != tt.wantID {
				t.Errorf("X-Request-Id = %q, want %q", got["id"], tt.wantID)
			}
			if tt.wantID == "" {
				id := got["id"]
				prefix, n, _ := strings.Cut(id, "-")
				if len(prefix) != 16 || strings.Trim(prefix, "0123456789abcdef") != "" || n == "" || strings.Trim(n, "0123456789abcdef") != "" {
					t.Errorf("generated X-Request-Id = %q, want 16 hex digits, '-' and a hex counter", id)
				}
				if generated[id] {
					t.Errorf("generated X-Request-Id %q twice", id)
				}
				generated[id] = true
			}
		})
	}
}

func TestStreaming(t *testing.T) {
	release := make(chan struct{})
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain") // not an event stream: FlushInterval does the work
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "b")
	}))
	checkStreamed(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}}, release)
}

// checkStreamed asks rt's one backend, which sends "a", flushes, and sends
// "b" once release is closed, for "/": "a" must reach the client before
// "b" is sent, with the request counted outstanding until it ends.
func checkStreamed(t *testing.T, rt Route, release chan struct{}) {
	t.Helper()
	addr := rt.Backends[0]
	g, base, c := newTestGateway(t, rt)
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = "app.localhost"
	resp, err := c.Do(req)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadByte() // blocks until "a" arrives; "b" is not sent yet
	if err != nil || first != 'a' {
		close(release)
		t.Fatalf("first byte %q, %v; want 'a'", first, err)
	}
	if n := g.Outstanding(addr); n != 1 {
		t.Errorf("Outstanding while streaming = %d, want 1", n)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "b" {
		t.Fatalf("rest %q, %v; want \"b\"", rest, err)
	}
	waitFor(t, "Outstanding to drop to 0", func() bool { return g.Outstanding(addr) == 0 })
}

func TestWebsocket(t *testing.T) {
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		for {
			typ, msg, err := conn.Read(r.Context())
			if err != nil {
				return
			}
			if err := conn.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	}))
	g, base, _ := newTestGateway(t, Route{App: "ws", Hosts: []string{"ws.localhost"}, Backends: []string{addr}})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/socket", &websocket.DialOptions{Host: "ws.localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("hello %d", i)
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Errorf("got %q, want %q", got, "echo: "+msg)
		}
	}
	if n := g.Outstanding(addr); n != 1 {
		t.Errorf("Outstanding with an open websocket = %d, want 1", n)
	}
	conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "Outstanding to drop to 0 after close", func() bool { return g.Outstanding(addr) == 0 })
}

func TestSwapUnderLoad(t *testing.T) {
	addrs := []string{namedBackend(t, "a"), namedBackend(t, "b"), namedBackend(t, "c")}
	routes := func(i int) []Route {
		rs := []Route{{App: "app", Hosts: []string{"app.localhost", "*.app.localhost"}, Backends: []string{addrs[i%3], addrs[(i+1)%3]}}}
		for j := 0; j < 50; j++ {
			rs = append(rs, Route{App: fmt.Sprintf("other%d", j), Hosts: []string{fmt.Sprintf("o%d-%d.localhost", j, i)}, Backends: []string{addrs[j%3]}})
		}
		return rs
	}
	g, base, c := newTestGateway(t, routes(0)...)

	stop := make(chan struct{})
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			g.SetRoutes(routes(i))
			swaps.Add(1)
			time.Sleep(100 * time.Microsecond)
		}
	}()

	var failures atomic.Int64
	var requests atomic.Int64
	var firstErr sync.Once
	var clients sync.WaitGroup
	for w := 0; w < 8; w++ {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for i := 0; i < 150; i++ {
				host := "app.localhost"
				if i%2 == 1 {
					host = fmt.Sprintf("x%d.app.localhost", i)
				}
				req, _ := http.NewRequest("GET", base+"/", nil)
				req.Host = host
				resp, err := c.Do(req)
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.Do(func() { t.Errorf("request error: %v", err) })
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					firstErr.Do(func() { t.Errorf("got %d %q", resp.StatusCode, body) })
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during %d swaps", n, requests.Load(), swaps.Load())
	}
	for _, a := range addrs {
		if n := g.Outstanding(a); n != 0 {
			t.Errorf("Outstanding(%s) = %d after the load, want 0", a, n)
		}
	}
	t.Logf("%d requests, %d swaps", requests.Load(), swaps.Load())
}

func TestUnaskedProtocolSwitch(t *testing.T) {
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n")
		brw.Flush()
		io.Copy(io.Discard, conn)
	}))
	g, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}})
	for _, upgrade := range []string{"", "websocket"} {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Host = "app.localhost"
		if upgrade != "" {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", upgrade)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("Upgrade %q answered by a switch to \"other\": got %d, want 502", upgrade, resp.StatusCode)
		}
	}
	waitFor(t, "Outstanding to drop to 0", func() bool { return g.Outstanding(addr) == 0 })
}

// TestKillOneOfTwo kills one of two instances, keep-alive connections
// included, under load: clients see no error.
func TestKillOneOfTwo(t *testing.T) {
	h := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	victim := httptest.NewServer(h("victim"))
	defer victim.Close()
	survivor := startBackend(t, h("survivor"))
	_, base, c := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"},
		Backends: []string{victim.Listener.Addr().String(), survivor}})

	loseOneUnderLoad(t, base, c, nil, func() {
		victim.Listener.Close()
		victim.CloseClientConnections()
	})
}

// loseOneUnderLoad keeps six clients asking base for "/" through c, each
// answer's body given to seen (if not nil); once 100 are served and ready
// (if not nil) holds, it calls lose, and then waits for 300 more. Any
// request that fails or answers other than 200 fails t.
func loseOneUnderLoad(t *testing.T, base string, c *http.Client, seen func(body string), lose func(), ready ...func() bool) {
	t.Helper()
	var failures, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", base+"/", nil)
				req.Host = "app.localhost"
				resp, err := c.Do(req)
				if err != nil {
					failures.Add(1)
					t.Errorf("request error: %v", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					t.Errorf("got %d %q", resp.StatusCode, body)
				}
				if seen != nil {
					seen(string(body))
				}
				served.Add(1)
			}
		}()
	}
	waitFor(t, "some traffic", func() bool {
		for _, r := range ready {
			if !r() {
				return false
			}
		}
		return served.Load() > 100
	})
	lose()
	at := served.Load()
	waitFor(t, "traffic after the loss", func() bool { return served.Load() > at+300 })
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d requests failed", n)
	}
}

// TestRedialLoneInstance: an app with one instance that refuses a
// connection (a burst overflowed its listen backlog, or it is restarting)
// gets one more try after a pause instead of an immediate 502.
func TestRedialLoneInstance(t *testing.T) {
	addr := namedBackend(t, "lone")
	var dials atomic.Int64
	tr := NewTransport()
	inner := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return inner(ctx, network, a)
	}
	_, base, c := newTestGatewayWith(t, Options{Logger: testLogger(t), Transport: tr}, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute},
		Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}})
	status, body, _ := get(t, c, base, "POST", "app.localhost", "/", strings.NewReader("payload"))
	if status != 200 || !strings.Contains(body, "lone") {
		t.Fatalf("got %d %q, want 200 from the only instance on the second dial", status, body)
	}
	if got := dials.Load(); got != 2 {
		t.Errorf("dials: got %d, want 2", got)
	}
}
