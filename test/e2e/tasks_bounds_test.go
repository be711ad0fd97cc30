package e2e

import (
	"errors"
	"io"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"
)

// stopErr reports whether err is one of the answers a beanstalkd client
// may get while the engine stops gracefully (docs/services.md): DRAINING,
// the connection closed, or no listener any more.
func stopErr(err error) bool {
	return errors.Is(err, bs.ErrDraining) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED)
}

// TestTasksGracefulStop: clients put in a loop, reconnecting after an
// error, while the engine gets SIGTERM. No client sees INTERNAL_ERROR (or
// anything but the documented answers), and every task answered INSERTED
// is there after the restart.
func TestTasksGracefulStop(t *testing.T) {
	e := startEngine(t)
	e.must(example(t, "hello-static"), "deploy")

	const clients, most = 3, 20_000
	var (
		mu       sync.Mutex
		inserted []uint64
		seen     = map[string]int{} // errors by text
		bad      []error
		wg       sync.WaitGroup
		started  = make(chan struct{})
		once     sync.Once
	)
	for n := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *bs.Conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := range most {
				var err error
				if c == nil {
					c, err = bs.Dial("tcp", e.bsAddr)
				}
				var id uint64
				if err == nil {
					id, err = c.Put([]byte("job "+strconv.Itoa(n)+"/"+strconv.Itoa(i)), 0, 0, time.Minute)
				}
				mu.Lock()
				if err == nil {
					inserted = append(inserted, id)
					if len(inserted) == 1000 {
						once.Do(func() { close(started) })
					}
				} else {
					seen[errText(err)]++
					if !stopErr(err) {
						bad = append(bad, err)
					}
				}
				mu.Unlock()
				if errors.Is(err, syscall.ECONNREFUSED) {
					return // the engine has stopped listening
				}
				if err != nil && c != nil {
					c.Close()
					c = nil
				}
			}
		}()
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("no 1,000 puts in 30 s")
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the engine did not stop within 30 s of SIGTERM")
	}
	wg.Wait()
	t.Logf("%d puts answered INSERTED before the stop; errors seen: %v", len(inserted), seen)
	for _, err := range bad {
		t.Errorf("a client got %v; want only DRAINING, the connection closed or refused", err)
	}

	e.start()
	c, err := bs.Dial("tcp", e.bsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	missing := 0
	for _, id := range inserted {
		if _, err := c.Peek(id); err != nil {
			if missing < 5 {
				t.Errorf("task %d (INSERTED) after the restart: %v", id, err)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged tasks lost over a graceful stop", missing, len(inserted))
	}
}

// errText names an error by its kind, for the log.
func errText(err error) string {
	switch {
	case errors.Is(err, bs.ErrDraining):
		return "DRAINING"
	case errors.Is(err, bs.ErrInternal):
		return "INTERNAL_ERROR"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	}
	return err.Error()
}

// TestTasksCountersRestart: a task's stats-job counters survive engine
// restarts, a clean one (SIGTERM) and a kill -9, including those of events
// that leave the task ready (a release, a TTR timeout) and so do not
// store it again.
func TestTasksCountersRestart(t *testing.T) {
	e := startEngine(t)
	e.must(example(t, "hello-static"), "deploy")
	c, err := bs.Dial("tcp", e.bsAddr)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Put([]byte("counted"), 10, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reserve := func(c *bs.Conn) {
		t.Helper()
		got, _, err := c.Reserve(5 * time.Second)
		if err != nil || got != id {
			t.Fatalf("reserve: %d, %v; want task %d", got, err, id)
		}
	}
	stats := func(c *bs.Conn) map[string]string {
		t.Helper()
		st, err := c.StatsJob(id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	want := map[string]string{"reserves": "0", "timeouts": "0", "releases": "0", "buries": "0", "kicks": "0"}
	check := func(when string, c *bs.Conn) {
		t.Helper()
		st := stats(c)
		for k, v := range want {
			if st[k] != v {
				t.Fatalf("%s: stats-job %s = %s, want %s (all: %v)", when, k, st[k], v, st)
			}
		}
	}
	reserve(c)
	if err := c.Release(id, 10, 0); err != nil {
		t.Fatal(err)
	}
	reserve(c)
	waitFor(t, 10*time.Second, "the 1 s TTR to run out", func() bool { return stats(c)["state"] == "ready" })
	reserve(c)
	if err := c.Bury(id, 10); err != nil {
		t.Fatal(err)
	}
	if err := c.KickJob(id); err != nil {
		t.Fatal(err)
	}
	reserve(c)
	if err := c.Release(id, 10, 0); err != nil {
		t.Fatal(err)
	}
	want["reserves"], want["timeouts"], want["releases"], want["buries"], want["kicks"] = "4", "1", "2", "1", "1"
	check("before the restart", c)
	c.Close()

	e.stop()
	e.start()
	c, err = bs.Dial("tcp", e.bsAddr)
	if err != nil {
		t.Fatal(err)
	}
	check("after a clean restart", c)
	reserve(c)
	if err := c.Release(id, 10, 0); err != nil {
		t.Fatal(err)
	}
	want["reserves"], want["releases"] = "5", "3"
	check("before the kill", c)
	c.Close()

	e.kill9()
	e.start()
	c, err = bs.Dial("tcp", e.bsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check("after kill -9", c)
}
