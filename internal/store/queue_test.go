package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func openQueue(t *testing.T) *WorkQueue {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	q, err := s.WorkQueue(ctx, WorkQueueConfig{Name: "Q", Subjects: []string{"q.>"}, Dedup: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestWorkQueueDedupGetDelete(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	if _, err := q.Put(ctx, "q.r.1", []byte("one"), map[string]string{"Pri": "5"}, PutOptions{MsgID: "n1"}); err != nil {
		t.Fatal(err)
	}
	seq, err := q.Put(ctx, "q.r.2", []byte("again"), nil, PutOptions{MsgID: "n1"})
	if !errors.Is(err, ErrDuplicate) || seq != 1 {
		t.Fatalf("second put with the same id: seq %d err %v, want 1 and ErrDuplicate", seq, err)
	}
	m, err := q.Get(ctx, 1)
	if err != nil || string(m.Data) != "one" || m.Header["Pri"] != "5" || m.Subject != "q.r.1" {
		t.Fatalf("get: %+v %v", m, err)
	}
	if err := q.Delete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted message still stored: %v", err)
	}
}

func TestWorkQueueScheduleAndLookup(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	if _, err := q.Put(ctx, "q.d.7", []byte("later"), map[string]string{"Id": "7"}, PutOptions{At: time.Now().Add(1500 * time.Millisecond), Target: "q.r.7"}); err != nil {
		t.Fatal(err)
	}
	m, err := q.Last(ctx, "q.*.7")
	if err != nil || m.Subject != "q.d.7" {
		t.Fatalf("lookup by wildcard: %+v %v", m, err)
	}
	if n, err := q.Count(ctx, "q.d.*"); err != nil || n != 1 {
		t.Fatalf("count delayed: %d %v", n, err)
	}
	var d Message
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err = q.Last(ctx, "q.r.7")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || string(d.Data) != "later" || d.Header["Id"] != "7" {
		t.Fatalf("scheduled message: %+v %v", d, err)
	}
	if n, _ := q.Count(ctx, "q.d.*"); n != 0 {
		t.Fatalf("schedule left behind: %d", n)
	}
	if err := q.Delete(ctx, d.Seq); err != nil {
		t.Fatal(err)
	}
	waitCount := func(want int) {
		for i := 0; i < 100; i++ {
			if n, _ := q.Count(ctx, "q.>"); n == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		n, _ := q.Count(ctx, "q.>")
		t.Fatalf("count %d, want %d", n, want)
	}
	waitCount(0)
	// Messages stay until deleted.
	seq, _ := q.Put(ctx, "q.x.9", []byte("dead"), nil, PutOptions{})
	if m, err := q.Next(ctx, "q.x.*", 1); err != nil || m.Seq != seq {
		t.Fatalf("next: %+v %v", m, err)
	}
	if err := q.Delete(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(ctx, seq); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}
