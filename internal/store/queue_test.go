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

func fetchOne(t *testing.T, c *Consumer, wait time.Duration) *Delivery {
	t.Helper()
	var got *Delivery
	if err := c.Fetch(1, wait, func(d *Delivery) { got = d }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWorkQueueAckNakDedup(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	c, err := q.Consumer(ctx, ConsumerConfig{Name: "r", Filter: "q.r.*"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Put(ctx, "q.r.1", []byte("one"), map[string]string{"Pri": "5"}, PutOptions{MsgID: "n1"}); err != nil {
		t.Fatal(err)
	}
	seq, err := q.Put(ctx, "q.r.2", []byte("again"), nil, PutOptions{MsgID: "n1"})
	if !errors.Is(err, ErrDuplicate) || seq != 1 {
		t.Fatalf("second put with the same id: seq %d err %v, want 1 and ErrDuplicate", seq, err)
	}
	d := fetchOne(t, c, time.Second)
	if d == nil || string(d.Data) != "one" || d.Header["Pri"] != "5" || d.Attempt != 1 {
		t.Fatalf("got %+v", d)
	}
	if err := d.Nak(0); err != nil {
		t.Fatal(err)
	}
	d = fetchOne(t, c, 5*time.Second)
	if d == nil || d.Attempt != 2 {
		t.Fatalf("after nak got %+v, want attempt 2", d)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if d := fetchOne(t, c, 0); d != nil {
		t.Fatalf("acked message delivered again: %+v", d)
	}
	if _, err := q.Get(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("acked message still stored: %v", err)
	}
}

func TestWorkQueueScheduleAndLookup(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	c, err := q.Consumer(ctx, ConsumerConfig{Name: "r", Filter: "q.r.*"})
	if err != nil {
		t.Fatal(err)
	}
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
	var d *Delivery
	deadline := time.Now().Add(10 * time.Second)
	for d == nil && time.Now().Before(deadline) {
		d = fetchOne(t, c, time.Second)
	}
	if d == nil || d.Subject != "q.r.7" || string(d.Data) != "later" || d.Header["Id"] != "7" {
		t.Fatalf("scheduled message: %+v", d)
	}
	if n, _ := q.Count(ctx, "q.d.*"); n != 0 {
		t.Fatalf("schedule left behind: %d", n)
	}
	if err := d.Term(ctx); err != nil {
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
	// Messages on subjects no consumer filters stay until deleted.
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
