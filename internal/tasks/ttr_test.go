package tasks

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// state reports, under the index's lock, whether each task is reserved
// and its timeouts counter.
func reservedState(s *Service, ids []uint64) (held []bool, timeouts []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		j := s.jobs[id]
		held = append(held, j != nil && j.res != nil)
		n := -1
		if j != nil {
			n = int(j.counts.timeouts)
		}
		timeouts = append(timeouts, n)
	}
	return held, timeouts
}

// waitFor polls cond until it holds (the test's deadline bounds it).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if dl, ok := t.Deadline(); ok && time.Until(dl) < time.Second {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// put enqueues one task per TTR on queue and returns their ids.
func putTTRs(t *testing.T, se *Session, queue string, ttrs []time.Duration) []uint64 {
	t.Helper()
	var ids []uint64
	for i, ttr := range ttrs {
		id, err := se.Put(context.Background(), queue, NewTask{Body: []byte(fmt.Sprint(i)), TTR: ttr})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func reserveAll(t *testing.T, se *Session, queue string, n int) []uint64 {
	t.Helper()
	var ids []uint64
	for range n {
		task, err := se.Reserve(context.Background(), []string{queue}, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	return ids
}

// TestTTRExpiresInOrder: reservations whose TTRs end in an order other
// than the one they were taken in go back to ready in deadline order,
// each with one timeout, and the clock is empty afterwards.
func TestTTRExpiresInOrder(t *testing.T) {
	tests := []struct {
		name string
		ttrs []time.Duration // in reserve order
	}{
		{"descending", []time.Duration{400 * time.Millisecond, 300 * time.Millisecond, 200 * time.Millisecond, 100 * time.Millisecond}},
		{"ascending", []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond}},
		{"mixed", []time.Duration{250 * time.Millisecond, 50 * time.Millisecond, 450 * time.Millisecond, 150 * time.Millisecond, 350 * time.Millisecond, 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t, nil)
			se := s.Session("blog")
			putTTRs(t, se, "q", tt.ttrs)
			ids := reserveAll(t, se, "q", len(tt.ttrs)) // FIFO: ids[i] has tt.ttrs[i]
			// Deadlines grow with reserve time + TTR; reserves are
			// microseconds apart and TTRs 50 ms apart, so the TTR order is
			// the deadline order.
			s.mu.Lock()
			var order []int // indexes of ids by deadline
			for range ids {
				best := -1
				for i, id := range ids {
					if s.jobs[id].res == nil || containsInt(order, i) {
						continue
					}
					if best < 0 || s.jobs[id].res.deadline.Before(s.jobs[ids[best]].res.deadline) {
						best = i
					}
				}
				order = append(order, best)
			}
			s.mu.Unlock()
			for k := 1; k < len(order); k++ {
				if tt.ttrs[order[k-1]] > tt.ttrs[order[k]] {
					t.Fatalf("deadlines not in TTR order: %v", order)
				}
			}
			// Whenever looked at, the expired tasks are a prefix of the
			// deadline order.
			for {
				held, _ := reservedState(s, ids)
				done := 0
				for done < len(order) && !held[order[done]] {
					done++
				}
				for _, i := range order[done:] {
					if !held[i] {
						t.Fatalf("task %d (TTR %v) expired before an earlier deadline: held %v, deadline order %v", i, tt.ttrs[i], held, order)
					}
				}
				if done == len(order) {
					break
				}
				if dl, ok := t.Deadline(); ok && time.Until(dl) < time.Second {
					t.Fatal("the TTRs never ended")
				}
				time.Sleep(time.Millisecond)
			}
			_, timeouts := reservedState(s, ids)
			for i, n := range timeouts {
				if n != 1 {
					t.Errorf("task %d: %d timeouts, want 1", i, n)
				}
			}
			again := reserveAll(t, se, "q", len(ids)) // all ready again
			if len(again) != len(ids) {
				t.Fatalf("reserved %d again, want %d", len(again), len(ids))
			}
		})
	}
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestTTRTouchAndEnd: a touch postpones a TTR past a later reservation's
// deadline; delete, release and bury take a reservation off the clock, so
// its TTR never fires (no timeout counted, the task not made ready).
func TestTTRTouchAndEnd(t *testing.T) {
	ctx := context.Background()
	s := newService(t, nil)
	se := s.Session("blog")
	const ttr = time.Second

	// touch: a reserved before b, both with one TTR; a is touched half a
	// TTR later, so its new deadline is half a TTR after b's (wide enough
	// for a busy machine's polling). When b has expired a must still be
	// held, with no timeout.
	ids := putTTRs(t, se, "touch", []time.Duration{ttr, ttr})
	got := reserveAll(t, se, "touch", 2)
	a, b := got[0], got[1]
	time.Sleep(ttr / 2)
	if err := se.Touch(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b's TTR", func() bool { held, _ := reservedState(s, []uint64{b}); return !held[0] })
	held, timeouts := reservedState(s, []uint64{a, b})
	if !held[0] || timeouts[0] != 0 || timeouts[1] != 1 {
		t.Fatalf("after b's TTR: held %v timeouts %v, want a held with 0 timeouts, b 1", held, timeouts)
	}
	waitFor(t, "a's TTR", func() bool { held, _ := reservedState(s, []uint64{a}); return !held[0] })
	if _, timeouts := reservedState(s, ids); timeouts[0] != 1 {
		t.Fatalf("a's timeouts %d, want 1", timeouts[0])
	}

	// delete, release, bury, each with a short TTR, then a sentinel with a
	// longer one: once the sentinel expired, none of the others may have.
	for _, end := range []string{"delete", "release", "bury"} {
		t.Run(end, func(t *testing.T) {
			q := "end-" + end
			putTTRs(t, se, q, []time.Duration{50 * time.Millisecond, 200 * time.Millisecond})
			got := reserveAll(t, se, q, 2)
			x, sentinel := got[0], got[1]
			var err error
			switch end {
			case "delete":
				err = se.Delete(ctx, x)
			case "release":
				err = se.Release(ctx, x, 0, 0) // same priority: stays in memory
			case "bury":
				err = se.Bury(ctx, x, 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			s.mu.Lock()
			for _, r := range s.ttr.h {
				if r.j.id == x {
					s.mu.Unlock()
					t.Fatalf("after %s, task %d is still on the TTR clock", end, x)
				}
			}
			s.mu.Unlock()
			waitFor(t, "the sentinel's TTR", func() bool {
				held, _ := reservedState(s, []uint64{sentinel})
				return !held[0]
			})
			held, timeouts := reservedState(s, []uint64{x})
			if held[0] || (timeouts[0] != 0 && timeouts[0] != -1) {
				t.Fatalf("after %s: task held %v, timeouts %d; want not held, no timeout", end, held[0], timeouts[0])
			}
		})
	}
	s.mu.Lock()
	n := len(s.ttr.h)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d reservations left on the TTR clock, want 0", n)
	}
}
