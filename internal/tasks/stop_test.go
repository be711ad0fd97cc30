package tasks

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestStopKeepsJournal: when the service's context ends (the engine began
// to stop), puts and deletes from listeners still finishing are journaled
// and drained; only Close ends that, and later puts get ErrDraining. The
// tasks put after the context ended are there for the next engine.
func TestStopKeepsJournal(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	dir := t.TempDir()
	s, err := New(ctx, Options{Store: st, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	if err := s.Start(sctx); err != nil {
		t.Fatal(err)
	}
	before, err := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("before the stop")})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-s.stopped // push delivery and the poll have stopped
	late, err := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("after the stop began")})
	if err != nil {
		t.Fatalf("put after the context ended: %v, want it journaled", err)
	}
	if err := s.DeleteStored(ctx, "blog", before); err != nil {
		t.Fatalf("delete after the context ended: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := s.drainWait(wctx); err != nil {
		t.Fatalf("the drain stopped with the context: %v", err)
	}
	s.Close()
	if _, err := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("after Close")}); !errors.Is(err, ErrDraining) {
		t.Fatalf("put after Close: %v, want ErrDraining", err)
	}
	if files, _ := journalFiles(dir); len(files) != 0 {
		t.Fatalf("journal files after a clean stop: %v, want none (all drained)", files)
	}

	s2, _ := startOn(t, st, dir)
	if _, err := s2.Lookup(ctx, "blog", late); err != nil {
		t.Fatalf("task put after the stop began: %v", err)
	}
	if _, err := s2.Lookup(ctx, "blog", before); !errors.Is(err, ErrNotFound) {
		t.Fatalf("task deleted after the stop began: %v, want ErrNotFound", err)
	}
}
