package tasks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"pier/internal/store"
)

func TestJournalRecords(t *testing.T) {
	created := time.Unix(0, 1_700_000_000_123_456_789)
	tests := []struct {
		name string
		r    record
	}{
		{"put", record{kind: recPut, id: 42, created: created, pri: 7, ttr: 90 * time.Second, app: "blog", queue: "email", body: []byte("hello")}},
		{"put, empty body", record{kind: recPut, id: 1, created: created, app: "a", queue: "q", body: []byte{}}},
		{"put, binary body", record{kind: recPut, id: 1<<63 + 5, created: created, pri: 1<<32 - 1, app: "a", queue: "q", body: []byte{0, '\r', '\n', 255}}},
		{"delete", record{kind: recDelete, id: 42, seq: 9001, app: "blog", queue: "email"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeRecord(nil, tc.r)
			got, n, err := decodeRecord(b)
			if err != nil || n != len(b) {
				t.Fatalf("decode: %v, %d of %d bytes", err, n, len(b))
			}
			if got.kind != tc.r.kind || got.id != tc.r.id || got.seq != tc.r.seq || got.pri != tc.r.pri ||
				got.ttr != tc.r.ttr || got.app != tc.r.app || got.queue != tc.r.queue || !bytes.Equal(got.body, tc.r.body) {
				t.Fatalf("got %+v, want %+v", got, tc.r)
			}
			if tc.r.kind == recPut && !got.created.Equal(tc.r.created) {
				t.Fatalf("created %v, want %v", got.created, tc.r.created)
			}
			// Cut anywhere, or one bit flipped: refused.
			for cut := range len(b) - 1 {
				if _, _, err := decodeRecord(b[:cut]); err == nil {
					t.Fatalf("a record cut at %d of %d bytes was read", cut, len(b))
				}
			}
			bad := bytes.Clone(b)
			bad[len(bad)-1] ^= 1
			if _, _, err := decodeRecord(bad); err == nil {
				t.Fatal("a damaged record was read")
			}
		})
	}
}

func FuzzJournalRecord(f *testing.F) {
	f.Add(encodeRecord(nil, record{kind: recPut, id: 1, app: "a", queue: "q", body: []byte("x")}))
	f.Add(encodeRecord(nil, record{kind: recDelete, id: 1, seq: 2, app: "a", queue: "q"}))
	f.Add(encodeRecord(nil, record{kind: recPutOwn, id: 1, app: "a", queue: "q", body: []byte("x")}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("read %d bytes of %d", n, len(b))
		}
		again, _, err := decodeRecord(encodeRecord(nil, r))
		if err != nil || again.id != r.id || again.kind != r.kind || !bytes.Equal(again.body, r.body) {
			t.Fatalf("a decoded record does not encode back: %+v (%v)", r, err)
		}
	})
}

