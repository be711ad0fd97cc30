package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tickerApp prints a numbered line every 200 ms beside its web server.
var tickerApp = map[string]string{
	"pier.yaml": "name: ticker\nprocesses:\n  web: python3 app.py\n",
	"app.py": `import os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def tick():
    n = 0
    while True:
        n += 1
        print("tick %d" % n, flush=True)
        time.sleep(0.2)

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass

threading.Thread(target=tick, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
}

// syslogFrame is the RFC 5424 grammar (section 6) of one octet-counted
// frame (RFC 6587): PRI, version, timestamp, hostname, app-name, procid,
// msgid, structured data, message. Structured data is NILVALUE or
// SD-ELEMENTs: "[" SD-ID *(SP PARAM-NAME "=" DQUOTE PARAM-VALUE DQUOTE) "]",
// names of 1-32 printable characters but '=', SP, ']' and '"', values with
// '"', '\' and ']' escaped by a backslash.
var syslogFrame = func() *regexp.Regexp {
	name := `[!#-<>-\\^-~]{1,32}`
	element := `\[` + name + `(?: ` + name + `="(?:[^"\\\]]|\\["\\\]])*")*\]`
	return regexp.MustCompile(`(?s)^<(\d{1,3})>1 (\S+) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) (-|(?:` + element + `)+) (.*)$`)
}()

type syslogListener struct {
	ln    net.Listener
	mu    sync.Mutex
	lines [][]string // submatches of syslogFrame
	bad   []string
}

func listenSyslog(t *testing.T) *syslogListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &syslogListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					head, err := r.ReadString(' ')
					if err != nil {
						return
					}
					n, err := strconv.Atoi(strings.TrimSpace(head))
					if err != nil {
						s.note(nil, "bad length "+head)
						return
					}
					msg := make([]byte, n)
					if _, err := io.ReadFull(r, msg); err != nil {
						return
					}
					s.note(syslogFrame.FindStringSubmatch(string(msg)), string(msg))
				}
			}()
		}
	}()
	return s
}

func (s *syslogListener) note(m []string, raw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m == nil {
		s.bad = append(s.bad, raw)
		return
	}
	s.lines = append(s.lines, m)
}

func (s *syslogListener) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

// TestLogsDrainAndJSON deploys an app, adds a syslog drain with the CLI,
// and checks the app's lines reach a syslog listener as RFC 5424 frames,
// also after an engine restart; pier logs --json and pier drains --json
// print what the engine holds.
func TestLogsDrainAndJSON(t *testing.T) {
	e := startEngine(t)
	sl := listenSyslog(t)
	dir := writeApp(t, tickerApp)
	e.must(dir, "deploy")
	out := e.must(dir, "drains", "add", "syslog+tcp://"+sl.ln.Addr().String())
	if !strings.Contains(out, "Added drain") {
		t.Fatalf("drains add: %q", out)
	}
	waitFor(t, 30*time.Second, "tick lines at the syslog listener", func() bool { return sl.count() >= 3 })
	sl.mu.Lock()
	if len(sl.bad) > 0 {
		t.Errorf("frames that are not RFC 5424: %q", sl.bad)
	}
	for _, m := range sl.lines {
		if m[4] != "ticker" || m[5] != "web.1" || m[6] != "web" || m[1] != "14" || !strings.HasPrefix(m[8], "tick ") ||
			m[7] != `[pier@32473 app="ticker" release="1" process="web" instance="web.1" stream="stdout"]` {
			// pier's own notes about the instance come from the same
			// APP-NAME and PROCID with severity notice.
			if !(m[4] == "ticker" && m[1] == "13" && strings.HasPrefix(m[7], `[pier@32473 app="ticker" `) && strings.HasSuffix(m[7], ` stream="pier"]`)) {
				t.Errorf("frame fields: pri %s app %s procid %s msgid %s structured data %s msg %q", m[1], m[4], m[5], m[6], m[7], m[8])
			}
		}
		if ts, err := time.Parse(time.RFC3339Nano, m[2]); err != nil || time.Since(ts) > time.Minute {
			t.Errorf("timestamp %q: %v", m[2], err)
		}
	}
	sl.mu.Unlock()

	var drains []struct {
		ID   string `json:"id"`
		URL  string `json:"url"`
		Sent int    `json:"sent"`
	}
	if err := json.Unmarshal([]byte(e.must(dir, "drains", "--json")), &drains); err != nil || len(drains) != 1 || drains[0].Sent == 0 {
		t.Fatalf("drains --json: %v %+v", err, drains)
	}
	logs := strings.Split(strings.TrimSpace(e.must(dir, "logs", "--json", "-n", "3", "--grep", "^tick")), "\n")
	for _, l := range logs {
		var line struct{ App, Instance, Text string }
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.App != "ticker" || !strings.HasPrefix(line.Text, "tick") {
			t.Errorf("logs --json line %q: %v", l, err)
		}
	}
	if len(logs) != 3 {
		t.Errorf("logs --json -n 3: %d lines", len(logs))
	}

	// The drain lives in the store: after a restart, lines keep coming.
	e.stop()
	e.start()
	before := sl.count()
	waitFor(t, 60*time.Second, "lines after the restart", func() bool { return sl.count() >= before+3 })

	e.must(dir, "drains", "remove", drains[0].ID)
	if out := e.must(dir, "drains"); !strings.Contains(out, "no log drains") {
		t.Errorf("after remove: %q", out)
	}
}
