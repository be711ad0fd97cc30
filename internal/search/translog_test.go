package search

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTranslogEntries(t *testing.T) {
	tests := []logEntry{
		{seq: 1, ops: []logOp{{id: "a", version: 1, source: []byte(`{"t": "é  spaced"}`)}}},
		{seq: 900, ops: []logOp{{id: "a", version: 2, deleted: true}, {id: "", version: 1, source: []byte(`{}`)}}},
		{seq: 0, ops: []logOp{}},
	}
	for _, want := range tests {
		got, err := decodeEntry(encodeEntry(want))
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		for i := range got.ops {
			if len(got.ops[i].source) == 0 {
				got.ops[i].source = nil
			}
		}
		for i := range want.ops {
			if len(want.ops[i].source) == 0 {
				want.ops[i].source = nil
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
	if _, err := decodeEntry(encodeEntry(tests[0])[:5]); err == nil {
		t.Error("a cut entry decoded without error")
	}
}

// A record cut by a crash ends the log: the entries before it are read,
// not it.
func TestTranslogTornTail(t *testing.T) {
	dir := t.TempDir()
	tl, err := openTranslog(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := tl.append(logEntry{seq: int64(i + 1), ops: []logOp{{id: strconv.Itoa(i), version: 1, source: []byte(`{"n":1}`)}}}, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	tl.close(false)
	path := filepath.Join(dir, translogName(1))
	data, _ := os.ReadFile(path)
	for _, cut := range []int{len(data) - 1, len(data) - 12} {
		os.WriteFile(path, data[:cut], 0o600)
		var seqs []int64
		if err := readTranslog(path, func(e logEntry) error { seqs = append(seqs, e.seq); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(seqs, []int64{1, 2}) {
			t.Errorf("cut at %d: read %v, want [1 2]", cut, seqs)
		}
	}
	// a bad checksum also ends it
	bad := append([]byte{}, data...)
	bad[len(bad)-1] ^= 0xff
	os.WriteFile(path, bad, 0o600)
	n := 0
	readTranslog(path, func(logEntry) error { n++; return nil })
	if n != 2 {
		t.Errorf("corrupt last record: read %d entries, want 2", n)
	}
}

func FuzzTranslogDecode(f *testing.F) {
	f.Add(encodeEntry(logEntry{seq: 3, ops: []logOp{{id: "x", version: 2, source: []byte(`{"a":1}`)}, {id: "y", version: 4, deleted: true}}}))
	f.Add([]byte{})
	f.Add([]byte{1, 200, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEntry(data)
		if err != nil {
			return
		}
		again, err := decodeEntry(encodeEntry(e))
		if err != nil || len(again.ops) != len(e.ops) || again.seq != e.seq {
			t.Fatalf("re-encoding %+v: %+v, %v", e, again, err)
		}
		// a record of it reads back through the file reader
		payload := encodeEntry(e)
		rec := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
		rec = binary.LittleEndian.AppendUint32(rec, crc32.Checksum(payload, crcTable))
		path := filepath.Join(t.TempDir(), "log")
		os.WriteFile(path, append(rec, payload...), 0o600)
		n := 0
		readTranslog(path, func(logEntry) error { n++; return nil })
		if n != 1 {
			t.Fatalf("read %d records, want 1", n)
		}
	})
}

// TestKill9KeepsAcknowledgedWrites runs writers in a child process (this
// test binary again), kills it with SIGKILL while it writes, and checks
// that every write it reported acknowledged is there after reopening:
// written documents with their version, deleted ones gone. The translog
// is what makes them durable: bleve persists them later.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if dir := os.Getenv("PIER_SEARCH_KILL9_DIR"); dir != "" {
		kill9Child(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9KeepsAcknowledgedWrites$")
	cmd.Env = append(os.Environ(), "PIER_SEARCH_KILL9_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// "acked <round>" lines: round r wrote docs r-0..r-99 at version 1,
	// then rewrote r-0..r-49 (version 2) and deleted r-50..r-59
	acked := 0
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		if r, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked, _ = strconv.Atoi(r)
			acked++
			if acked >= 8 {
				break
			}
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() { // what was printed before the kill is acknowledged too
		if r, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked, _ = strconv.Atoi(r)
			acked++
		}
	}
	cmd.Wait()
	if acked == 0 {
		t.Fatal("the child acknowledged nothing")
	}

	logged := 0
	gens, _ := translogGens(filepath.Join(dir, "blog", "docs"))
	for _, g := range gens {
		readTranslog(filepath.Join(dir, "blog", "docs", translogName(g)), func(logEntry) error { logged++; return nil })
	}
	svc, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	ix, err := svc.Index(ctx, "blog", "docs", false)
	if err != nil {
		t.Fatal(err)
	}
	for r := range acked {
		for i := range 100 {
			id := fmt.Sprintf("%d-%d", r, i)
			src, version, found, err := ix.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case i >= 50 && i < 60:
				if found {
					t.Errorf("%s: deleted before the kill, found again", id)
				}
			case i < 50:
				if !found || version != 2 || !strings.Contains(string(src), `"v": 2`) {
					t.Errorf("%s: found %v version %d %s, want version 2", id, found, version, src)
				}
			default:
				if !found || version != 1 {
					t.Errorf("%s: found %v version %d, want version 1", id, found, version)
				}
			}
		}
	}
	t.Logf("%d rounds acknowledged before kill -9, all there (%d translog entries replayed)", acked, logged)
}

// kill9Child writes rounds until it is killed, printing each round once
// acknowledged.
func kill9Child(dir string) {
	svc, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	ix, err := svc.Index(ctx, "blog", "docs", true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for r := 0; ; r++ {
		var ops []Op
		for i := range 100 {
			ops = append(ops, Op{Action: "index", ID: fmt.Sprintf("%d-%d", r, i), Source: []byte(fmt.Sprintf(`{"title": "round %d doc %d", "v": 1}`, r, i))})
		}
		for i := range 50 {
			ops = append(ops, Op{Action: "index", ID: fmt.Sprintf("%d-%d", r, i), Source: []byte(fmt.Sprintf(`{"title": "round %d doc %d", "v": 2}`, r, i))})
		}
		for i := 50; i < 60; i++ {
			ops = append(ops, Op{Action: "delete", ID: fmt.Sprintf("%d-%d", r, i)})
		}
		if _, err := ix.Write(ctx, ops); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", r)
	}
}

// A translog past its size is flushed into bleve and its old generations
// removed, so it stays small; what it held is still there after reopening.
func TestTranslogFlush(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	svc, err := Open(Options{Dir: dir, TranslogSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := svc.Index(ctx, "blog", "docs", true)
	if err != nil {
		t.Fatal(err)
	}
	for r := range 20 {
		var ops []Op
		for i := range 20 {
			ops = append(ops, Op{Action: "index", ID: fmt.Sprintf("%d-%d", r, i), Source: []byte(fmt.Sprintf(`{"body": "%s"}`, strings.Repeat("word ", 20)))})
		}
		if _, err := ix.Write(ctx, ops); err != nil {
			t.Fatal(err)
		}
		if gens, _ := translogGens(ix.path); len(gens) > 2 {
			t.Fatalf("after round %d: %d translog generations, want at most 2", r, len(gens))
		}
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if gens, _ := translogGens(ix.path); len(gens) != 0 {
		t.Errorf("after a clean close: translog generations %v, want none", gens)
	}
	svc, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ix, err = svc.Index(ctx, "blog", "docs", false)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := ix.DocCount(); n != 400 {
		t.Errorf("after reopening: %d documents, want 400", n)
	}
}
