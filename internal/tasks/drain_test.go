package tasks

import (
	"context"
	"testing"
	"time"

	"pier/internal/store"
)

// TestRoundSpacing: the drain's rounds are drainEvery apart, further when
// their purges took more than a tenth of that, never further than the
// drain delay (nor nearer than it when it is shorter than drainEvery).
func TestRoundSpacing(t *testing.T) {
	for _, c := range []struct {
		delay, purge, want time.Duration
	}{
		{time.Second, 0, drainEvery},
		{time.Second, 5 * time.Millisecond, drainEvery},
		{time.Second, 10 * time.Millisecond, drainEvery},
		{time.Second, 30 * time.Millisecond, 300 * time.Millisecond},
		{time.Second, 200 * time.Millisecond, time.Second},
		{5 * time.Second, 200 * time.Millisecond, 2 * time.Second},
		{10 * time.Millisecond, 0, 10 * time.Millisecond},
		{10 * time.Millisecond, 50 * time.Millisecond, 10 * time.Millisecond},
	} {
		s := &Service{}
		s.dr.purgeTook = c.purge
		if got := s.roundSpacing(c.delay); got != c.want {
			t.Errorf("delay %v, purges took %v: spacing %v, want %v", c.delay, c.purge, got, c.want)
		}
	}
}

// TestPollStartsPastSearched: a poll that finds no fired schedule moves
// the next one's start past every message stored before it looked, and
// a schedule copy stored after that is still found.
func TestPollStartsPastSearched(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Options{Store: openStore(t), Dir: t.TempDir()}) // not started: no poll of its own
	if err != nil {
		t.Fatal(err)
	}
	hdr := (&job{pri: 1, ttr: time.Minute, created: time.Now()}).header()
	for id := uint64(100); id < 103; id++ {
		if _, err := s.q.Put(ctx, subject("app", "q", "r", id), []byte("stored"), hdr, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.poll(ctx); n != 0 || err != nil {
		t.Fatalf("poll with no fired schedule: %d indexed, %v", n, err)
	}
	if s.fseq != s.q.Acked() || s.fseq == 0 {
		t.Fatalf("next poll starts after %d, want after %d (all stored before it looked)", s.fseq, s.q.Acked())
	}
	// What the server stores when a schedule fires.
	seq, err := s.q.Put(ctx, subject("app", "q", "f", 200), []byte("fired"), hdr, store.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.poll(ctx); n != 1 || err != nil || s.fseq != seq {
		t.Fatalf("poll after a schedule fired: %d indexed, %v, next from %d; want 1 and %d", n, err, s.fseq+1, seq+1)
	}
}

// TestDrainResend: a put the drain sent without an answer (the server
// stored it, or not) is looked for on its millisecond's subject when the
// drain tries again: sent again only when it is not there, and the one
// that is there is known by its sequence.
func TestDrainResend(t *testing.T) {
	ctx := context.Background()
	s, err := New(ctx, Options{Store: openStore(t), Dir: t.TempDir()}) // not started: the test drains
	if err != nil {
		t.Fatal(err)
	}
	q, err := s.queue(ctx, "app", "q")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var rs []queued
	var jobs []*job
	for range 3 {
		id := s.ids.next(now) // the same millisecond: one subject
		j := &job{id: id, q: q, ttr: time.Minute, created: now, body: []byte(itoa(int64(id))), hidx: -1}
		jobs = append(jobs, j)
		rs = append(rs, queued{j: j, id: id, kind: recPut, sent: true, at: now})
	}
	// The first and last reached the server before the answers were lost.
	var want [3]uint64
	for _, i := range []int{0, 2} {
		j := jobs[i]
		if want[i], err = s.q.Put(ctx, drainedSubject("app", "q", j.id), j.body, j.header(), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.drainRecords(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if n, err := s.q.Count(ctx, "tasks.app.q.r.*"); err != nil || n != 3 {
		t.Fatalf("%d messages after the drain (%v), want 3: each task stored once", n, err)
	}
	for i, j := range jobs {
		m, err := s.q.Get(ctx, j.seq)
		if err != nil || messageID(m) != j.id || string(m.Data) != string(j.body) || want[i] != 0 && j.seq != want[i] {
			t.Errorf("task %d: sequence %d (%v), message %+v; want its message (at %d if sent before)", i, j.seq, err, m, want[i])
		}
	}
}
