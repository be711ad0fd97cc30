package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeWaker starts an app by routing it to addr after a delay, as the
// engine's deploy manager does through the store.
type fakeWaker struct {
	g     *Gateway
	route Route
	addr  string
	calls atomic.Int32
	fail  error
}

func (f *fakeWaker) Wake(ctx context.Context, app string) error {
	f.calls.Add(1)
	if f.fail != nil {
		return f.fail
	}
	select {
	case <-time.After(200 * time.Millisecond): // the instance starts
	case <-ctx.Done():
		return ctx.Err()
	}
	r := f.route
	r.Backends = []string{f.addr}
	f.g.SetRoutes([]Route{r})
	return nil
}

func TestWakeOnFirstRequest(t *testing.T) {
	asleep := Route{App: "blog", Hosts: []string{"blog.localhost"}, Wakeable: true}
	waker := &fakeWaker{route: asleep, addr: namedBackend(t, "awake")}
	g, url, client := newTestGatewayWith(t, Options{Logger: testLogger(t), Waker: waker},
		GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}, asleep)
	waker.g = g
	if !g.LastRequest("blog").IsZero() {
		t.Fatal("LastRequest before any request is not zero")
	}

	// 20 concurrent first requests wait for one start.
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := getCode(t, client, url, "blog.localhost")
			if code != 200 || body != "awake" {
				errs <- body
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a first request failed: %q", e)
	}
	if n := waker.calls.Load(); n != 1 {
		t.Errorf("Wake called %d times, want 1", n)
	}
	if last := g.LastRequest("blog"); time.Since(last) > time.Minute {
		t.Errorf("LastRequest = %v, want about now", last)
	}

	// Asleep again, and the start fails: a 503 that says so, quickly.
	g.SetRoutes([]Route{asleep})
	waker.fail = io.ErrUnexpectedEOF
	if code, body := getCode(t, client, url, "blog.localhost"); code != 503 || !strings.Contains(body, "could not be started") {
		t.Errorf("failed start: %d %q, want 503", code, body)
	}
}

func TestWakeTimeout(t *testing.T) {
	asleep := Route{App: "blog", Hosts: []string{"blog.localhost"}, Wakeable: true}
	never := wakerFunc(func(ctx context.Context, app string) error { <-ctx.Done(); return ctx.Err() })
	_, url, client := newTestGatewayWith(t, Options{Logger: testLogger(t), Waker: never, WakeTimeout: 100 * time.Millisecond},
		GuardOptions{BodyTimeout: time.Minute, SendTimeout: time.Minute}, asleep)
	if code, body := getCode(t, client, url, "blog.localhost"); code != 503 || !strings.Contains(body, "did not start within") {
		t.Errorf("start that never ends: %d %q, want 503", code, body)
	}
}

type wakerFunc func(ctx context.Context, app string) error

func (f wakerFunc) Wake(ctx context.Context, app string) error { return f(ctx, app) }

func TestCanaryShareAndStickiness(t *testing.T) {
	stable, canary := namedBackend(t, "v1"), namedBackend(t, "v2")
	_, url, client := newTestGateway(t, Route{App: "blog", Hosts: []string{"blog.localhost"},
		Backends: []string{stable}, Release: 1, Canary: []string{canary}, CanaryRelease: 2, CanaryWeight: 1000})

	const n = 2000
	got := map[string]int{}
	cookies := map[string]string{}
	for range n {
		resp, body := getResp(t, client, url, "blog.localhost", "")
		got[body]++
		sc := resp.Header.Get("Set-Cookie")
		if !strings.HasPrefix(sc, CanaryCookie+"=") {
			t.Fatalf("new client got no canary cookie: %q", sc)
		}
		cookies[body] = strings.SplitN(sc, ";", 2)[0]
	}
	if share := float64(got["v2"]) / n * 100; share < 8 || share > 12 {
		t.Errorf("canary share %.1f%%, want 10%% (got %v)", share, got)
	}
	for release, cookie := range cookies {
		for range 20 {
			resp, body := getResp(t, client, url, "blog.localhost", "a=b; "+cookie)
			if body != release || resp.Header.Get("Set-Cookie") != "" {
				t.Fatalf("client with %q got %q (Set-Cookie %q), want %q and no new cookie", cookie, body, resp.Header.Get("Set-Cookie"), release)
			}
		}
	}
}

func TestCookieValueDoesNotAllocate(t *testing.T) {
	lines := []string{"a=1; b=2", "x=y; " + CanaryCookie + "=12; z=3"}
	if v := cookieValue(lines, CanaryCookie); v != "12" {
		t.Fatalf("cookieValue = %q, want 12", v)
	}
	if v := cookieValue([]string{"pier_canary_x=1"}, CanaryCookie); v != "" {
		t.Fatalf("cookieValue of another cookie = %q, want empty", v)
	}
	if n := testing.AllocsPerRun(100, func() { cookieValue(lines, CanaryCookie) }); n != 0 {
		t.Errorf("cookieValue allocates %.0f times", n)
	}
}

func getCode(t *testing.T, c *http.Client, url, host string) (int, string) {
	t.Helper()
	resp, body := getResp(t, c, url, host, "")
	return resp.StatusCode, body
}

func getResp(t *testing.T, c *http.Client, url, host, cookie string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Host = host
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, strings.TrimSpace(string(body))
}
