package tasks

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"pier/internal/store"
)

// bodyOf is the body of the n-th task of a test: 1 KiB, different for each.
func bodyOf(n int) []byte {
	return []byte(fmt.Sprintf("%04d", n) + strings.Repeat("x", 1020))
}

// memoryState is what the index holds: the bytes of bodies in memory, and
// how many tasks have theirs only in the stream.
func memoryState(s *Service) (bytes int64, out int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.bodyOut {
			out++
		}
	}
	return s.bodyBytes, out
}

// TestBodiesBounded: with Options.Memory at 10 KiB, 100 tasks of 1 KiB
// keep at most 10 bodies in memory once drained; the others are read back
// from the stream for every way a task is seen (peek, peek by id, reserve,
// reserve-job, release with a new priority, bury and kick), and the bound
// holds again after a restart. Deleting everything leaves nothing counted.
func TestBodiesBounded(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // after the services' (cleanups run last first)
	dir := t.TempDir()
	const limit, total = 10 << 10, 100
	open := func() (*Service, func()) {
		s, err := New(ctx, Options{Store: st, Dir: dir, Memory: limit, DrainDelay: -1})
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		if err := s.Start(sctx); err != nil {
			t.Fatal(err)
		}
		stop := func() { cancel(); s.Close() }
		t.Cleanup(stop)
		return s, stop
	}
	s, stop := open()
	ids := map[uint64]int{}
	for n := range total {
		id, err := s.Enqueue(ctx, "blog", "email", NewTask{Body: bodyOf(n), Priority: 10})
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = n
	}
	if err := s.drainWait(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		bytes, out := memoryState(s)
		if bytes > limit || out < total-limit/1024 {
			t.Fatalf("%s: %d bytes of bodies in memory, %d tasks without theirs; want at most %d bytes, at least %d without",
				when, bytes, out, limit, total-limit/1024)
		}
	}
	check("after the drain")
	want := func(what string, task Task, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		n, ok := ids[task.ID]
		if !ok || string(task.Body) != string(bodyOf(n)) {
			t.Fatalf("%s: task %d has body %.8q..., want %.8q...", what, task.ID, task.Body, bodyOf(n))
		}
	}
	var last uint64 // the newest task: its body was dropped
	for id := range ids {
		last = max(last, id)
	}
	task, err := s.Lookup(ctx, "blog", last)
	want("peek by id", task, err)
	if task.bodyOut || ids[last] != total-1 {
		t.Fatalf("peek by id: %+v", task)
	}
	se := s.Session("blog")
	task, err = se.ReserveJob(ctx, last)
	want("reserve-job", task, err)
	if err := se.Release(ctx, last, 1, 0); err != nil { // stored again, now the most urgent
		t.Fatal(err)
	}
	task, err = s.Peek(ctx, "blog", "email", StateReady)
	want("peek-ready after a release with a new priority", task, err)
	if task.ID != last {
		t.Fatalf("peek-ready: task %d, want %d (priority 1)", task.ID, last)
	}
	task, err = se.Reserve(ctx, []string{"email"}, time.Second)
	want("reserve", task, err)
	if err := se.Bury(ctx, last, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.KickTask(ctx, "blog", last); err != nil {
		t.Fatal(err)
	}
	task, err = se.Reserve(ctx, []string{"email"}, time.Second)
	want("reserve after bury and kick", task, err)
	if err := se.Release(ctx, last, 1, 0); err != nil {
		t.Fatal(err)
	}
	check("after the moves")

	stop()
	s, _ = open()
	check("after a restart")
	se = s.Session("blog")
	seen := 0
	for {
		task, err := se.Reserve(ctx, []string{"email"}, 0)
		if err == ErrTimeout {
			break
		}
		want("reserve after the restart", task, err)
		if err := se.Delete(ctx, task.ID); err != nil {
			t.Fatal(err)
		}
		seen++
	}
	if seen != total {
		t.Fatalf("reserved %d tasks after the restart, want %d", seen, total)
	}
	if bytes, out := memoryState(s); bytes != 0 || out != 0 {
		t.Fatalf("after every task was deleted: %d bytes of bodies counted, %d tasks left", bytes, out)
	}
}

// TestPushBodyFromStream: a push task whose body was dropped from memory
// is delivered with it.
func TestPushBodyFromStream(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	defer gw.Close()
	ctx := context.Background()
	st := openStore(t)
	s, err := New(ctx, Options{Store: st, Dir: t.TempDir(), Memory: 1, DrainDelay: -1, GatewayURL: gw.URL, Domain: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); s.Close() }()
	if err := s.Start(sctx); err != nil {
		t.Fatal(err)
	}
	// Stored before the queue pushes, so that the body is dropped first.
	if _, err := s.Enqueue(ctx, "blog", "hooks", NewTask{Body: bodyOf(7)}); err != nil {
		t.Fatal(err)
	}
	if err := s.drainWait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, out := memoryState(s); out != 1 {
		t.Fatalf("%d tasks without their body in memory, want 1", out)
	}
	if err := s.Configure(ctx, "blog", map[string]QueueConfig{"hooks": {Push: "/hook"}}, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the task was not pushed")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got[0] != string(bodyOf(7)) {
		t.Fatalf("pushed body %.8q..., want %.8q...", got[0], bodyOf(7))
	}
}
