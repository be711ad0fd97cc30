package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"pier/internal/store"
)

func startDrains(t *testing.T, st *store.Store, opts DrainOptions) *Drains {
	t.Helper()
	opts.Store = st
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 10 * time.Millisecond
		opts.MaxBackoff = 50 * time.Millisecond
	}
	if opts.Linger == 0 {
		opts.Linger = 20 * time.Millisecond
	}
	d, err := NewDrains(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// syslogServer accepts TCP connections and parses octet-counted RFC 5424
// frames (RFC 6587), as a syslog server would.
type syslogServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []syslogMsg
	errs []string
}

type syslogMsg struct {
	pri                                int
	time                               time.Time
	host, app, procid, msgid, sd, text string
}

// The grammar of RFC 5424 section 6: header fields are NILVALUE or
// PRINTUSASCII of bounded length; STRUCTURED-DATA is NILVALUE or SD-ELEMENTs,
// each "[" SD-ID *(SP PARAM-NAME "=" DQUOTE PARAM-VALUE DQUOTE) "]", names
// being 1-32 printable characters but '=', SP, ']' and '"', and values any
// UTF-8 with '"', '\' and ']' escaped by a backslash.
var (
	sdName     = `[!#-<>-\\^-~]{1,32}`
	sdParam    = sdName + `="((?:[^"\\\]]|\\["\\\]])*)"`
	sdElement  = `\[` + sdName + `(?: ` + sdParam + `)*\]`
	rfc5424    = regexp.MustCompile(`(?s)^<(\d{1,3})>1 (\S+) ([!-~]{1,255}) ([!-~]{1,48}) ([!-~]{1,128}) ([!-~]{1,32}) (-|(?:` + sdElement + `)+) (.*)$`)
	sdElements = regexp.MustCompile(`\[(` + sdName + `)((?: ` + sdParam + `)*)\]`)
	sdParams   = regexp.MustCompile(` (` + sdName + `)="((?:[^"\\\]]|\\["\\\]])*)"`)
	sdUnescape = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\]`, `]`)
)

// parseSD reads STRUCTURED-DATA that matched the grammar: SD-ID -> name ->
// unescaped value.
func parseSD(sd string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if sd == "-" {
		return out, nil
	}
	for _, el := range sdElements.FindAllStringSubmatch(sd, -1) {
		if out[el[1]] != nil {
			return nil, fmt.Errorf("SD-ID %q twice", el[1])
		}
		params := map[string]string{}
		for _, p := range sdParams.FindAllStringSubmatch(el[2], -1) {
			if !utf8.ValidString(p[2]) {
				return nil, fmt.Errorf("PARAM-VALUE %q is not UTF-8", p[2])
			}
			params[p[1]] = sdUnescape.Replace(p[2])
		}
		out[el[1]] = params
	}
	return out, nil
}

func newSyslogServer(t *testing.T) *syslogServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &syslogServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *syslogServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		lenStr, err := r.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
		if err != nil || n <= 0 {
			s.fail(fmt.Sprintf("bad frame length %q", lenStr))
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		m := rfc5424.FindStringSubmatch(string(buf))
		if m == nil {
			s.fail(fmt.Sprintf("not RFC 5424: %q", buf))
			continue
		}
		m = append(m[:8], m[len(m)-1]) // the SD's inner groups are parseSD's
		if _, err := parseSD(m[7]); err != nil {
			s.fail(fmt.Sprintf("structured data of %q: %v", buf, err))
		}
		pri, _ := strconv.Atoi(m[1])
		ts, err := time.Parse(time.RFC3339Nano, m[2])
		if err != nil {
			s.fail(fmt.Sprintf("bad timestamp %q", m[2]))
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, syslogMsg{pri: pri, time: ts, host: m[3], app: m[4], procid: m[5], msgid: m[6], sd: m[7], text: m[8]})
		s.mu.Unlock()
	}
}

func (s *syslogServer) fail(msg string) {
	s.mu.Lock()
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
}

func (s *syslogServer) received() ([]syslogMsg, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]syslogMsg(nil), s.msgs...), append([]string(nil), s.errs...)
}

func TestSyslogDrain(t *testing.T) {
	ctx := context.Background()
	srv := newSyslogServer(t)
	d := startDrains(t, openStore(t), DrainOptions{Hostname: "node-1"})
	dr, err := d.Add(ctx, "blog", "syslog+tcp://"+srv.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the drain to run", func() bool { d.mu.RLock(); defer d.mu.RUnlock(); return len(d.byApp["blog"]) == 1 })
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 678901000, time.UTC)
	d.Send(Line{Time: t0, App: "blog", Release: 3, Process: "web", Instance: "web.2", Stream: "stdout", Text: "hello world\n"})
	d.Send(Line{Time: t0, App: "other", Process: "web", Instance: "web.1", Stream: "stdout", Text: "not for this drain"})
	d.Send(Line{Time: t0, App: "blog", Process: "worker", Instance: "worker.1", Stream: "stderr", Text: "Traceback: ünïcode"})
	waitUntil(t, "two syslog messages", func() bool { m, _ := srv.received(); return len(m) == 2 })
	msgs, errs := srv.received()
	if len(errs) > 0 {
		t.Fatalf("server errors: %q", errs)
	}
	want := []syslogMsg{
		{pri: 14, time: t0, host: "node-1", app: "blog", procid: "web.2", msgid: "web",
			sd: `[pier@32473 app="blog" release="3" process="web" instance="web.2" stream="stdout"]`, text: "hello world"},
		{pri: 11, time: t0, host: "node-1", app: "blog", procid: "worker.1", msgid: "worker",
			sd: `[pier@32473 app="blog" process="worker" instance="worker.1" stream="stderr"]`, text: "Traceback: ünïcode"},
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Errorf("message %d: got %+v, want %+v", i, msgs[i], want[i])
		}
	}
	list, err := d.List(ctx, "blog")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != dr.ID || list[0].Sent != 2 {
		t.Errorf("list: %+v", list)
	}
}

func TestSyslogFormatFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		line Line
		want string // after the timestamp
	}{
		{"empty fields", Line{App: "a", Process: "", Instance: "we b.1", Stream: "pier", Text: "x"},
			` - a we_b.1 - [pier@32473 app="a" process="" instance="we b.1" stream="pier"] x`},
		{"escapes", Line{App: `a"b`, Release: 12, Process: `w]e\b`, Instance: `]"\`, Stream: "stdout", Text: `"]\`},
			` - a"b ]"\ w]e\b [pier@32473 app="a\"b" release="12" process="w\]e\\b" instance="\]\"\\" stream="stdout"] "]\`},
		{"not UTF-8", Line{App: "app", Process: "web", Instance: "web.1\xff", Stream: "stdout", Text: "t"},
			` - app web.1_ web [pier@32473 app="app" process="web" instance="web.1` + "\uFFFD" + `" stream="stdout"] t`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := formatSyslog(tc.line, "")
			_, rest, _ := strings.Cut(got, "Z")
			if rest != tc.want {
				t.Errorf("got  %q\nwant %q", rest, tc.want)
			}
			checkSyslog(t, got, tc.line)
		})
	}
}

// checkSyslog parses msg with the RFC 5424 grammar and checks that its
// structured data gives back l's fields exactly.
func checkSyslog(t *testing.T, msg string, l Line) {
	t.Helper()
	m := rfc5424.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("not RFC 5424: %q", msg)
	}
	sd, err := parseSD(m[7])
	if err != nil {
		t.Fatalf("%q: %v", msg, err)
	}
	want := map[string]string{"app": l.App, "process": l.Process, "instance": l.Instance, "stream": l.Stream}
	if l.Release > 0 {
		want["release"] = strconv.Itoa(l.Release)
	}
	for k, v := range want {
		want[k] = strings.ToValidUTF8(v, "\uFFFD")
	}
	if got := sd["pier@32473"]; len(sd) != 1 || !maps.Equal(got, want) {
		t.Fatalf("%q: structured data %q, want %q", msg, sd, want)
	}
}

// FuzzSyslogFormat checks that every line, whatever its fields hold,
// becomes a message the RFC 5424 grammar accepts, with the fields whole
// in its structured data.
func FuzzSyslogFormat(f *testing.F) {
	f.Add("blog", "web", "web.1", "stdout", "hello", 3)
	f.Add(`a"]\`, "", "] [x=\"y\"]", "pier", "\n", 0)
	f.Fuzz(func(t *testing.T, app, process, instance, stream, text string, release int) {
		l := Line{App: app, Process: process, Instance: instance, Stream: stream, Text: text, Release: release}
		checkSyslog(t, formatSyslog(l, "host"), l)
	})
}

