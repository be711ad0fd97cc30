package e2e

import (
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// goneApp answers /hang only after 20 s, unless the connection pier opened
// for the request ends first: /seen reports that a /hang began ("hanging")
// and that the app saw its connection end ("closed").
const goneApp = `import select, socket, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import os

seen = []

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hang":
            seen.append("hanging")
            deadline = time.time() + 20
            while time.time() < deadline:
                r, _, _ = select.select([self.connection], [], [], 0.05)
                if r and self.connection.recv(1, socket.MSG_PEEK) == b"":
                    seen.append("closed")
                    return
            body = b"late"
        elif self.path == "/seen":
            body = (",".join(seen) or "none").encode()
        else:
            body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`

// TestClientGone: through the real engine, a client that closes its
// connection while the app works on its request has pier close the app's
// connection for it within about a second (the app sees the end of its
// request's connection) and the access log records status 499.
func TestClientGone(t *testing.T) {
	e := startEngine(t, "--access-log")
	e.must(writeApp(t, map[string]string{
		"pier.yaml": "name: gone\nprocesses:\n  web: python3 app.py\n",
		"app.py":    goneApp,
	}), "deploy")
	if code, body := e.get("gone", "/seen"); code != 200 || body != "none" {
		t.Fatalf("/seen: %d %q", code, body)
	}
	c, err := net.Dial("tcp", e.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /hang HTTP/1.1\r\nHost: gone.localhost\r\n\r\n")
	waitFor(t, 10*time.Second, "the request reaches the app", func() bool {
		_, body := e.get("gone", "/seen")
		return body == "hanging"
	})
	c.Close()
	left := time.Now()
	waitFor(t, 10*time.Second, "the app sees its request's connection end", func() bool {
		_, body := e.get("gone", "/seen")
		return body == "hanging,closed"
	})
	t.Logf("the app saw the end %v after the client left", time.Since(left).Round(10*time.Millisecond))
	waitFor(t, 10*time.Second, "the access log's 499", func() bool {
		b, _ := os.ReadFile(e.logPath)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "part=access") && strings.Contains(line, "path=/hang") {
				return strings.Contains(line, "status=499")
			}
		}
		return false
	})
}
