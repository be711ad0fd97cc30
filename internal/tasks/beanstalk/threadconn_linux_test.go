//go:build linux

package beanstalk

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"

	"golang.org/x/sys/unix"
)

// threadPair returns a loopback TCP connection's client end and its
// server end made a threadConn.
func threadPair(t *testing.T, idle time.Duration) (client net.Conn, server *threadConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := takeThread(nc, idle)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return client, tc.(*threadConn)
}

// within fails the test when f has not returned after a long while (a
// hang, not a timing check).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: still blocked after 20s", what)
	}
}

func TestThreadConn(t *testing.T) {
	t.Run("socket blocking, close-on-exec", func(t *testing.T) {
		_, tc := threadPair(t, 0)
		fl, err := unix.FcntlInt(uintptr(tc.fd), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK != 0 {
			t.Errorf("file flags %#x, %v: want blocking", fl, err)
		}
		fd, err := unix.FcntlInt(uintptr(tc.fd), unix.F_GETFD, 0)
		if err != nil || fd&unix.FD_CLOEXEC == 0 {
			t.Errorf("descriptor flags %#x, %v: want close-on-exec", fd, err)
		}
	})
	t.Run("read, write, EOF", func(t *testing.T) {
		client, tc := threadPair(t, 0)
		if _, err := client.Write([]byte("put 0 0 1 1\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := tc.Read(buf)
		if err != nil || string(buf[:n]) != "put 0 0 1 1\r\n" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		if n, err := tc.Write([]byte("INSERTED 1\r\n")); n != 12 || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
		line, err := bufio.NewReader(client).ReadString('\n')
		if line != "INSERTED 1\r\n" || err != nil {
			t.Fatalf("client read %q, %v", line, err)
		}
		client.Close()
		if n, err := tc.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("read after the client closed: %d, %v; want EOF", n, err)
		}
	})
	t.Run("past read deadline ends a blocked read", func(t *testing.T) {
		_, tc := threadPair(t, 0)
		got := make(chan error, 1)
		go func() {
			_, err := tc.Read(make([]byte, 64))
			got <- err
		}()
		time.Sleep(50 * time.Millisecond) // most likely blocked in read(2) by now; either way it must end
		if err := tc.SetReadDeadline(time.Now()); err != nil {
			t.Fatal(err)
		}
		within(t, "read after the deadline", func() {
			if err := <-got; !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("blocked read ended with %v, want the deadline exceeded", err)
			}
		})
	})
	t.Run("past read deadline ends reading while the client sends", func(t *testing.T) {
		client, tc := threadPair(t, 0)
		stop := make(chan struct{})
		defer close(stop)
		go func() { // a client that never stops talking
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := client.Write([]byte("stats\r\n")); err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 64)
		if _, err := tc.Read(buf); err != nil {
			t.Fatal(err)
		}
		if err := tc.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		within(t, "reading a talking client after the deadline", func() {
			for {
				if _, err := tc.Read(buf); err != nil {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("read ended with %v, want the deadline exceeded", err)
					}
					return
				}
			}
		})
	})
	t.Run("future read deadline refused, zero accepted", func(t *testing.T) {
		_, tc := threadPair(t, 0)
		if err := tc.SetReadDeadline(time.Now().Add(time.Hour)); err == nil {
			t.Error("a future read deadline was accepted")
		}
		if err := tc.SetReadDeadline(time.Time{}); err != nil {
			t.Errorf("zero read deadline: %v", err)
		}
	})
	t.Run("write deadline ends a write nobody reads", func(t *testing.T) {
		_, tc := threadPair(t, 0)
		if err := tc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 1<<20)
		within(t, "writes to a client that does not read", func() {
			for range 1024 { // far more than socket buffers hold
				if _, err := tc.Write(chunk); err != nil {
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("write failed with %v, want the deadline exceeded", err)
					}
					return
				}
			}
			t.Error("1 GiB written to a client that reads nothing")
		})
	})
	t.Run("idle read", func(t *testing.T) {
		_, tc := threadPair(t, 20*time.Millisecond)
		within(t, "an idle read", func() {
			if n, err := tc.Read(make([]byte, 8)); n != 0 || err != errIdle {
				t.Errorf("idle read: %d, %v; want errIdle", n, err)
			}
		})
	})
	t.Run("back to the poller", func(t *testing.T) {
		client, tc := threadPair(t, time.Hour)
		pc, err := untakeThread(tc)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := client.Write([]byte("stats\r\n")); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(10 * time.Second)) // the poller's deadlines work again
		buf := make([]byte, 16)
		n, err := pc.Read(buf)
		if string(buf[:n]) != "stats\r\n" || err != nil {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		pc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := pc.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v; want the deadline exceeded (not an idle time out from the thread)", err)
		}
		if _, err := pc.Write([]byte("OK\r\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(client).ReadString('\n'); line != "OK\r\n" || err != nil {
			t.Fatalf("client read %q, %v", line, err)
		}
	})
	t.Run("not TCP", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if _, err := takeThread(a, 0); err == nil {
			t.Error("a pipe became a threaded connection")
		}
	})
}

