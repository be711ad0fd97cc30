package tasks

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestReadyHeap: whatever the pushes and removals (by position, as a
// delete or bury of a ready task does), taking the top repeatedly gives
// the tasks in beanstalkd's order — priority, then id — and every job's
// hidx is its position.
func TestReadyHeap(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		pris   uint32 // priorities drawn from [0, pris)
		remove int    // removals at random positions before draining
	}{
		{"empty", 0, 1, 0},
		{"one", 1, 1, 0},
		{"fifo", 500, 1, 0},
		{"priorities", 500, 8, 0},
		{"removals", 1000, 4, 300},
		{"distinct", 300, 1 << 31, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.n)))
			var h readyHeap
			var want []*job
			for _, id := range rng.Perm(tt.n) {
				j := &job{id: uint64(id + 1), pri: rng.Uint32N(tt.pris), hidx: -1}
				h.push(j)
				want = append(want, j)
				checkHidx(t, h)
			}
			for range tt.remove {
				i := rng.IntN(len(h))
				j := h[i].j
				h.remove(i)
				if j.hidx != -1 {
					t.Fatalf("removed job has hidx %d", j.hidx)
				}
				want = slices.DeleteFunc(want, func(x *job) bool { return x == j })
				checkHidx(t, h)
			}
			slices.SortFunc(want, func(a, b *job) int {
				if a.pri != b.pri {
					return int(int64(a.pri) - int64(b.pri))
				}
				return int(int64(a.id) - int64(b.id))
			})
			for k, w := range want {
				top := h[0].j
				if top != w {
					t.Fatalf("take %d: got id %d pri %d, want id %d pri %d", k, top.id, top.pri, w.id, w.pri)
				}
				h.remove(0)
				checkHidx(t, h)
			}
			if len(h) != 0 {
				t.Fatalf("%d left", len(h))
			}
		})
	}
}

func checkHidx(t *testing.T, h readyHeap) {
	t.Helper()
	for i, e := range h {
		if e.j.hidx != i || e.id != e.j.id || e.pri != e.j.pri {
			t.Fatalf("entry %d: hidx %d id %d/%d pri %d/%d", i, e.j.hidx, e.id, e.j.id, e.pri, e.j.pri)
		}
		if i > 0 && h[i].before(&h[(i-1)/2]) {
			t.Fatalf("entry %d is more urgent than its parent", i)
		}
	}
}

// BenchmarkReadyHeapTake: a reserve's heap work on a 20,000-task queue —
// take the top, push a newer task.
func BenchmarkReadyHeapTake(b *testing.B) {
	var h readyHeap
	const n = 20000
	for i := range n {
		h.push(&job{id: uint64(i + 1), hidx: -1})
	}
	next := uint64(n + 1)
	b.ResetTimer()
	for range b.N {
		j := h[0].j
		h.remove(0)
		j.id = next
		next++
		h.push(j)
	}
}
