package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"pier/internal/httpcache"
)

// startFront serves h with the gateway's loop in front of an http.Server,
// behind Guard, as the engine does. It returns the address and a counter
// of the requests the loop (not net/http) served.
func startFront(t *testing.T, g *Gateway, h http.Handler) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var fronted atomic.Int64
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*frontWriter); ok {
			fronted.Add(1)
		}
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: counted, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 32 << 10}
	fl := g.Front(Guard(ln, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}), counted,
		FrontOptions{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, Logger: testLogger(t)})
	go srv.Serve(fl)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &fronted
}

// frontApp serves app as the app of app.localhost, through a gateway
// behind Front (startFront).
func frontApp(t *testing.T, app http.Handler) (string, *atomic.Int64) {
	t.Helper()
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{startBackend(t, app)}}})
	return startFront(t, g, g)
}

// roundTrip writes raw on a new connection and reads one response.
func roundTrip(t *testing.T, addr, raw string) (*http.Response, []byte, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, raw)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(raw)[0]})
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the answer to %q: %v", raw, err)
	}
	return resp, body, c, br
}

// TestFrontServes: requests of the common shape are served by the loop
// and reach the app as they would through net/http.
func TestFrontServes(t *testing.T) {
	echo := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Request-Id", "set-by-the-app")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "dropped")
		json.NewEncoder(w).Encode(map[string]string{
			"method": r.Method, "uri": r.RequestURI, "host": r.Host, "body": string(body),
			"xff": r.Header.Get("X-Forwarded-For"), "xfh": r.Header.Get("X-Forwarded-Host"),
			"xfp": r.Header.Get("X-Forwarded-Proto"), "id": r.Header.Get("X-Request-Id"),
			"cl": fmt.Sprint(r.ContentLength), "hop": r.Header.Get("Keep-Alive") + r.Header.Get("X-Client-Hop"),
		})
	}))
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{echo}}})
	addr, fronted := startFront(t, g, g)

	tests := []struct {
		name, raw string
		want      map[string]string
	}{
		{"get", "GET /a/b?x=1 HTTP/1.1\r\nHost: app.localhost:8080\r\n\r\n",
			map[string]string{"method": "GET", "uri": "/a/b?x=1", "host": "app.localhost:8080", "xff": "127.0.0.1", "xfh": "app.localhost:8080", "xfp": "http", "cl": "0"}},
		{"post body", "POST /form HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\n\r\nhello",
			map[string]string{"method": "POST", "body": "hello", "cl": "5"}},
		{"empty post", "POST /x HTTP/1.1\r\nHost: app.localhost\r\n\r\n",
			map[string]string{"method": "POST", "body": "", "cl": "0"}},
		{"forwarded for", "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n",
			map[string]string{"xff": "203.0.113.7, 127.0.0.1", "xfp": "http"}},
		{"client id", "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Request-Id: abc-123\r\n\r\n",
			map[string]string{"id": "abc-123"}},
		{"hop-by-hop", "GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n\r\n",
			map[string]string{"hop": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fronted.Load()
			resp, body, _, _ := roundTrip(t, addr, tt.raw)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d %q", resp.StatusCode, body)
			}
			if fronted.Load() != before+1 {
				t.Errorf("not served by the loop")
			}
			var got map[string]string
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("%v: %q", err, body)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: got %q, want %q", k, got[k], v)
				}
			}
			if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] != got["id"] {
				t.Errorf("response X-Request-Id %q, app saw %q", ids, got["id"])
			}
			if resp.Header.Get("X-Hop") != "" {
				t.Errorf("a field the app's Connection named was passed on")
			}
			if resp.ContentLength != int64(len(body)) || resp.Header.Get("Date") == "" {
				t.Errorf("Content-Length %d for %d bytes, Date %q", resp.ContentLength, len(body), resp.Header.Get("Date"))
			}
		})
	}
}

