package beanstalk

import (
	"testing"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"
)

// BenchmarkPut and BenchmarkReserveDelete drive the server with the real
// client over loopback, one connection, 100-byte bodies: for profiles
// (go test -bench . -cpuprofile); bench/tasks compares with beanstalkd.
func BenchmarkPut(b *testing.B) {
	c, err := bs.Dial("tcp", startServerB(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	body := make([]byte, 100)
	b.ResetTimer()
	for range b.N {
		if _, err := c.Put(body, 0, 0, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReserveDelete(b *testing.B) {
	c, err := bs.Dial("tcp", startServerB(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	body := make([]byte, 100)
	for range b.N {
		if _, err := c.Put(body, 0, 0, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		id, _, err := c.Reserve(5 * time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Delete(id); err != nil {
			b.Fatal(err)
		}
	}
}

func startServerB(b *testing.B) string {
	return startServer(b, map[string]string{"blog.secret": "blog"})
}

// BenchmarkBetweenPolled is the command-boundary check of connections in
// the poller while several work at once (no thread held, none to be
// taken for a while): what switchConn adds to every command then.
func BenchmarkBetweenPolled(b *testing.B) {
	srv := New(Options{ThreadConns: 1})
	srv.calmFrom.Store(srv.clock() + int64(time.Hour))
	b.RunParallel(func(pb *testing.PB) {
		sc := &switchConn{s: srv}
		for pb.Next() {
			sc.between(false)
		}
	})
	if srv.threads.Load() != 0 {
		b.Fatal("a thread was taken while calm")
	}
}
