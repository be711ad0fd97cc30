package beanstalk

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestWaitsWithoutLosing: a connection in the poller waits for its next
// command without reading first (switchConn.between, netwait) once its
// last read emptied the socket. Whatever way the commands come — a
// pipelined burst of three read buffers whose first read ends exactly at
// a command's end, a burst that straddles it, lockstep, a line split
// across writes with pauses, one byte at a time — every one is answered
// and none waits for a deadline.
func TestWaitsWithoutLosing(t *testing.T) {
	for _, threads := range []int{-1, 0} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			addr, _ := startServerThreads(t, map[string]string{"tok": "app"}, threads)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			expect := func(want string) {
				t.Helper()
				// A lost wake-up would wait until the client gave up.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("waiting for %q: %v", want, err)
				}
				if line != want+"\r\n" {
					t.Fatalf("reply %q, want %q", line, want)
				}
			}
			// 64-byte lines: "use " + 58 bytes + CRLF; the server's reader
			// takes 4096 bytes, 64 whole commands, at its first read.
			for _, size := range []int{64, 41} {
				var burst strings.Builder
				var names []string
				for burst.Len() < 3*4096 {
					name := fmt.Sprintf("t%05d", len(names))
					name += strings.Repeat("x", size-6-len(name))
					names = append(names, name)
					burst.WriteString("use " + name + "\r\n")
				}
				if size == 64 && burst.Len()%64 != 0 {
					t.Fatalf("lines are not 64 bytes: %d in all", burst.Len())
				}
				io.WriteString(c, burst.String())
				for _, name := range names {
					expect("USING " + name)
				}
			}
			for i := range 200 {
				name := fmt.Sprintf("lock%d", i)
				io.WriteString(c, "use "+name+"\r\n")
				expect("USING " + name)
			}
			for _, cut := range []int{2, 8} {
				line := "use split\r\n"
				io.WriteString(c, line[:cut])
				time.Sleep(20 * time.Millisecond)
				io.WriteString(c, line[cut:])
				expect("USING split")
			}
			for _, b := range []byte("use bytes\r\n") {
				c.Write([]byte{b})
				time.Sleep(time.Millisecond)
			}
			expect("USING bytes")
			io.WriteString(c, "put 0 0 60 5\r\nhello\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "INSERTED ") {
				t.Fatalf("put: %q, %v", line, err)
			}
		})
	}
}