// TestHTTPDrainBatchesAndRecovers posts NDJSON batches; while the
// endpoint fails, lines wait in a bounded buffer (oldest dropped and
// counted) and the same batch is tried again.
func TestHTTPDrainBatchesAndRecovers(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var batches [][]Line
	failing := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
			t.Errorf("content type %q", ct)
		}
		body, _ := io.ReadAll(r.Body)
		var batch []Line
		for _, raw := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			var l Line
			if err := json.Unmarshal(raw, &l); err != nil {
				t.Errorf("not NDJSON: %q", raw)
			}
			batch = append(batch, l)
		}
		if r.Header.Get("X-Pier-Lines") != strconv.Itoa(len(batch)) {
			t.Errorf("X-Pier-Lines %q for %d lines", r.Header.Get("X-Pier-Lines"), len(batch))
		}
		batches = append(batches, batch)
	}))
	defer srv.Close()
	d := startDrains(t, openStore(t), DrainOptions{Buffer: 100, BatchSize: 40})
	if _, err := d.Add(ctx, "blog", srv.URL+"/ingest"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the drain to run", func() bool { d.mu.RLock(); defer d.mu.RUnlock(); return len(d.byApp["blog"]) == 1 })
	for i := range 250 {
		d.Send(Line{App: "blog", Process: "web", Instance: "web.1", Text: fmt.Sprintf("line %d", i)})
	}
	waitUntil(t, "a failed delivery", func() bool { l, _ := d.List(ctx, "blog"); return l[0].LastError != "" })
	list, _ := d.List(ctx, "blog")
	if list[0].Dropped != 150 || list[0].Waiting != 100 || !strings.Contains(list[0].LastError, "503") {
		t.Errorf("while down: %+v", list[0])
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	waitUntil(t, "100 delivered lines", func() bool { l, _ := d.List(ctx, "blog"); return l[0].Sent == 100 })
	mu.Lock()
	defer mu.Unlock()
	var all []string
	for _, b := range batches {
		if len(b) > 40 {
			t.Errorf("a batch of %d lines, the most is 40", len(b))
		}
		for _, l := range b {
			all = append(all, l.Text)
		}
	}
	if len(all) != 100 || all[0] != "line 150" || all[99] != "line 249" {
		t.Errorf("delivered %d lines: first %q", len(all), all[:min(1, len(all))])
	}
	if list, _ := d.List(ctx, "blog"); list[0].LastError != "" {
		t.Errorf("last error kept after recovery: %q", list[0].LastError)
	}
}

// TestDrainsSurviveRestart: drains live in the store; another Drains on
// the same store (the next engine) runs them, and removal stops them.
func TestDrainsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	srv := newSyslogServer(t)
	d1 := startDrains(t, st, DrainOptions{})
	dr, err := d1.Add(ctx, "blog", "syslog+tcp://"+srv.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	d2 := startDrains(t, st, DrainOptions{})
	waitUntil(t, "the drain on the second engine", func() bool { d2.mu.RLock(); defer d2.mu.RUnlock(); return len(d2.byApp["blog"]) == 1 })
	d2.Send(Line{App: "blog", Process: "web", Instance: "web.1", Text: "after restart"})
	waitUntil(t, "the line", func() bool { m, _ := srv.received(); return len(m) == 1 })
	if err := d2.Remove(ctx, "blog", dr.ID); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the drain to stop", func() bool { d2.mu.RLock(); defer d2.mu.RUnlock(); return len(d2.byApp["blog"]) == 0 })
	if err := d2.Remove(ctx, "blog", dr.ID); err == nil {
		t.Error("removing twice should fail")
	}
}

func TestDrainsAPI(t *testing.T) {
	d := startDrains(t, openStore(t), DrainOptions{})
	mux := http.NewServeMux()
	for p, h := range d.Routes(func(_ *http.Request, app string) bool { return app == "blog" }) {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"GET", "/v1/apps/blog/drains", "", 200, "[]"},
		{"GET", "/v1/apps/nope/drains", "", 404, "no app named nope"},
		{"POST", "/v1/apps/blog/drains", `{"url":"ftp://x"}`, 400, "scheme must be"},
		{"POST", "/v1/apps/blog/drains", `{"url":"syslog+tcp://host"}`, 400, "host:port"},
		{"POST", "/v1/apps/blog/drains", `{"url":"https://u:secret@logs.example.com/in"}`, 201, `"url": "https://u:xxxxx@logs.example.com/in"`},
		{"POST", "/v1/apps/blog/drains", `{"url":"https://u:secret@logs.example.com/in"}`, 409, "already drains"},
		{"POST", "/v1/apps/blog/drains", `{"url":"syslog+tcp://127.0.0.1:1"}`, 201, `"app": "blog"`},
		{"POST", "/v1/apps/blog/drains", `{"nope":1}`, 400, "unknown field"},
		{"DELETE", "/v1/apps/blog/drains/ffffffffffff", "", 404, "no drain ffffffffffff"},
	}
	for _, tt := range tests {
		status, body := call(tt.method, tt.path, tt.body)
		if status != tt.status || !strings.Contains(body, tt.contains) {
			t.Errorf("%s %s %s: got %d %q, want %d containing %q", tt.method, tt.path, tt.body, status, body, tt.status, tt.contains)
		}
	}
	_, body := call("GET", "/v1/apps/blog/drains", "")
	var list []Drain
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list) != 2 || strings.Contains(body, "secret") {
		t.Fatalf("list: %v %s", err, body)
	}
	if status, _ := call("DELETE", "/v1/apps/blog/drains/"+list[0].ID, ""); status != 204 {
		t.Errorf("delete: %d", status)
	}
	if err := d.RemoveApp(context.Background(), "blog"); err != nil {
		t.Fatal(err)
	}
	if _, body := call("GET", "/v1/apps/blog/drains", ""); strings.TrimSpace(body) != "[]" {
		t.Errorf("after RemoveApp: %s", body)
	}
}
