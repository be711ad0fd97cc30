package tasks

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSnapshotRestart: after a clean stop the next start takes the index
// from the snapshot (the bodies are read back afterwards, while they fit
// under Options.Memory) and still sees what came after it (a delayed task that fired
// meanwhile); when the stream lost a message since, the snapshot is not
// used and the whole stream is read. The file is gone once taken.
func TestSnapshotRestart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	dir := t.TempDir()
	s, stop := startOn(t, st, dir)
	const total = 50
	ids := map[uint64]int{}
	for n := range total {
		id, err := s.Enqueue(ctx, "blog", "email", NewTask{Body: bodyOf(n), Priority: uint32(100 - n%7)})
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = n
	}
	late, err := s.Enqueue(ctx, "blog", "email", NewTask{Body: bodyOf(total), Delay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ids[late] = total
	stop()
	if _, err := os.Stat(filepath.Join(dir, snapshotName)); err != nil {
		t.Fatalf("no snapshot after a clean stop: %v", err)
	}
	// The delayed task's schedule fires while no engine runs.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n, err := s.q.Count(ctx, "tasks.blog.email.d.*"); err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delayed task's schedule did not fire")
		}
	}

	s, stop = startOn(t, st, dir)
	if _, err := os.Stat(filepath.Join(dir, snapshotName)); !os.IsNotExist(err) {
		t.Fatalf("the snapshot is still there after the start: %v", err)
	}
	if !s.fromSnap {
		t.Fatal("the start after a clean stop did not use the snapshot")
	}
	// Their bodies are read back: all fit under the bound.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if bytes, out := memoryState(s); out == 0 && bytes == int64(total+1)*1024 {
			break
		}
		if time.Now().After(deadline) {
			bytes, out := memoryState(s)
			t.Fatalf("%d bytes of bodies in memory, %d tasks without theirs; want all %d in memory", bytes, out, total+1)
		}
	}
	reserveAll := func(s *Service, want int) {
		t.Helper()
		se := s.Session("blog")
		lastPri, got := uint32(0), 0
		for {
			task, err := se.Reserve(ctx, []string{"email"}, 0)
			if err == ErrTimeout {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n, ok := ids[task.ID]
			if !ok || string(task.Body) != string(bodyOf(n)) || task.Priority < lastPri && n != total {
				t.Fatalf("reserved %+v (task %d) after priority %d", task, n, lastPri)
			}
			lastPri = task.Priority
			got++
		}
		se.Close()
		if got != want {
			t.Fatalf("reserved %d tasks, want %d", got, want)
		}
	}
	reserveAll(s, total+1)
	stop()

	// A message the snapshot holds is gone: the stream is read instead.
	var gone uint64
	for id := range ids {
		if id != late {
			gone = id
			break
		}
	}
	if err := s.q.Delete(ctx, storedSeq(t, s, "blog", "email", gone)); err != nil {
		t.Fatal(err)
	}
	delete(ids, gone)
	s, _ = startOn(t, st, dir)
	if _, out := memoryState(s); out != 0 || s.fromSnap {
		t.Fatalf("%d tasks without their body, from the snapshot %v: the out-of-date snapshot was used", out, s.fromSnap)
	}
	reserveAll(s, total)
}

// FuzzSnapshot: any file decodes without a panic; a snapshot written
// reads back the same.
func FuzzSnapshot(f *testing.F) {
	sn := snapshot{last: 9, msgs: 4, tasks: []snapTask{{
		id: 1, seq: 3, pri: 5, ttr: time.Minute, created: time.Unix(0, 12345), attempt: 2,
		counts: jobCounts{1, 2, 3, 4, 5}, onR: true, app: "blog", queue: "email", name: "n", path: "/p",
	}}}
	f.Add(encodeSnapshot(sn))
	f.Add(encodeSnapshot(snapshot{}))
	f.Add([]byte("PIERIDX1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		again, err := decodeSnapshot(encodeSnapshot(got))
		if err != nil || again.last != got.last || again.msgs != got.msgs || len(again.tasks) != len(got.tasks) {
			t.Fatalf("a decoded snapshot does not read back: %+v, %v", again, err)
		}
		for i := range got.tasks {
			a, b := again.tasks[i], got.tasks[i]
			if a.id != b.id || a.seq != b.seq || a.counts != b.counts || a.app != b.app || a.path != b.path || !a.created.Equal(b.created) {
				t.Fatalf("task %d: %+v, want %+v", i, a, b)
			}
		}
	})
}
