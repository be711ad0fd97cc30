package beanstalk

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"

	"pier/internal/store"
	"pier/internal/tasks"
)

// stopErr reports whether err is one a client may see when the server
// stops: DRAINING, or the connection closing.
func stopErr(err error) bool {
	return errors.Is(err, bs.ErrDraining) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TestGracefulStop: clients put in a loop while the server stops. Serve
// returns once every connection has finished its command (an idle one and
// one blocked in reserve included), no client sees INTERNAL_ERROR, and
// every task answered INSERTED is there when a new service starts on the
// same store and journal.
func TestGracefulStop(t *testing.T) { gracefulStop(t, 0) }

// TestGracefulStopThreaded is TestGracefulStop with every connection on a
// thread of its own (threadConn): hung up with shutdown(2), not deadlines.
func TestGracefulStopThreaded(t *testing.T) { gracefulStop(t, 16) }

func gracefulStop(t *testing.T, threads int) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := t.TempDir()
	svc, err := tasks.New(ctx, tasks.Options{Store: st, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := svc.Start(sctx); err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Tasks: svc, SoleApp: func(context.Context) (string, bool) { return "blog", true }, ThreadConns: threads})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	done := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(done) }()

	idle := dial(t, addr)
	if _, err := idle.ListTubes(); err != nil {
		t.Fatal(err)
	}
	waiting := dial(t, addr)
	ts := bs.NewTubeSet(waiting, "nothing-here")
	reserved := make(chan error, 1)
	go func() { _, _, err := ts.Reserve(time.Hour); reserved <- err }()

	const putters, most = 4, 50_000
	var (
		mu       sync.Mutex
		inserted []uint64
		errs     []error
		puts     atomic.Int64
		wg       sync.WaitGroup
	)
	for p := range putters {
		c := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range most {
				id, err := c.Put([]byte("job "+strconv.Itoa(p)+"/"+strconv.Itoa(i)), 0, 0, time.Minute)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				inserted = append(inserted, id)
				mu.Unlock()
				puts.Add(1)
			}
		}()
	}
	for puts.Load() < 2000 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	wg.Wait()
	svc.Close()

	if err := <-reserved; !stopErr(err) {
		t.Errorf("a reserve waiting at the stop got %v, want the connection closed", err)
	}
	if _, err := idle.ListTubes(); !stopErr(err) {
		t.Errorf("an idle connection after the stop: %v, want it closed", err)
	}
	for _, err := range errs {
		if !stopErr(err) {
			t.Errorf("a putter got %v, want DRAINING or the connection closed", err)
		}
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener still accepts after the stop")
	}

	svc2, err := tasks.New(ctx, tasks.Options{Store: st, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	missing := 0
	for _, id := range inserted {
		if _, err := svc2.Lookup(ctx, "blog", id); err != nil {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d tasks answered INSERTED are gone after the stop", missing, len(inserted))
	}
	t.Logf("%d puts answered INSERTED, all kept; clients saw %v", len(inserted), errs)
}
