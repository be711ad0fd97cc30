package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"pier/internal/httpcache"
)

// TestClientGone: a client that closes its connection while the app works
// on its request has the app's connection cut within two sweeps — the
// app's request context ends, as behind net/http or nginx — and the
// request is logged with status 499: without a cache, through the cache's
// fill, and on the cache's pass path (and behind net/http, whose request
// context ends). A client that waits gets its answer
// however slow, and bytes it pipelined are not taken for its leaving.
func TestClientGone(t *testing.T) {
	started := make(chan string, 16)
	canceled := make(chan string, 16)
	backend := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain")
		q := r.URL.Query()
		if q.Get("now") != "" {
			io.WriteString(w, "now")
			return
		}
		started <- r.URL.Path
		if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
			time.Sleep(d)
			io.WriteString(w, "slow answer")
			return
		}
		select {
		case <-r.Context().Done():
			canceled <- r.URL.Path
		case <-time.After(10 * time.Second):
		}
	}))
	// gateway routes app.test to the app and reports the statuses its
	// Observe hook is told.
	gateway := func(t *testing.T, cache bool) (*Gateway, chan int) {
		statuses := make(chan int, 16)
		opts := Options{Logger: testLogger(t), Observe: func(app string, status int, bytes int64, d time.Duration, cache string) {
			statuses <- status
		}}
		if cache {
			opts.Cache = testCache{httpcache.New(httpcache.Options{})}
		}
		g := New(opts)
		g.SetRoutes([]Route{{App: "app", Hosts: []string{"app.test"}, Backends: []string{backend}}})
		return g, statuses
	}
	// start serves gateway's behind Front.
	start := func(t *testing.T, cache bool) (string, chan int) {
		g, statuses := gateway(t, cache)
		addr, _ := startFront(t, g, g)
		return addr, statuses
	}
	status := func(t *testing.T, statuses chan int) int {
		t.Helper()
		select {
		case s := <-statuses:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no request observed")
			return 0
		}
	}
	leave := func(t *testing.T, addr, path string, statuses chan int) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: app.test\r\n\r\n")
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the request did not reach the app")
		}
		c.Close()
		select {
		case <-canceled:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the app's request went on after its client left", path)
		}
		if s := status(t, statuses); s != statusClientClosed {
			t.Errorf("%s: logged %d, want %d", path, s, statusClientClosed)
		}
	}
	t.Run("no cache", func(t *testing.T) {
		addr, statuses := start(t, false)
		leave(t, addr, "/hang", statuses)
	})
	t.Run("cache fill", func(t *testing.T) {
		addr, statuses := start(t, true)
		leave(t, addr, "/hang", statuses) // a key the cache has not seen
	})
	t.Run("cache pass", func(t *testing.T) {
		addr, statuses := start(t, true)
		if resp, body, c, _ := roundTrip(t, addr, "GET /hang?now=1 HTTP/1.1\r\nHost: app.test\r\n\r\n"); resp.StatusCode != 200 || string(body) != "now" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		} else {
			c.Close()
		}
		status(t, statuses) // /hang is marked: passed from now on
		leave(t, addr, "/hang", statuses)
	})
	t.Run("net/http", func(t *testing.T) {
		// Not Front: the request's context ends when its client leaves.
		g, statuses := gateway(t, false)
		leave(t, startBackend(t, g), "/hang", statuses)
	})
	t.Run("waits", func(t *testing.T) {
		addr, statuses := start(t, true)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// A slow request with the next one pipelined behind it: the
		// sweeps find bytes to read, not the connection's end.
		io.WriteString(c, "GET /slow?sleep=1500ms HTTP/1.1\r\nHost: app.test\r\n\r\nGET /slow?now=1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
		br := bufio.NewReader(c)
		for _, want := range []string{"slow answer", "now"} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
			}
			if s := status(t, statuses); s != 200 {
				t.Errorf("logged %d", s)
			}
		}
		<-started
	})
	select {
	case p := <-canceled:
		t.Errorf("%s canceled", p)
	default:
	}
}
