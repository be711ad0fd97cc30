package tasks

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCountersKeptWhileReady: counters that change while a task stays
// ready (a reserve then a release, a TTR timeout, a connection handing its
// task back) are there after a clean restart, and again after a restart
// that only has them in a journal file (the engine was killed before the
// drain). Deleting the task removes its entry.
func TestCountersKeptWhileReady(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	dir := t.TempDir()
	s, stop := startOn(t, st, dir)
	id, err := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("x"), TTR: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	se := s.Session("blog")
	if _, err := se.Reserve(ctx, []string{"email"}, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := se.Release(ctx, id, 0, 0); err != nil { // same priority: stays in memory
		t.Fatal(err)
	}
	if _, err := se.Reserve(ctx, []string{"email"}, time.Second); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) { // the TTR runs out
		if task, err := s.Lookup(ctx, "blog", id); err == nil && task.State == StateReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reservation did not time out")
		}
	}
	other := s.Session("blog")
	if _, err := other.Reserve(ctx, []string{"email"}, time.Second); err != nil {
		t.Fatal(err)
	}
	other.Close() // hands the task back
	want := Task{Reserves: 3, Timeouts: 1, Releases: 1}
	same := func(when string, got Task) {
		t.Helper()
		if got.Reserves != want.Reserves || got.Timeouts != want.Timeouts || got.Releases != want.Releases ||
			got.Buries != want.Buries || got.Kicks != want.Kicks {
			t.Fatalf("%s: reserves %d timeouts %d releases %d buries %d kicks %d; want %d %d %d %d %d", when,
				got.Reserves, got.Timeouts, got.Releases, got.Buries, got.Kicks,
				want.Reserves, want.Timeouts, want.Releases, want.Buries, want.Kicks)
		}
	}
	task, err := s.Lookup(ctx, "blog", id)
	if err != nil {
		t.Fatal(err)
	}
	same("before the restart", task)
	stop()

	s, stop = startOn(t, st, dir)
	if task, err = s.Lookup(ctx, "blog", id); err != nil {
		t.Fatal(err)
	}
	same("after a clean restart", task)

	// One more reserve and release, journaled but not drained: what a
	// killed engine leaves. The journal file is copied aside before the
	// clean stop drains and removes it, then put back.
	se = s.Session("blog")
	if _, err := se.Reserve(ctx, []string{"email"}, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := se.Release(ctx, id, 0, 0); err != nil {
		t.Fatal(err)
	}
	want.Reserves, want.Releases = 4, 2
	var journal []byte
	for deadline := time.Now().Add(10 * time.Second); len(journal) == 0; time.Sleep(10 * time.Millisecond) {
		files, _ := journalFiles(dir)
		for _, n := range files {
			b, _ := os.ReadFile(filepath.Join(dir, journalName(n)))
			journal = append(journal, b...)
		}
		if time.Now().After(deadline) {
			t.Fatal("no counters record journaled")
		}
	}
	s.mu.Lock()
	s.jobs[id].saved = jobCounts{} // the clean stop must not store them: only the journal has them
	s.jobs[id].counts = jobCounts{}
	s.mu.Unlock()
	stop()
	// The entry the clean restart used goes too.
	if err := s.counts.Delete(ctx, itoa(int64(id))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, journalName(90)), journal, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ = startOn(t, st, dir)
	if task, err = s.Lookup(ctx, "blog", id); err != nil {
		t.Fatal(err)
	}
	same("after a restart from the journal", task)

	if err := s.DeleteStored(ctx, "blog", id); err != nil {
		t.Fatal(err)
	}
	if err := s.drainWait(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.counts.Keys(ctx, ""); len(keys) != 0 {
		t.Fatalf("counters entries after the task was deleted: %v, want none", keys)
	}
}

// FuzzCountsValue: any counters bucket entry parses without a panic, and
// an entry written reads back the same.
func FuzzCountsValue(f *testing.F) {
	f.Add([]byte("12 3,1,2,0,1"), uint64(12), int32(3), int32(1))
	f.Add([]byte("7 "), uint64(0), int32(0), int32(0))
	f.Add([]byte("x 1,2"), uint64(1<<63), int32(-1), int32(1<<30))
	f.Fuzz(func(t *testing.T, raw []byte, seq uint64, a, b int32) {
		parseCountsValue(raw)
		c := jobCounts{reserves: a, timeouts: b, releases: a ^ b, buries: b, kicks: a}
		gotSeq, got, ok := parseCountsValue(countsValue(seq, c))
		if !ok || gotSeq != seq || got != c {
			t.Fatalf("countsValue(%d, %+v) read back as %d, %+v, %v", seq, c, gotSeq, got, ok)
		}
	})
}