// TestFrontHandsOff: whatever is not of the common shape goes to net/http,
// which answers it as it always did: refusals included.
func TestFrontHandsOff(t *testing.T) {
	addr, fronted := frontApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d %q", r.Method, r.ContentLength, body)
	}))
	big := strings.Repeat("a", 5000)
	huge := strings.Repeat("a", 40<<10)
	tests := []struct {
		name, raw string
		status    int
		body      string // "" = not checked
		closed    bool
	}{
		{"chunked", "POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, `POST 3 "abc"`, false},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "", true},
		{"two CL", "POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "", true},
		{"bad chunk", "POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, "", true},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: app.localhost\r\n\r\n", 200, `GET 0 ""`, true},
		{"bare LF", "GET / HTTP/1.1\nHost: app.localhost\n\n", 200, `GET 0 ""`, false},
		{"big head", "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: " + big + "\r\n\r\n", 200, `GET 0 ""`, false},
		{"huge head", "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: " + huge + "\r\n\r\n", 431, "", true},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400, "", true},
		{"two hosts", "GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: other\r\n\r\n", 400, "", true},
		{"space before colon", "GET / HTTP/1.1\r\nHost : app.localhost\r\n\r\n", 400, "", true},
		{"bad target", "GET /%zz HTTP/1.1\r\nHost: app.localhost\r\n\r\n", 400, "", true},
		{"expect", "POST / HTTP/1.1\r\nHost: app.localhost\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", 100, "", false},
		{"large body", "POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("b", 70000), 200, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fronted.Load()
			resp, body, c, br := roundTrip(t, addr, tt.raw)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			if fronted.Load() != before {
				t.Errorf("served by the loop")
			}
			if !tt.closed {
				return
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
			if _, err := http.ReadResponse(br, nil); err == nil {
				t.Errorf("the connection stayed open")
			}
		})
	}

	// A connection handed over keeps working, its later requests included.
	_, _, c, br := roundTrip(t, addr, "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: "+big+"\r\n\r\n")
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("second request on a handed-over connection: %v", err)
	}
}

// TestFrontKeepAliveAndPipelining: one connection carries many requests,
// pipelined ones answered in order; Connection: close ends it.
func TestFrontKeepAliveAndPipelining(t *testing.T) {
	addr, fronted := frontApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) }))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var raw strings.Builder
	for i := range 10 {
		fmt.Fprintf(&raw, "GET /%d HTTP/1.1\r\nHost: app.localhost\r\n\r\n", i)
	}
	raw.WriteString("GET /last HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n")
	io.WriteString(c, raw.String())
	br := bufio.NewReader(c)
	for i := range 11 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		want := fmt.Sprintf("/%d", i)
		if i == 10 {
			want = "/last"
			if !resp.Close {
				t.Errorf("no Connection: close on the last response")
			}
		}
		if string(body) != want {
			t.Fatalf("response %d: %q, want %q", i, body, want)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: %v, want EOF", err)
	}
	if n := fronted.Load(); n != 11 {
		t.Errorf("the loop served %d requests, want 11", n)
	}
}

