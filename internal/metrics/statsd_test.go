package metrics

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want []Sample // nil with bad = true: an error
		bad  bool
	}{
		{line: "hits:1|c", want: []Sample{{Name: "hits", Kind: KindCounter, Value: 1, Rate: 1}}},
		{line: "hits:3|c|@0.5", want: []Sample{{Name: "hits", Kind: KindCounter, Value: 3, Rate: 0.5}}},
		{line: "temp:-4|g", want: []Sample{{Name: "temp", Kind: KindGauge, Value: -4, Delta: true, Rate: 1}}},
		{line: "temp:21.5|g", want: []Sample{{Name: "temp", Kind: KindGauge, Value: 21.5, Rate: 1}}},
		{line: "db.query:12.5|ms|#table:users,env:prod", want: []Sample{{Name: "db.query", Kind: KindTimer, Value: 12.5, Rate: 1, Tags: []string{"env:prod", "table:users"}}}},
		{line: "size:1:2:3|d", want: []Sample{
			{Name: "size", Kind: KindTimer, Value: 1, Rate: 1}, {Name: "size", Kind: KindTimer, Value: 2, Rate: 1}, {Name: "size", Kind: KindTimer, Value: 3, Rate: 1}}},
		{line: "users:alice|s", want: []Sample{{Name: "users", Kind: KindSet, Set: "alice", Rate: 1}}},
		{line: "page.views:1|c|#canary|c:abc123|T1700000000", want: []Sample{{Name: "page.views", Kind: KindCounter, Value: 1, Rate: 1, Tags: []string{"canary"}}}},
		{line: "lat:5|h|@0.1|#a:1", want: []Sample{{Name: "lat", Kind: KindTimer, Value: 5, Rate: 0.1, Tags: []string{"a:1"}}}},
		{line: "_e{5,4}:title|text"},
		{line: ""},
		{line: "nocolon|c", bad: true},
		{line: "hits:1", bad: true},
		{line: "hits:x|c", bad: true},
		{line: "hits:1|q", bad: true},
		{line: "hits:1|c|@0", bad: true},
		{line: "hits:1|c|@1.5", bad: true},
		{line: ":1|c", bad: true},
		{line: "hits:1|c||", bad: true},
		{line: "hi ts:1|c", bad: true},
		{line: "hits:NaN|c", bad: true},
		{line: "size:1:x:3|d", bad: true},
	}
	for _, tt := range tests {
		var got []Sample
		err := ParseLine([]byte(tt.line), func(s Sample) { got = append(got, s) })
		if tt.bad {
			if err == nil || got != nil {
				t.Errorf("%q: got %v, %v; want an error and nothing", tt.line, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.line, got, tt.want)
			continue
		}
		for i := range got {
			g, w := got[i], tt.want[i]
			if g.Name != w.Name || g.Kind != w.Kind || g.Value != w.Value || g.Delta != w.Delta || g.Set != w.Set || g.Rate != w.Rate || !slices.Equal(g.Tags, w.Tags) {
				t.Errorf("%q: sample %d = %+v, want %+v", tt.line, i, g, w)
			}
		}
	}
}

func FuzzParsePacket(f *testing.F) {
	for _, s := range []string{"hits:1|c", "a:1|c|@0.5|#x:y,z\nb:2|g", "t:1:2|d", "s:x|s", "g:+3|g", "_sc|x|0", "x:1|ms|c:1|T1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		st := newStatsdStore(10)
		bad := ParsePacket(p, func(s Sample) {
			if s.Name == "" || s.Rate <= 0 || s.Rate > 1 || s.Value != s.Value {
				t.Fatalf("bad sample from %q: %+v", p, s)
			}
			st.add("app", s)
		})
		if bad < 0 || bad > strings.Count(string(p), "\n")+1 {
			t.Fatalf("%d bad lines in %q", bad, p)
		}
		st.collect(time.Unix(1700000000, 0))
	})
}

