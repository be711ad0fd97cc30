package tasks

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// readAll returns the records of every journal file in dir, oldest first.
func readAll(t *testing.T, dir string) []record {
	t.Helper()
	nums, err := journalFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for _, n := range nums {
		rs, err := readJournal(dir, n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rs...)
	}
	return out
}

// openTestJournal opens a journal in a fresh directory, closed when the
// test ends.
func openTestJournal(t *testing.T) (*journal, string) {
	t.Helper()
	dir := t.TempDir()
	jl, err := openJournal(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jl.close(false) })
	return jl, dir
}

// putID appends a put of a one-byte task with this id.
func putID(jl *journal, id uint64) error {
	return jl.append(record{kind: recPut, id: id, app: "a", queue: "q", body: []byte("x")})
}

// readIDs returns the ids of the records in dir's journal files, oldest
// first.
func readIDs(t *testing.T, dir string) []uint64 {
	t.Helper()
	var ids []uint64
	for _, r := range readAll(t, dir) {
		ids = append(ids, r.id)
	}
	return ids
}

// TestJournalGroupCommit: appenders that come while a write is in
// progress are written together, with one write, and each returns only
// once its record is in the file.
func TestJournalGroupCommit(t *testing.T) {
	jl, dir := openTestJournal(t)
	// Hold the journal as if a write were in progress, and let 8
	// appenders queue up behind it.
	jl.mu.Lock()
	jl.writing = true
	jl.mu.Unlock()
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- jl.append(record{kind: recPut, id: uint64(i + 1), app: "a", queue: "q", body: []byte{byte(i)}})
		}()
	}
	for {
		jl.mu.Lock()
		queued := len(jl.cur.recs)
		jl.mu.Unlock()
		if queued == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-errs:
		t.Fatalf("an append returned (%v) before its record was written", err)
	default:
	}
	if got := readAll(t, dir); len(got) != 0 {
		t.Fatalf("%d records in the file before the write", len(got))
	}
	jl.mu.Lock()
	jl.writing = false
	jl.groupDone.Broadcast()
	jl.mu.Unlock()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := readAll(t, dir); len(got) != n {
		t.Fatalf("%d records in the file, want %d", len(got), n)
	}
	if pending, appended := jl.counts(); pending != n || appended != n || jl.writes != 1 {
		t.Fatalf("pending %d, appended %d in %d writes; want %d, %d in one write", pending, appended, jl.writes, n, n)
	}
}