// TestFrontWaitsWithoutLosing: between requests the loop waits for the
// socket's next edge instead of reading first (netwait), and the
// forwarder waits so for the app's answer. Whatever way the bytes come —
// a pipelined burst larger than the read buffer, lockstep, a head split
// across writes with pauses, one byte at a time, an app slow to answer —
// every request is answered, and none waits for a deadline.
func TestFrontWaitsWithoutLosing(t *testing.T) {
	addr, fronted := frontApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(30 * time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Each step has this long; a lost wake-up would wait for the minute
	// of idle timeout instead.
	const step = 5 * time.Second
	br := bufio.NewReader(c)
	expect := func(want string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(step))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("waiting for the answer to %s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Fatalf("answer %q, want %q", body, want)
		}
	}
	req := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: app.localhost\r\n\r\n" }
	served := 0

	// A burst of three read buffers' worth of 64-byte requests: the first
	// read fills the buffer with whole requests, and more are left in the
	// socket with no edge to come; then the same with 41-byte requests,
	// which straddle the buffer's end.
	for _, pad := range []string{"X: 0123456789abcde\r\n", ""} {
		var burst strings.Builder
		n := 0
		for burst.Len() < 3*frontBufSize {
			r := fmt.Sprintf("GET /b%04d HTTP/1.1\r\nHost: app.localhost\r\n%s\r\n", n, pad)
			if pad != "" && len(r) != 64 {
				t.Fatalf("request of %d bytes, want 64", len(r))
			}
			burst.WriteString(r)
			n++
		}
		io.WriteString(c, burst.String())
		for i := range n {
			expect(fmt.Sprintf("/b%04d", i))
		}
		served += n
	}
	// Lockstep, with the app slow now and then.
	for i := range 200 {
		path := fmt.Sprintf("/l%d", i)
		if i%50 == 0 {
			path = "/slow"
		}
		io.WriteString(c, req(path))
		expect(path)
	}
	served += 200
	// A head in pieces with pauses between them, then byte by byte.
	for _, cut := range []int{5, 20, len(req("/split")) - 2} {
		r := req("/split")
		io.WriteString(c, r[:cut])
		time.Sleep(20 * time.Millisecond)
		io.WriteString(c, r[cut:])
		expect("/split")
		served++
	}
	for _, b := range []byte(req("/bytes")) {
		c.Write([]byte{b})
		time.Sleep(time.Millisecond)
	}
	expect("/bytes")
	served++
	// Two requests in one write after a pause, then the last in lockstep.
	time.Sleep(20 * time.Millisecond)
	io.WriteString(c, req("/p1")+req("/p2"))
	expect("/p1")
	expect("/p2")
	io.WriteString(c, req("/end"))
	expect("/end")
	served += 3
	if n := fronted.Load(); n != int64(served) {
		t.Errorf("the loop served %d requests, want %d", n, served)
	}
}

// TestFrontFraming: the loop's ResponseWriter frames what handlers write as
// net/http does.
func TestFrontFraming(t *testing.T) {
	handlers := map[string]http.HandlerFunc{
		"small": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hi</html>") },
		"large": func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", 10000)) },
		"empty": func(w http.ResponseWriter, r *http.Request) {},
		"typed": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "a/b")
			w.Write([]byte("{}"))
		},
		"notype": func(w http.ResponseWriter, r *http.Request) { w.Header()["Content-Type"] = nil; w.Write([]byte("<p>")) },
		"length": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5000")
			io.WriteString(w, strings.Repeat("y", 5000))
		},
		"204": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) },
		"304": func(w http.ResponseWriter, r *http.Request) { w.Header().Set("ETag", `"a"`); w.WriteHeader(304) },
		"418": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(418); io.WriteString(w, "tea") },
		"799": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(799) },
		"flush": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		},
		"trailer": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "7")
		},
		"close": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		},
		"early": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(103)
			io.WriteString(w, "final")
		},
	}
	mux := http.NewServeMux()
	for name, h := range handlers {
		mux.Handle("/"+name, h)
	}
	ref := httptest.NewServer(mux)
	defer ref.Close()
	g := New(Options{Logger: testLogger(t)})
	addr, fronted := startFront(t, g, mux)

	type answer struct {
		Status  int
		Body    string
		Length  int64
		TE      []string
		Type    string
		Close   bool
		Trailer http.Header
		Headers []string
	}
	fetch := func(addr, method, path string) answer {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n", method, path)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		var names []string
		for k := range resp.Header {
			if k != "Date" {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		return answer{resp.StatusCode, string(b), resp.ContentLength, resp.TransferEncoding, resp.Header.Get("Content-Type"), resp.Close, resp.Trailer, names}
	}
	refAddr := ref.Listener.Addr().String()
	for name := range handlers {
		for _, method := range []string{"GET", "HEAD"} {
			t.Run(name+" "+method, func(t *testing.T) {
				want := fetch(refAddr, method, "/"+name)
				got := fetch(addr, method, "/"+name)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("loop:\n %+v\nnet/http:\n %+v", got, want)
				}
			})
		}
	}
	if fronted.Load() == 0 {
		t.Errorf("the loop served nothing")
	}
}