// listen starts a statsd server on a free loopback port.
func listen(t *testing.T, m *Metrics, appFor func(netip.AddrPort) (string, bool)) (*StatsdServer, *net.UDPConn) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := m.NewStatsdServer(appFor)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, conn) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, conn
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStatsdFromRealClients sends datagrams from this process and from a
// Python process using the standard library's socket, and checks that each
// lands in the right app, found from the source port through /proc.
func TestStatsdFromRealClients(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	var procs []Process
	m := New(Options{Processes: func() []Process { return procs }})
	owners := NewProcOwners("", func() []Process { return procs })
	srv, conn := listen(t, m, owners.AppFor)
	addr := conn.LocalAddr().(*net.UDPAddr)

	cmd := exec.Command(py, "-c", `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
addr = ("127.0.0.1", int(sys.argv[1]))
sys.stdin.readline()  # wait until the test lists this process
for i in range(50):
    s.sendto(b"orders.placed:1|c|#shop:eu\norders.latency:%d|ms" % (i + 1), addr)
s.sendto(b"queue.depth:7|g\nvisitors:alice|s\nvisitors:bob|s\nvisitors:alice|s", addr)
s.sendto(b"garbage line\nsampled:1|c|@0.25", addr)
sys.stdout.write("sent\n"); sys.stdout.flush()
sys.stdin.readline()
`, strconv.Itoa(addr.Port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	procs = []Process{
		{App: "shop", Process: "worker", Instance: "worker.1", PID: cmd.Process.Pid},
		{App: "self", Process: "web", Instance: "web.1", PID: syscall.Getpgrp()},
	}
	stdin.Write([]byte("go\n"))
	buf := make([]byte, 5)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatal(err)
	}

	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("self.hits:2|c"))

	waitUntil(t, "every datagram", func() bool { return srv.packets.Load() == 53 })
	m.Collect(time.Now().Truncate(Step).Add(Step))
	if got := srv.badLines.Load(); got != 1 {
		t.Errorf("bad lines = %d, want 1", got)
	}
	q := m.Query("shop", time.Minute)
	byName := map[string]StatsdSeries{}
	for _, s := range q.Statsd {
		byName[s.Name] = s
	}
	check := func(name string, want float32) {
		t.Helper()
		s, ok := byName[name]
		if !ok || len(s.Values) == 0 || s.Values[len(s.Values)-1] != want {
			t.Errorf("%s = %+v, want last value %v", name, s, want)
		}
	}
	check("orders.placed", 50)
	check("orders.latency", 50)
	check("queue.depth", 7)
	check("visitors", 2)
	check("sampled", 4)
	if s := byName["orders.latency"]; len(s.P99) == 0 || s.P99[0] != 50 || s.P50[0] != 25 {
		t.Errorf("timer quantiles %+v, want p50 25 and p99 50", s)
	}
	if s := byName["orders.placed"]; !slices.Equal(s.Tags, []string{"shop:eu"}) {
		t.Errorf("tags %v", s.Tags)
	}
	self := m.Query("self", time.Minute)
	if len(self.Statsd) != 1 || self.Statsd[0].Values[0] != 2 {
		t.Errorf("self: %+v", self.Statsd)
	}

	// A process no app owns is counted and dropped.
	procs = nil
	owners2 := NewProcOwners("", func() []Process { return nil })
	if app, ok := owners2.AppFor(netip.MustParseAddrPort(c.LocalAddr().String())); ok {
		t.Errorf("unowned socket attributed to %q", app)
	}
}

func TestStatsdSeriesBound(t *testing.T) {
	m := New(Options{MaxStatsdSeries: 3})
	for i := range 10 {
		m.statsd.add("a", Sample{Name: "m" + strconv.Itoa(i), Kind: KindCounter, Value: 1, Rate: 1})
	}
	if m.statsd.dropped != 7 || len(m.statsd.apps["a"]) != 3 {
		t.Fatalf("dropped %d, kept %d", m.statsd.dropped, len(m.statsd.apps["a"]))
	}
}