// startOn runs a Service over st with its journal in dir until the test
// ends (or stop is called).
func startOn(t *testing.T, st *store.Store, dir string) (*Service, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Options{Store: st, Dir: dir, Domain: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stop := func() { cancel(); s.Close() }
	t.Cleanup(stop)
	return s, stop
}

// TestJournalReplay: journal files an engine left (it died before its
// drain) are applied at start — puts stored once even when they were
// drained already, deletes applied — and then removed. So are those of an
// engine that drained each put to a subject of its own (r.<id>).
func TestJournalReplay(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	dir := t.TempDir()
	s, stop := startOn(t, st, dir)
	drained, _ := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("drained")})
	gone, _ := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("deleted after the drain")})
	inFlight, _ := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("deleted while its put was sent")})
	stop()
	if n, _ := s.q.Count(ctx, "tasks.blog.email.r.*"); n != 3 {
		t.Fatalf("%d tasks stored by the first engine, want 3", n)
	}
	// What an older engine drained, each on r.<id>.
	oldDrained, oldDeleted := drained+200, drained+202
	for _, id := range []uint64{oldDrained, oldDeleted} {
		hdr := map[string]string{hdrPri: "1", hdrTTR: "60000", hdrCreated: itoa(time.Now().UnixNano())}
		if _, err := s.q.Put(ctx, subject("blog", "email", "r", id), []byte("old drained"), hdr, store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	goneSeq := storedSeq(t, s, "blog", "email", gone)
	if goneSeq == 0 {
		t.Fatal("the task deleted after the drain was not stored")
	}
	// What a dead engine's journal could hold: the drained put again, a
	// put never drained, a put and its delete, and the delete of a
	// drained task.
	now := time.Now()
	var b []byte
	for _, r := range []record{
		{kind: recPut, id: drained, created: now, app: "blog", queue: "email", body: []byte("drained")},
		{kind: recPut, id: drained + 100, created: now, pri: 3, ttr: time.Minute, app: "blog", queue: "email", body: []byte("journaled only")},
		{kind: recPut, id: drained + 101, created: now, app: "blog", queue: "email", body: []byte("put and deleted")},
		{kind: recDelete, id: drained + 101, app: "blog", queue: "email"},
		{kind: recDelete, id: gone, seq: goneSeq, app: "blog", queue: "email"},
		// Its put was stored, its file removed, after the delete.
		{kind: recDelete, id: inFlight, app: "blog", queue: "email"},
		// An older engine's.
		{kind: recPutOwn, id: oldDrained, created: now, pri: 1, app: "blog", queue: "email", body: []byte("old drained")},
		{kind: recPutOwn, id: oldDrained + 1, created: now, pri: 1, app: "blog", queue: "email", body: []byte("old journaled only")},
		{kind: recDelete, id: oldDeleted, app: "blog", queue: "email"},
	} {
		b = encodeRecord(b, r)
	}
	b = append(b, encodeRecord(nil, record{kind: recPut, id: 7, app: "blog", queue: "email", body: []byte("torn")})[:20]...)
	if err := os.WriteFile(filepath.Join(dir, journalName(1)), b, 0o600); err != nil {
		t.Fatal(err)
	}

	s2, _ := startOn(t, st, dir)
	if n, err := s2.q.Count(ctx, "tasks.blog.email.*.*"); err != nil || n != 4 {
		t.Fatalf("%d messages after the replay (%v), want 4: each task left stored once", n, err)
	}
	var bodies []string
	for {
		task, err := s2.Peek(ctx, "blog", "email", StateReady)
		if err != nil {
			break
		}
		bodies = append(bodies, string(task.Body))
		if err := s2.DeleteStored(ctx, "blog", task.ID); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"drained", "old drained", "old journaled only", "journaled only"}; !slices.Equal(bodies, want) {
		t.Fatalf("ready after the replay: %q, want %q (priorities 0, 1, 1, 3)", bodies, want)
	}
	if err := s2.drainWait(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := s2.q.Count(ctx, "tasks.blog.email.*.*"); err != nil || n != 0 {
		t.Fatalf("%d messages left (%v), want none: the replay stored no duplicate", n, err)
	}
	if files, _ := journalFiles(dir); len(files) != 1 || files[0] != 2 {
		t.Fatalf("journal files after the replay: %v, want only the new one (2)", files)
	}
}

// TestCountersSurviveRestart: a task's stats-job counters are stored with
// it when it is stored again (here: released with a new priority), so a
// new engine reports them.
func TestCountersSurviveRestart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	dir := t.TempDir()
	s, stop := startOn(t, st, dir)
	id, _ := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("x"), Priority: 5})
	se := s.Session("blog")
	for range 2 {
		if _, err := se.Reserve(ctx, []string{"email"}, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := se.Release(ctx, id, 5, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := se.Reserve(ctx, []string{"email"}, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := se.Release(ctx, id, 9, 0); err != nil { // stored again
		t.Fatal(err)
	}
	stop()
	s2, _ := startOn(t, st, dir)
	task, err := s2.Lookup(ctx, "blog", id)
	if err != nil {
		t.Fatal(err)
	}
	if task.Reserves != 3 || task.Releases != 3 || task.Priority != 9 || task.State != StateReady {
		t.Fatalf("after a restart: %+v, want 3 reserves, 3 releases, priority 9, ready", task)
	}
}

// TestDrainDelay: a task deleted within the drain delay is never stored;
// one still there after it is.
func TestDrainDelay(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	s, err := New(ctx, Options{Store: st, Dir: t.TempDir(), DrainDelay: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); s.Close() }()
	if err := s.Start(sctx); err != nil {
		t.Fatal(err)
	}
	quick, _ := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("done at once")})
	if err := s.DeleteStored(ctx, "blog", quick); err != nil {
		t.Fatal(err)
	}
	kept, _ := s.Enqueue(ctx, "blog", "email", NewTask{Body: []byte("kept")})
	if n, err := s.q.Count(ctx, "tasks.blog.email.r.*"); err != nil || n != 0 {
		t.Fatalf("%d tasks stored at once (%v), want none before the delay", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if storedSeq(t, s, "blog", "email", kept) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kept task was never stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, err := s.q.Count(ctx, "tasks.blog.email.r.*"); err != nil || n != 1 {
		t.Fatalf("%d tasks stored (%v), want only the kept one", n, err)
	}
}

// TestRecRing: the drain's queue of records gives back what was pushed,
// in order, through wrap-arounds and growth, and clears what it hands out
// (the records' jobs are the drain's then).
func TestRecRing(t *testing.T) {
	steps := []struct {
		push, pop int
	}{
		{10, 0}, {0, 4}, {60, 0}, // 66 in a ring of 64: grown, the front moved
		{0, 50}, {40, 0}, // wraps around the end
		{0, 0}, {0, 56}, // empty
		{3, 3}, {200, 100}, {100, 200},
	}
	var q recRing
	var want []uint64 // ids in the ring, front first
	next := uint64(1)
	for i, st := range steps {
		var rs []record
		for range st.push {
			rs = append(rs, record{id: next, j: &job{id: next}})
			want = append(want, next)
			next++
		}
		q.push(rs, 1, time.Now())
		if q.n != len(want) {
			t.Fatalf("step %d: %d records after push, want %d", i, q.n, len(want))
		}
		for k := range q.n {
			if q.at(k).id != want[k] {
				t.Fatalf("step %d: record %d is %d, want %d", i, k, q.at(k).id, want[k])
			}
		}
		got := q.pop(nil, st.pop)
		for k, r := range got {
			if r.id != want[k] {
				t.Fatalf("step %d: popped %d as %d, want %d", i, k, r.id, want[k])
			}
		}
		want = want[st.pop:]
		live := 0
		for k := range q.buf {
			if q.buf[k].j != nil {
				live++
			}
		}
		if live != q.n || q.n != len(want) {
			t.Fatalf("step %d: %d records hold jobs, %d queued, want %d", i, live, q.n, len(want))
		}
	}
}

// TestDrainSkipsDeleted: tasks put, reserved and deleted within the drain
// delay cost the stream nothing — the drain stores none of them (the
// stream's last sequence moves only for the task still live) — and leave
// nothing in the tomb.
func TestDrainSkipsDeleted(t *testing.T) {
	ctx := context.Background()
	// A delay far longer than the test: no record comes of age on a slow
	// machine; drainWait below stores what is left at once.
	s := newServiceWith(t, nil, func(o *Options) { o.DrainDelay = time.Minute })
	se := s.Session("blog")
	// The queue's settings are stored on first use: before the count.
	if _, err := se.Put(ctx, "q", NewTask{Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if t0, err := se.Reserve(ctx, []string{"q"}, 0); err != nil || se.Delete(ctx, t0.ID) != nil {
		t.Fatal(err)
	}
	last0, _, err := s.q.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if _, err := se.Put(ctx, "q", NewTask{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		tk, err := se.Reserve(ctx, []string{"q"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := se.Delete(ctx, tk.ID); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := se.Put(ctx, "q", NewTask{Body: []byte("kept")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.drainWait(ctx); err != nil { // stores everything journaled, at once
		t.Fatal(err)
	}
	last, msgs, err := s.q.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last != last0+1 || msgs != 1 {
		t.Errorf("stream: last sequence %d -> %d, %d messages; want one more message (the kept task's), nothing else ever stored", last0, last, msgs)
	}
	if storedSeq(t, s, "blog", "q", kept) == 0 {
		t.Error("the kept task is not in the stream")
	}
	s.mu.Lock()
	tomb := len(s.tomb)
	s.mu.Unlock()
	if tomb != 0 {
		t.Errorf("%d tasks in the tomb, want none", tomb)
	}
}

// storedSeq returns the sequence of the ready message holding task id in
// the stream — stored by the drain (r.b<ms>) or on a subject of its own
// (r.<id>) — or 0 when there is none.
func storedSeq(t *testing.T, s *Service, app, queue string, id uint64) uint64 {
	t.Helper()
	ctx := context.Background()
	seq, err := newDrainedIndex(s.q).seq(ctx, app, queue, id)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 0 {
		return seq
	}
	m, err := s.q.Last(ctx, subject(app, queue, "r", id))
	if errors.Is(err, store.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return m.Seq
}
