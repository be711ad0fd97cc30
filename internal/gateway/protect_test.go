package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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