// TestFrontStreamingAndWebsocket: a streamed response goes out as it comes
// and a websocket (handed to net/http) works, both through the loop's
// listener.
func TestFrontStreamingAndWebsocket(t *testing.T) {
	release := make(chan struct{})
	addr := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			conn, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer conn.CloseNow()
			typ, msg, err := conn.Read(r.Context())
			if err == nil {
				conn.Write(r.Context(), typ, append([]byte("echo: "), msg...))
			}
			conn.Close(websocket.StatusNormalClosure, "")
			return
		}
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "b")
	}))
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{addr}}})
	front, _ := startFront(t, g, g)

	c, err := net.Dial("tcp", front)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if first, err := br.ReadByte(); err != nil || first != 'a' {
		close(release)
		t.Fatalf("first byte %q, %v; want 'a' before the rest is sent", first, err)
	}
	if n := g.Outstanding(addr); n != 1 {
		t.Errorf("Outstanding while streaming = %d, want 1", n)
	}
	close(release)
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "b" {
		t.Fatalf("rest %q, %v", rest, err)
	}
	waitFor(t, "Outstanding to drop to 0", func() bool { return g.Outstanding(addr) == 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+front+"/ws", &websocket.DialOptions{Host: "app.localhost"})
	if err != nil {
		t.Fatalf("websocket through the loop's listener: %v", err)
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "echo: hi" {
		t.Fatalf("websocket echo %q, %v", msg, err)
	}
}

// FuzzFrontParse: a head the loop accepts is read the same way by
// net/http; anything else is left to net/http.
func FuzzFrontParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a.b:80\r\nContent-Length: 3\r\nX: 1\r\nX: 2\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\ncookie: a=b\r\n\r\n",
		"GET //x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nHost: a\r\nA-B_c: \x80\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	fc := &frontConn{f: &front{}, remote: "127.0.0.1:1"}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), frontBufSize)
		n, ok, _ := readHead(br, nil)
		if !ok {
			return
		}
		head, _ := br.Peek(n)
		r := fc.parseRequest(head)
		if r == nil {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("the loop accepts %q, net/http refuses it: %v", head, err)
		}
		if r.Method != want.Method || r.RequestURI != want.RequestURI || r.Host != want.Host ||
			r.ContentLength != want.ContentLength || r.Close != want.Close || !reflect.DeepEqual(r.URL, want.URL) {
			t.Fatalf("%q: loop %s %s host %q cl %d close %v; net/http %s %s host %q cl %d close %v", head,
				r.Method, r.URL, r.Host, r.ContentLength, r.Close, want.Method, want.URL, want.Host, want.ContentLength, want.Close)
		}
		if !reflect.DeepEqual(r.Header, want.Header) {
			t.Fatalf("%q: header %q, net/http %q", head, r.Header, want.Header)
		}
	})
}

// TestFrontShutdown: http.Server.Shutdown closes the loop's listener and
// idle connections, and lets a response under way finish.
func TestFrontShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	app := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}))
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: g}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(g.Front(ln, g, FrontOptions{ReadHeaderTimeout: 10 * time.Second})) }()
	addr := ln.Addr().String()

	// An idle keep-alive connection, and one with a response under way.
	_, _, idle, idleBr := roundTrip(t, addr, "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busy.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
	<-started

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if _, err := idleBr.ReadByte(); err == nil {
		t.Errorf("the idle connection got data, want it closed")
	}
	_ = idle
	waitFor(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the response under way: %v", err)
	}
	if body, _ := io.ReadAll(resp.Body); string(body) != "done" {
		t.Errorf("body %q, want done", body)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v, want ErrServerClosed", err)
	}
}

