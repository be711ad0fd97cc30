//go:build linux

package beanstalk

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadPair returns a loopback TCP connection's client end and its
// server end made a threadConn.
func threadPair(t *testing.T) (client net.Conn, server *threadConn) {
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
	tc, err := takeThread(nc)
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
		_, tc := threadPair(t)
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
		client, tc := threadPair(t)
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
		_, tc := threadPair(t)
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
			if err := <-got; err != io.EOF {
				t.Errorf("blocked read ended with %v, want EOF", err)
			}
		})
	})
	t.Run("what arrived before the deadline is still read", func(t *testing.T) {
		client, tc := threadPair(t)
		if _, err := client.Write([]byte("stats\r\n")); err != nil {
			t.Fatal(err)
		}
		// Wait until the kernel has it, then hang up.
		var n int
		for n == 0 {
			var err error
			if n, err = unix.IoctlGetInt(tc.fd, unix.SIOCINQ); err != nil {
				t.Fatal(err)
			}
		}
		if err := tc.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tc)
		if string(b) != "stats\r\n" || err != nil {
			t.Fatalf("read %q, %v; want the command, then EOF", b, err)
		}
	})
	t.Run("future read deadline refused, zero accepted", func(t *testing.T) {
		_, tc := threadPair(t)
		if err := tc.SetReadDeadline(time.Now().Add(time.Hour)); err == nil {
			t.Error("a future read deadline was accepted")
		}
		if err := tc.SetReadDeadline(time.Time{}); err != nil {
			t.Errorf("zero read deadline: %v", err)
		}
	})
	t.Run("write deadline ends a write nobody reads", func(t *testing.T) {
		_, tc := threadPair(t)
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
	t.Run("not TCP", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if _, err := takeThread(a); err == nil {
			t.Error("a pipe became a threaded connection")
		}
	})
}

// TestThreadConnsLimit: at most Options.ThreadConns connections are
// threaded at once; one closing frees its place for the next, and
// threaded and polled connections answer alike (the same protocol
// script, the wire errors included).
func TestThreadConnsLimit(t *testing.T) {
	for _, tc := range []struct {
		threads, conns, want int
	}{
		{threads: -1, conns: 3, want: 0},
		{threads: 1, conns: 3, want: 1},
		{threads: 8, conns: 3, want: 3},
	} {
		addr, srv := startServerThreads(t, map[string]string{"blog.secret": "blog"}, tc.threads)
		var cs []net.Conn
		for range tc.conns {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, nc)
			script(t, nc)
		}
		if got := int(srv.threads.Load()); got != tc.want {
			t.Errorf("ThreadConns %d, %d connections: %d threaded, want %d", tc.threads, tc.conns, got, tc.want)
		}
		cs[0].Close()
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		script(t, nc) // served once the first has closed: its place is free then
		for _, c := range cs[1:] {
			c.Close()
		}
		nc.Close()
		for srv.threads.Load() != 0 || srv.connCount() != 0 {
			time.Sleep(time.Millisecond)
		}
		c := dial(t, addr)
		if _, err := c.Put([]byte("x"), 0, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, want := int(srv.threads.Load()), min(tc.want, 1); got != want {
			t.Errorf("ThreadConns %d, after the others closed: %d threaded, want %d", tc.threads, got, want)
		}
	}
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
