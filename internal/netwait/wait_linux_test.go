//go:build linux && (amd64 || arm64)

package netwait

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair is a connected pair of loopback TCP connections.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// waitDone runs w.Wait in a goroutine and reports on the channel when it
// returns.
func waitDone(w *Waiter) <-chan struct{} {
	done := make(chan struct{})
	go func() { w.Wait(); close(done) }()
	return done
}

func returnsWithin(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Wait did not return %s", what)
	}
}

func stillWaiting(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
		t.Fatalf("Wait returned %s", what)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestLayout: on this Go release and platform the waiter finds the
// runtime's handle of a TCP socket. If it fails, the layout of net's file
// descriptor changed (wait_linux.go's pollFD): callers still work, but
// every wait is a read(2) that finds nothing again.
func TestLayout(t *testing.T) {
	c, _ := tcpPair(t)
	if New(c) == nil {
		t.Fatal("no Waiter for a TCP connection: internal/poll.FD's layout is not the one wait_linux.go expects")
	}
	if New(nil) != nil {
		t.Fatal("a Waiter for nil")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if New(a) != nil {
		t.Fatal("a Waiter for a net.Pipe")
	}
	var none *Waiter
	none.Wait() // no waiter: returns at once
}

func TestWait(t *testing.T) {
	t.Run("wakes on data", func(t *testing.T) {
		c, s := tcpPair(t)
		w := New(c)
		done := waitDone(w)
		stillWaiting(t, done, "with nothing sent")
		s.Write([]byte("hello"))
		returnsWithin(t, done, "when data came")
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("Read after Wait: %q, %v", buf[:n], err)
		}
	})
	t.Run("data that came before it", func(t *testing.T) {
		// A read that drained the socket, then bytes arriving before the
		// wait: their edge was seen, the wait must not sleep through it.
		c, s := tcpPair(t)
		w := New(c)
		s.Write([]byte("one"))
		buf := make([]byte, 16)
		if n, err := c.Read(buf); err != nil || n != 3 {
			t.Fatalf("first Read: %d, %v", n, err)
		}
		s.Write([]byte("two"))
		time.Sleep(20 * time.Millisecond) // the edge reaches the poller
		returnsWithin(t, waitDone(w), "for bytes that came before it")
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "two" {
			t.Fatalf("Read after Wait: %q, %v", buf[:n], err)
		}
	})
	t.Run("many rounds", func(t *testing.T) {
		// Lockstep, as a client and the gateway: each round drains the
		// socket, waits, reads the next message.
		c, s := tcpPair(t)
		w := New(c)
		go func() {
			for i := 0; i < 2000; i++ {
				if _, err := s.Write([]byte{byte(i)}); err != nil {
					return
				}
				var ack [1]byte
				if _, err := io.ReadFull(s, ack[:]); err != nil {
					return
				}
			}
		}()
		buf := make([]byte, 16)
		for i := 0; i < 2000; i++ {
			w.Wait()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			if err != nil || n != 1 || buf[0] != byte(i) {
				t.Fatalf("round %d: %v %v, %v", i, n, buf[:n], err)
			}
			c.Write([]byte{1})
		}
	})
	t.Run("peer closes", func(t *testing.T) {
		c, s := tcpPair(t)
		done := waitDone(New(c))
		stillWaiting(t, done, "before the close")
		s.Close()
		returnsWithin(t, done, "when the peer closed")
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("Read after the peer's close: %v, want EOF", err)
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		c, _ := tcpPair(t)
		w := New(c)
		c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		returnsWithin(t, waitDone(w), "at the read deadline")
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read after the deadline: %v", err)
		}
		// A past deadline set while it waits ends the wait too (how
		// servers stop a connection's reader from another goroutine).
		c.SetReadDeadline(time.Time{})
		done := waitDone(w)
		stillWaiting(t, done, "with no deadline")
		c.SetReadDeadline(time.Unix(1, 0))
		returnsWithin(t, done, "when the deadline was moved to the past")
	})
	t.Run("closed while waiting", func(t *testing.T) {
		c, _ := tcpPair(t)
		done := waitDone(New(c))
		stillWaiting(t, done, "before the close")
		c.Close()
		returnsWithin(t, done, "when the connection was closed")
	})
	t.Run("after close", func(t *testing.T) {
		c, _ := tcpPair(t)
		w := New(c)
		c.Close()
		returnsWithin(t, waitDone(w), "on a closed connection")
	})
}

// BenchmarkLockstepRead: one message a round trip over loopback, read
// with and without waiting first; the system calls per round are what
// differ (one read(2) instead of two).
func BenchmarkLockstepRead(b *testing.B) {
	for _, wait := range []bool{false, true} {
		name := "read"
		if wait {
			name = "wait+read"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				s, err := ln.Accept()
				if err != nil {
					return
				}
				defer s.Close()
				var buf [1]byte
				for {
					if _, err := s.Read(buf[:]); err != nil {
						return
					}
					if _, err := s.Write(buf[:]); err != nil {
						return
					}
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			w := New(c)
			buf := make([]byte, 16)
			for b.Loop() {
				c.Write(buf[:1])
				if wait {
					w.Wait()
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