// TestFrontSlowHead: a head that does not arrive within ReadHeaderTimeout
// loses its connection, on a new connection and on a kept-alive one.
func TestFrontSlowHead(t *testing.T) {
	app := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	g := New(Options{Logger: testLogger(t)})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: g}
	go srv.Serve(g.Front(ln, g, FrontOptions{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute}))
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	for _, first := range []string{"", "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if first != "" {
			io.WriteString(c, first)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHo") // and nothing more
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after a partial head (first request %v): %v, want EOF", first == "", err)
		}
	}
}

// TestFrontReusesHeader: Front takes the header map of a request the
// forwarder is done with for the next request on the connection (with and
// without the cache in front, whose pass-through goes to the forwarder
// too): the app sees each request's fields and no others, and a request
// id of its own, the one its client gets back.
func TestFrontReusesHeader(t *testing.T) {
	type seen struct{ fields, id, target string }
	got := make(chan seen, 16)
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for k := range r.Header {
			if strings.HasPrefix(k, "X-") && k != "X-Request-Id" && !strings.HasPrefix(k, "X-Forwarded-") {
				names = append(names, k+"="+strings.Join(r.Header[k], ","))
			}
		}
		slices.Sort(names)
		got <- seen{strings.Join(names, " "), r.Header.Get("X-Request-Id"), r.URL.RequestURI()}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok")
	}))
	for _, cached := range []bool{false, true} {
		opts := Options{Logger: testLogger(t)}
		if cached {
			opts.Cache = testCache{httpcache.New(httpcache.Options{})}
		}
		g := New(opts)
		g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}}})
		c := dialFront(t, serveFront(t, g, g))
		reqs := []struct{ fields, want string }{
			{"X-One: 1\r\nX-Two: 2\r\n", "X-One=1 X-Two=2"},
			{"X-Three: 3\r\n", "X-Three=3"},
			{"", ""},
			{"X-One: a\r\nX-One: b\r\n", "X-One=a,b"},
			{"X-Request-Id: client-id\r\nX-Four: 4\r\n", "X-Four=4"},
			{"X-Five: 5\r\n", "X-Five=5"},
		}
		ids := map[string]bool{}
		for i, rq := range reqs {
			target := "/r" // one key: the cache marks it pass, then lets it through
			if !cached {
				target = fmt.Sprintf("/r%d?q=%d", i, i)
			}
			w := c.send(t, "GET "+target+" HTTP/1.1\r\nHost: app.test\r\n"+rq.fields+"\r\n")
			s := <-got
			if s.target != target {
				t.Errorf("cache %v, request %d: app got %q, want %q", cached, i, s.target, target)
			}
			if s.fields != rq.want {
				t.Errorf("cache %v, request %d: app saw %q, want %q", cached, i, s.fields, rq.want)
			}
			if id := w[0].field("X-Request-Id"); id != s.id || ids[id] || !saneID(id) {
				t.Errorf("cache %v, request %d: client got id %q, app %q (seen before: %v)", cached, i, id, s.id, ids[id])
			}
			ids[s.id] = true
			if strings.Contains(rq.fields, "client-id") != (s.id == "client-id") {
				t.Errorf("cache %v, request %d: app got id %q", cached, i, s.id)
			}
		}
	}
}

// TestFrontIdleAfterObserved: with an Observe hook, whose clock reading
// at the end of a response Front's idle deadline and the Guard's write
// deadline take instead of reading the clock again, an idle keep-alive
// connection is still closed once IdleTimeout passes, after proxied
// responses and cached hits alike, and one busy before it stays open.
func TestFrontIdleAfterObserved(t *testing.T) {
	app := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cached" {
			w.Header().Set("Cache-Control", "max-age=600")
		}
		io.WriteString(w, "ok")
	}))
	var observed atomic.Int64
	g := New(Options{
		Logger:  testLogger(t),
		Cache:   testCache{httpcache.New(httpcache.Options{})},
		Observe: func(string, int, int64, time.Duration, string) { observed.Add(1) },
	})
	g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.localhost"}, Backends: []string{app}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: g}
	const idle = 300 * time.Millisecond
	go srv.Serve(g.Front(Guard(ln, GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}), g,
		FrontOptions{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle, Logger: testLogger(t)}))
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	for _, path := range []string{"/", "/cached", "/cached"} { // pass, miss, hit
		c := dialFront(t, addr)
		for range 3 {
			if w := c.send(t, "GET "+path+" HTTP/1.1\r\nHost: app.localhost\r\n\r\n"); !strings.HasPrefix(w[0].status, "HTTP/1.1 200") {
				t.Fatalf("%s: %q", path, w[0].status)
			}
		}
		began := time.Now()
		if _, err := c.br.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("%s: the idle connection gave %v, want it closed", path, err)
		}
		if waited := time.Since(began); waited < idle-idleSlack(idle) {
			t.Errorf("%s: closed after %v idle, before IdleTimeout %v", path, waited, idle)
		}
	}
	if observed.Load() != 9 {
		t.Errorf("observed %d responses, want 9", observed.Load())
	}
}

