package tasks

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestState(t *testing.T) {
	tests := []struct{ subject, want string }{
		{"tasks.blog.email.r.123", "r"},
		{"tasks.blog.email.f.c1", "f"},
		{"tasks.blog.email.x.9", "x"},
		{"tasks.blog.email", ""},
		{"tasks.blog", ""},
		{"other.blog.email.r.1", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := state(tt.subject); got != tt.want {
			t.Errorf("state(%q) = %q, want %q", tt.subject, got, tt.want)
		}
	}
}

// TestLoadAtStart: a new engine indexes exactly the ready tasks the
// stream holds — more than one read batch of them, in two apps' queues,
// between delayed, buried and deleted ones — in reserve order, from the
// snapshot of a clean stop and from the stream alone.
func TestLoadAtStart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	dir := t.TempDir()
	s, stop := startOn(t, st, dir)
	const total = 2500
	ready, delayed := map[string]int{}, map[string]int{}
	for i := range total {
		app := []string{"blog", "shop"}[i%2]
		id, err := s.Enqueue(ctx, app, "work", NewTask{Body: []byte("x"), Priority: uint32(total - i)})
		if err != nil {
			t.Fatal(err)
		}
		ready[app]++
		switch i % 10 {
		case 3: // deleted
			if err := s.DeleteStored(ctx, app, id); err != nil {
				t.Fatal(err)
			}
			ready[app]--
		case 7: // delayed
			if _, err := s.Enqueue(ctx, app, "work", NewTask{Body: []byte("later"), Delay: time.Hour}); err != nil {
				t.Fatal(err)
			}
			delayed[app]++
		}
	}
	se := s.Session("blog")
	for range 5 { // buried
		task, err := se.Reserve(ctx, []string{"work"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := se.Bury(ctx, task.ID, 0); err != nil {
			t.Fatal(err)
		}
		ready["blog"]--
	}
	stop()

	// Twice: from the snapshot the clean stop wrote, then from the
	// stream alone (the snapshot removed, as after a kill -9).
	for _, snap := range []bool{true, false} {
		if !snap {
			if err := os.Remove(filepath.Join(dir, snapshotName)); err != nil {
				t.Fatal(err)
			}
		}
		s, stop = startOn(t, st, dir)
		if s.fromSnap != snap {
			t.Fatalf("start from the snapshot: %v, want %v", s.fromSnap, snap)
		}
		for app, want := range ready {
			stats, err := s.Stats(ctx, app, "work")
			if err != nil {
				t.Fatal(err)
			}
			if stats.Ready != want || stats.Delayed != delayed[app] {
				t.Fatalf("%s after the restart (snapshot %v): %d ready, %d delayed; want %d and %d", app, snap, stats.Ready, stats.Delayed, want, delayed[app])
			}
			se := s.Session(app)
			last := uint32(0)
			for range want {
				task, err := se.Reserve(ctx, []string{"work"}, 0)
				if err != nil {
					t.Fatal(err)
				}
				if task.Priority < last || string(task.Body) != "x" {
					t.Fatalf("%s: task %+v after priority %d", app, task, last)
				}
				last = task.Priority
			}
			se.Close()
		}
		stop()
	}
}