// TestThreadConnsLimit: threaded and polled connections answer the
// same script alike, and at most Options.ThreadConns connections are
// threaded at any time.
func TestThreadConnsLimit(t *testing.T) {
	for _, threads := range []int{-1, 2, 8} {
		addr, srv := startServerThreads(t, map[string]string{"blog.secret": "blog"}, threads)
		var (
			wg   sync.WaitGroup
			stop atomic.Bool
			most atomic.Int32
		)
		for range 5 {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					script(t, nc)
				}
			}()
		}
		go func() {
			for !stop.Load() {
				if n := srv.threads.Load(); n > most.Load() {
					most.Store(n)
				}
				runtime.Gosched()
			}
		}()
		wg.Wait()
		stop.Store(true)
		if got := int(most.Load()); got > max(threads, 0) {
			t.Errorf("ThreadConns %d: %d connections threaded at once", threads, got)
		}
	}
}

// TestThreadGivenBack: a connection that waits — a reserve with nothing
// ready, or no command — gives its thread back (TestSwitchConn checks the
// moves one by one).
func TestThreadGivenBack(t *testing.T) {
	addr, srv := startServerThreads(t, map[string]string{"blog.secret": "blog"}, 1)
	threads := func(want int32, what string) {
		t.Helper()
		within(t, what, func() {
			for srv.threads.Load() != want {
				time.Sleep(time.Millisecond)
			}
		})
	}
	a := dial(t, addr)
	if _, err := bs.NewTube(a, "other").Put([]byte("x"), 0, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	threads(0, "a connection idle after a put keeps its thread")
	b := dial(t, addr)
	reserved := make(chan error, 1)
	go func() {
		_, _, err := bs.NewTubeSet(b, "empty").Reserve(30 * time.Second)
		reserved <- err
	}()
	threads(0, "a reserve waiting keeps its thread")
	c := dial(t, addr)
	if _, err := bs.NewTube(c, "other").Put([]byte("y"), 0, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.NewTube(c, "empty").Put([]byte("z"), 0, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	within(t, "the waiting reserve", func() {
		if err := <-reserved; err != nil {
			t.Errorf("reserve, answered after moving to the poller: %v", err)
		}
	})
	script(t, mustDial(t, addr)) // still works with threads taken and given back
}

// TestSwitchConn moves a connection between the poller and a thread by
// hand: the limit holds, data is neither lost nor repeated across moves,
// an idle threaded read moves to the poller and goes on reading there,
// and hangUp's deadlines follow the connection.
func TestSwitchConn(t *testing.T) {
	srv := New(Options{ThreadConns: 1})
	pair := func() (net.Conn, *switchConn) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client := mustDial(t, ln.Addr().String())
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		sc := &switchConn{s: srv, cur: nc}
		t.Cleanup(func() { sc.Close() })
		return client, sc
	}
	roundTrip := func(client net.Conn, sc *switchConn, msg string) {
		t.Helper()
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		within(t, "read "+msg, func() {
			if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != msg {
				t.Errorf("read %q, %v; want %q", buf, err, msg)
			}
		})
		if _, err := sc.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q, %v; want %q", buf, err, msg)
		}
	}
	c1, a := pair()
	c2, b := pair()
	a.toThread()
	b.toThread()
	if !a.threaded || b.threaded || srv.threads.Load() != 1 {
		t.Fatalf("threaded: a %v, b %v, count %d; want a only", a.threaded, b.threaded, srv.threads.Load())
	}
	roundTrip(c1, a, "one\r\n")
	roundTrip(c2, b, "two\r\n")
	// Idle past threadIdle: the read moves a to the poller and still
	// returns what comes next.
	buf := make([]byte, 6)
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(a, buf)
		read <- err
	}()
	within(t, "an idle threaded read moving to the poller", func() {
		for {
			a.mu.Lock()
			threaded := a.threaded
			a.mu.Unlock()
			if !threaded {
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	if n := srv.threads.Load(); n != 0 {
		t.Fatalf("after an idle read: %d threaded, want 0", n)
	}
	if _, err := c1.Write([]byte("late\r\n")); err != nil {
		t.Fatal(err)
	}
	within(t, "a read moved to the poller", func() {
		if err := <-read; err != nil || string(buf) != "late\r\n" {
			t.Errorf("read %q, %v", buf, err)
		}
	})
	b.toThread()
	if !b.threaded {
		t.Fatal("b did not take the thread a gave back")
	}
	roundTrip(c2, b, "three\r\n")
	b.toPoller()
	a.toThread()
	if b.threaded || !a.threaded || srv.threads.Load() != 1 {
		t.Fatalf("threaded: a %v, b %v, count %d; want a only", a.threaded, b.threaded, srv.threads.Load())
	}
	roundTrip(c1, a, "four\r\n")
	roundTrip(c2, b, "five\r\n")
	// b runs a command in the poller: at its next boundary, a gives the
	// thread back and none is taken for contendedFor.
	b.between(false)
	if !a.threaded || b.threaded {
		t.Fatalf("after b's command: a threaded %v, b %v; want a still (its boundary comes next)", a.threaded, b.threaded)
	}
	before := srv.clock()
	a.between(false)
	if a.threaded || srv.threads.Load() != 0 {
		t.Fatalf("a kept its thread with b busy in the poller (count %d)", srv.threads.Load())
	}
	if calm := srv.calmFrom.Load(); calm < before+int64(contendedFor) {
		t.Fatalf("calm from %d, want at least %d", calm, before+int64(contendedFor))
	}
	srv.calmFrom.Store(srv.clock() + int64(time.Hour))
	a.between(false)
	b.between(false)
	if a.threaded || b.threaded {
		t.Fatal("a thread was taken while others were busy")
	}
	roundTrip(c1, a, "six\r\n")
	srv.calmFrom.Store(0)
	for range calmSkip + 1 { // a looks at the clock again within calmSkip commands
		a.between(false)
	}
	if !a.threaded {
		t.Fatal("a did not take the thread once calm")
	}
	// hangUp on a threaded connection, then a move: reading stays ended.
	if _, err := c1.Write([]byte("kept\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // let it arrive: what arrived is read (threadConn)
	srv.mu.Lock()
	hangUp(a)
	srv.mu.Unlock()
	a.toPoller()
	within(t, "reading a hung-up connection", func() {
		b, err := io.ReadAll(a)
		if err == nil || len(b) > len("kept\r\n") {
			t.Errorf("read %q, %v; want at most what came before, then an error", b, err)
		}
	})
	if err := a.Close(); err != nil || srv.threads.Load() != 0 {
		t.Fatalf("close: %v, count %d", err, srv.threads.Load())
	}
}

func mustDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// script runs put, reserve, delete and some wrong commands on nc.
func script(t *testing.T, nc net.Conn) {
	t.Helper()
	r := bufio.NewReader(nc)
	id := ""
	for _, step := range []struct{ send, want string }{
		{"put 5 0 10 5\r\nhello\r\n", "INSERTED "},
		{"frobnicate\r\n", "UNKNOWN_COMMAND"},
		{"put 0 0 10 2\r\nabcd", "EXPECTED_CRLF"},
		{"put 4294967296 0 10 2\r\nab\r\n", "BAD_FORMAT"},
		{"", "UNKNOWN_COMMAND"}, // the body, read as a command
		{"reserve-with-timeout 5\r\n", "RESERVED "},
		{"delete ID\r\n", "DELETED"},
		{"delete ID\r\n", "NOT_FOUND"},
	} {
		send := strings.ReplaceAll(step.send, "ID", id)
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write([]byte(send)); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v", send, err)
		}
		if !strings.HasPrefix(line, step.want) || !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("sent %q: got %q, want %q", send, line, step.want)
		}
		if step.want == "RESERVED " {
			id = strings.Fields(line)[1]
			if body, err := r.ReadString('\n'); body != "hello\r\n" || err != nil {
				t.Fatalf("reserved body %q, %v", body, err)
			}
		}
	}
}