// TestJournalConcurrentAppends: many appenders at once (run with -race):
// every acknowledged record is in the files exactly once, each appender's
// in its order, and is there when its append returns.
func TestJournalConcurrentAppends(t *testing.T) {
	jl, dir := openTestJournal(t)
	const writers, each = 8, 300
	body := make([]byte, 4000) // about 1.2 MB in all: the journal rotates
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := uint64(w*each + i + 1)
				if err := jl.append(record{kind: recPut, id: id, app: "a", queue: fmt.Sprint("q", w), body: body}); err != nil {
					errs <- err
					return
				}
				if i == each/2 && !slices.ContainsFunc(readAll(t, dir), func(r record) bool { return r.id == id }) {
					errs <- fmt.Errorf("record %d not in the files when its append returned", id)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readAll(t, dir)
	if len(got) != writers*each {
		t.Fatalf("%d records in the files, want %d", len(got), writers*each)
	}
	last := map[string]uint64{}
	for _, r := range got {
		if r.id <= last[r.queue] {
			t.Fatalf("record %d of %s after %d: out of order or twice", r.id, r.queue, last[r.queue])
		}
		last[r.queue] = r.id
	}
	if nums, _ := journalFiles(dir); len(nums) < 2 {
		t.Fatalf("journal files %v: want a rotation", nums)
	}
	t.Logf("%d records in %d writes", writers*each, jl.writes)
}

// TestJournalWriteFails: a failed write fails its appenders, and the next
// write starts a new file, so that a record torn by the failure cannot
// hide the ones written after it.
func TestJournalWriteFails(t *testing.T) {
	jl, dir := openTestJournal(t)
	if err := putID(jl, 1); err != nil {
		t.Fatal(err)
	}
	// Writes to the current file fail from now on (with write(2), as
	// where it cannot be mapped: a copy into a mapping does not fail).
	ro, err := os.Open(filepath.Join(dir, journalName(1)))
	if err != nil {
		t.Fatal(err)
	}
	jl.mu.Lock()
	good := jl.f
	if jl.m != nil {
		unmapJournal(jl.m)
		jl.m = nil
	}
	jl.f = ro
	jl.mu.Unlock()
	good.Close()
	if err := putID(jl, 2); err == nil {
		t.Fatal("an append to a file that cannot be written succeeded")
	}
	if err := putID(jl, 3); err != nil {
		t.Fatalf("the append after a failed write: %v", err)
	}
	if nums, _ := journalFiles(dir); !slices.Equal(nums, []int{1, 2}) {
		t.Fatalf("journal files %v, want [1 2] (a new file after the failure)", nums)
	}
	ids := readIDs(t, dir)
	if !slices.Equal(ids, []uint64{1, 3}) {
		t.Fatalf("records %v, want [1 3]", ids)
	}
	if pending, appended := jl.counts(); pending != 2 || appended != 2 {
		t.Fatalf("pending %d, appended %d; want 2, 2 (the failed one is not queued for the drain)", pending, appended)
	}
}

// TestJournalMapped: records copied into the mapped file are read back
// from the file while it is still open (as by the next engine after a kill
// -9), the zeros after them end it, and a group bigger than a file gets a
// file of its own size.
func TestJournalMapped(t *testing.T) {
	jl, dir := openTestJournal(t)
	if jl.m == nil {
		t.Skip("the journal is not mapped here (no fallocate on", dir, ")")
	}
	for id := uint64(1); id <= 3; id++ {
		if err := putID(jl, id); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, journalName(1))); err != nil || fi.Size() != journalRotate {
		t.Fatalf("journal file: %v, %v; want %d bytes made at its creation", fi, err, journalRotate)
	}
	big := bytes.Repeat([]byte("b"), journalRotate)
	if err := jl.append(record{kind: recPut, id: 4, app: "a", queue: "q", body: big}); err != nil {
		t.Fatal(err)
	}
	if err := jl.append(record{kind: recDelete, id: 1, seq: 9, app: "a", queue: "q"}); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, r := range readAll(t, dir) {
		ids = append(ids, r.id)
		if r.id == 4 && !bytes.Equal(r.body, big) {
			t.Fatalf("the big record's body came back as %d bytes", len(r.body))
		}
	}
	if !slices.Equal(ids, []uint64{1, 2, 3, 4, 1}) {
		t.Fatalf("records %v, want [1 2 3 4 1]", ids)
	}
	if nums, _ := journalFiles(dir); !slices.Equal(nums, []int{1, 2, 3}) {
		t.Fatalf("journal files %v, want [1 2 3]: the big record in a file of its own", nums)
	}
}

// TestJournalRotateFails: when the next file cannot be opened, the append
// that needed it fails, and the next append tries again with the file after.
func TestJournalRotateFails(t *testing.T) {
	jl, dir := openTestJournal(t)
	if err := putID(jl, 1); err != nil {
		t.Fatal(err)
	}
	jl.mu.Lock()
	jl.size = max(int64(len(jl.m)), journalRotate) // full
	jl.mu.Unlock()
	// A file in the way of the next one (opened O_EXCL).
	if err := os.WriteFile(filepath.Join(dir, journalName(2)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := putID(jl, 2); err == nil {
		t.Fatal("an append needing a file that cannot be made succeeded")
	}
	if err := putID(jl, 3); err != nil {
		t.Fatalf("the append after a failed rotation: %v", err)
	}
	ids := readIDs(t, dir)
	if !slices.Equal(ids, []uint64{1, 3}) {
		t.Fatalf("records %v, want [1 3]", ids)
	}
}