// FuzzParseFromHit: a request whose fields the hit path read (and left to
// ServeHTTP) is the request parseRequest makes reading them itself.
func FuzzParseFromHit(f *testing.F) {
	for _, s := range []string{
		"Host: a\r\n\r\n",
		"Host: a\r\nX-Request-Id: x\r\nAccept-Encoding: gzip, br\r\nx-a: 1\r\nX-A: 2\r\n\r\n",
		"host: A:80\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"Host: a\r\nX: \t v \t\r\nuser-agent: wrk\r\n\r\n",
	} {
		f.Add("/p?q=1", s)
	}
	fc := &frontConn{f: &front{}, remote: "127.0.0.1:1"}
	f.Fuzz(func(t *testing.T, target, fields string) {
		raw := []byte("GET " + target + " HTTP/1.1\r\n" + fields)
		n := len("GET " + target + " HTTP/1.1\r\n")
		kept, host, _, closeAfter, ok := hitFields(fields, nil)
		if !ok {
			return
		}
		want := fc.parseRequest(raw)
		fc.hit.n, fc.hit.kept, fc.hit.host, fc.hit.closeAfter = len(raw), kept, host, closeAfter
		got := fc.parseRequest(raw)
		if got != nil && (fc.hit.n != 0 || fc.hit.kept != nil) {
			t.Fatalf("%q: the hit path's fields not taken", raw)
		}
		fc.hit.n, fc.hit.kept = 0, nil
		if (got == nil) != (want == nil) {
			t.Fatalf("%q: request %v, read anew %v", raw, got, want)
		}
		if got == nil {
			return
		}
		if got.Method != want.Method || got.URL.String() != want.URL.String() || got.Host != want.Host ||
			got.ContentLength != want.ContentLength || got.Close != want.Close || !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("%q (%d): %s %s %q %d %v %v, read anew %s %s %q %d %v %v", raw, n,
				got.Method, got.URL, got.Host, got.ContentLength, got.Close, got.Header,
				want.Method, want.URL, want.Host, want.ContentLength, want.Close, want.Header)
		}
	})
}

// BenchmarkParseRequest: the hit path's reading of a browser-like GET's
// fields, then Front's parse of the request, reading the fields again or
// taking those the hit path read.
func BenchmarkParseRequest(b *testing.B) {
	fields := "Host: app.localhost\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n\r\n"
	raw := []byte("GET /hello HTTP/1.1\r\n" + fields)
	fc := &frontConn{f: &front{}, remote: "127.0.0.1:1"}
	for _, fromHit := range []bool{false, true} {
		b.Run(map[bool]string{false: "anew", true: "fromHit"}[fromHit], func(b *testing.B) {
			b.ReportAllocs()
			var spare http.Header
			for b.Loop() {
				// The hit path reads them either way.
				kept, host, _, closeAfter, _ := hitFields(fields, fc.hit.fields[:0])
				fc.hit.fields = kept[:0]
				if fromHit {
					fc.hit.n, fc.hit.kept, fc.hit.host, fc.hit.closeAfter = len(raw), kept, host, closeAfter
				}
				fc.spare = spare
				r := fc.parseRequest(raw)
				spare = r.Header
			}
		})
	}
}
