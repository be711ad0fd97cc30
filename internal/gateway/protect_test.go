package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestChunkedBodyBuffered checks that a chunked request body reaches the
// app with a Content-Length, and that a malformed one never reaches it.
func TestChunkedBodyBuffered(t *testing.T) {
	got := make(chan string, 4)
	app := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%d %v %s", r.ContentLength, r.TransferEncoding, b)
	}))
	_, base, _ := newTestGateway(t, Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}})
	addr := strings.TrimPrefix(base, "http://")

	send := func(raw string) *http.Response {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := send("POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if g := <-got; g != "5 [] hello" {
		t.Errorf("app saw %q, want a 5-byte body with a Content-Length", g)
	}
	resp = send("POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
	if resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Errorf("bad chunk: status %d close %v, want 400 and a closed connection", resp.StatusCode, resp.Close)
	}
	select {
	case g := <-got:
		t.Errorf("a malformed body reached the app: %q", g)
	default:
	}
}

// TestBodyLimit refuses bodies over MaxBodyBytes with 413 and a closed
// connection, announced by Content-Length or found while buffering a
// chunked body; bodies at the limit pass.
func TestBodyLimit(t *testing.T) {
	app, seen := echoBackend(t)
	_, base, _ := newTestGatewayWith(t, Options{Logger: testLogger(t), MaxBodyBytes: 8}, GuardOptions{},
		Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}})
	addr := strings.TrimPrefix(base, "http://")
	tests := []struct {
		name, raw string
		want      int
	}{
		{"length at limit", "POST /x HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 8\r\n\r\n12345678", 200},
		{"length over", "POST /x HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 9\r\n\r\n123456789", 413},
		{"chunked over", "POST /x HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, br := rawConn(t, addr)
			io.WriteString(c, tt.raw)
			code, _, closing := readAnswer(t, br)
			if code != tt.want || (tt.want == 413) != closing {
				t.Errorf("status %d, close %v; want %d", code, closing, tt.want)
			}
			if tt.want == 200 {
				<-seen
			}
		})
	}
	select {
	case got := <-seen:
		t.Errorf("a body over the limit reached the app: %q", got)
	default:
	}
}

// TestRateLimit checks the per-client and per-app bounds: a burst of one
// second's worth passes, the next request gets 429 with Retry-After, other
// apps are not affected, and removing the limit lifts it.
func TestRateLimit(t *testing.T) {
	app, _ := echoBackend(t)
	g, base, c := newTestGateway(t,
		Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}},
		Route{App: "other", Hosts: []string{"other.localhost"}, Backends: []string{app}})
	// A rate this low refills nothing while the test runs.
	g.SetRateLimit("app", RateLimit{PerIP: 0.001})
	if code, _, _ := get(t, c, base, "GET", "app.localhost", "/", nil); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	code, body, resp := get(t, c, base, "GET", "app.localhost", "/", nil)
	if code != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "too many requests") {
		t.Fatalf("second request: %d %q Retry-After %q, want 429 with Retry-After", code, body, resp.Header.Get("Retry-After"))
	}
	if code, _, _ := get(t, c, base, "GET", "other.localhost", "/", nil); code != 200 {
		t.Errorf("another app: %d, want 200", code)
	}

	// The app-wide bound: 3 per second allows a burst of 3.
	g.SetRateLimit("app", RateLimit{Requests: 3})
	var codes []int
	for range 4 {
		code, _, _ := get(t, c, base, "GET", "app.localhost", "/", nil)
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 200 200 429]" {
		t.Errorf("app-wide bound of 3/s: statuses %v, want [200 200 200 429]", codes)
	}

	g.SetRateLimit("app", RateLimit{})
	if code, _, _ := get(t, c, base, "GET", "app.localhost", "/", nil); code != 200 {
		t.Errorf("after removing the limit: %d", code)
	}
}

func TestLimiterForgetsClients(t *testing.T) {
	l := newLimiter(RateLimit{PerIP: 1000})
	now := time.Now()
	for i := range maxClients + 10 {
		if d := l.wait(fmt.Sprint(i), now); d > 0 {
			t.Fatalf("client %d limited on its first request", i)
		}
	}
	if n := len(l.clients); n > maxClients {
		t.Errorf("limiter remembers %d clients, want at most %d", n, maxClients)
	}
}

// TestAccessLog checks the access log line of a proxied request.
func TestAccessLog(t *testing.T) {
	app, _ := echoBackend(t)
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	_, base, c := newTestGatewayWith(t, Options{Logger: testLogger(t), AccessLog: log}, GuardOptions{},
		Route{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}})
	get(t, c, base, "POST", "app.localhost", "/path", strings.NewReader("hello"))
	// The line is written once the response is out.
	waitFor(t, "the access log line", func() bool { return strings.HasSuffix(buf.String(), "\n") })
	var line map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &line); err != nil {
		t.Fatalf("access log %q: %v", buf.String(), err)
	}
	want := map[string]any{"msg": "request", "app": "app", "method": "POST", "path": "/path", "status": 200.0,
		"bytes": float64(len("POST /path len=5 hello")), "cache": "", "client": "127.0.0.1"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, line[k], v, buf.String())
		}
	}
	if d, ok := line["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration = %v", line["duration"])
	}
	if id, _ := line["id"].(string); id == "" {
		t.Errorf("no request id in %s", buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a handler's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
