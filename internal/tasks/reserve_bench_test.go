package tasks

import (
	"context"
	"testing"
	"time"
)

// BenchmarkReserveDelete is one connection's reserve+delete loop (the
// weakest cell of bench/tasks/run.sh) without the protocol: 20,000 ready
// tasks of 100 bytes, reserved and deleted one at a time, refilled
// outside the timer.
func BenchmarkReserveDelete(b *testing.B) {
	ctx := context.Background()
	s := newService(b, nil)
	se := s.Session("blog")
	body := make([]byte, 100)
	const backlog = 20000
	fill := func(n int) {
		for range n {
			if _, err := se.Put(ctx, "q", NewTask{Body: body}); err != nil {
				b.Fatal(err)
			}
		}
	}
	fill(backlog)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%backlog == 0 {
			b.StopTimer()
			fill(backlog)
			b.StartTimer()
		}
		t, err := se.Reserve(ctx, []string{"q"}, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := se.Delete(ctx, t.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJob is a worker that keeps up, without the protocol: put a
// 100-byte task, reserve it, delete it (both journaled; the drain skips
// the pair). What the index and the journal cost per job of bench/tasks.
// The drain delay is short, so that the journal's queue of records for
// the drain is in its steady state within the run (with the default 1 s,
// a run of under a second only grows it).
func BenchmarkJob(b *testing.B) {
	ctx := context.Background()
	s := newServiceWith(b, nil, func(o *Options) { o.DrainDelay = 20 * time.Millisecond })
	se := s.Session("blog")
	body := make([]byte, 100)
	queues := []string{"q"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := se.Put(ctx, "q", NewTask{Body: body}); err != nil {
			b.Fatal(err)
		}
		t, err := se.Reserve(ctx, queues, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := se.Delete(ctx, t.ID); err != nil {
			b.Fatal(err)
		}
	}
}
