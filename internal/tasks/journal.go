package tasks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The journal is what makes a put or a delete durable before its answer
// without waiting for JetStream: the record is copied into a file under
// Options.Dir mapped shared into memory (in the kernel's page cache when the
// copy ends, as a write(2) would put it, and as beanstalkd's binlog; neither
// fsyncs per record; the mapping saves a system call per record), then the
// drain stores it in the TASKS stream. A
// journal file is removed once every record in it is drained; at start,
// the records still on disk are applied to the stream again, idempotently
// (a put already stored is not stored twice).
//
// A record on disk:
//
//	u32 length of what follows the checksum | u32 CRC-32C of it |
//	u8 kind | u64 id | u64 seq (delete) or created unix ns (put) |
//	u32 pri | u32 ttr ms | u16 len, app | u16 len, queue | u32 len, body
//
// A record cut short or with a bad checksum ends its file (the engine died
// while writing it: it was never acknowledged); so do the zeros after the
// last record of a file made to its full size for the mapping.

const (
	recPut    = 'Q' // a ready task was put (the drain stores it on r.b<ms>)
	recDelete = 'D' // a ready or reserved task was deleted
	// recCounts: the stats-job counters of a task that stays ready or
	// reserved changed (body: jobCounts.encode()); see jobcounts.go.
	recCounts = 'C'
	// recPutOwn: a put journaled by an engine whose drain stored each
	// task on a subject of its own, r.<id> (before 2026-11-22); read as a
	// recPut with ownSubject set, never written.
	recPutOwn = 'P'
)

// journalRotate is the size of a journal file (bigger only for a group of
// records that needs more): the journal starts a new one when it is full,
// so that drained files can be removed while the engine runs; it also
// bounds what a start after kill -9 reads again.
const journalRotate = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one journal entry, as written and as replayed.
type record struct {
	kind       byte
	id, seq    uint64 // seq: the stream message a delete removes (0: not known then)
	created    time.Time
	pri        uint32
	ttr        time.Duration
	app, queue string
	body       []byte
	j          *job // the live task (nil when replayed)
	file       int  // journal file it is in (replayed records)
	tombed     bool // a delete whose id is in Service.tomb
	ownSubject bool // a replayed put that was drained to r.<id> (recPutOwn)
}

// queued is a record written and waiting for the drain: what the drain
// needs of it. Its task's app, queue, body and attributes are its job's
// (a journaled put keeps its body in the job until it is stored), so the
// queue — about a second of records — holds a quarter of the bytes and
// two pointers a record instead of five.
type queued struct {
	j       *job      // the live task
	id, seq uint64    // seq: the stream message a delete removes (0: not known then)
	at      time.Time // when it was written
	file    int32     // journal file it is in
	kind    byte
	sent    bool // the drain sent the put once already
	tombed  bool // a delete whose id is in Service.tomb
}

// journal appends records to numbered files in dir.
//
// Group commit, where the file is written with write(2) (not mapped):
// records appended while another appender is in write(2) are encoded into
// the next group, and one of their appenders writes the whole group with
// one write(2) once the write in progress has ended (the others wait for
// it). With one connection nothing changes — each record is its own
// group — and with several a put or delete costs a fraction of a write.
// Into a mapped file each group is copied holding mu. Every appender
// returns only once its group is written, so an answer never goes out
// before its record is in the kernel.
type journal struct {
	dir string

	mu     sync.Mutex // guards everything below
	f      *os.File
	m      []byte // f mapped (see mapJournal); nil: f is written with write(2)
	fileNo int
	size   int64
	// broken: a write failed, perhaps part way; the next write starts a
	// new file, so that a torn record cannot hide the records after it.
	broken bool
	// cur is the group being filled; writing is set while its writer is
	// in write(2) without mu; groupDone is broadcast when a group ends.
	cur       *group
	writing   bool
	groupDone *sync.Cond
	spare     []byte   // the last written group's buffer, reused
	spareRecs []record // and its records slice, cleared
	free      *group   // a group all of whose members have returned, for reuse
	// pending are the records written, not yet taken by the drain: a
	// ring, as the drain takes from the front a little at a time (with
	// the drain delay, a second's worth of records stays in it) while
	// groups are added at the back. A slice copied down, or grown past
	// its dead front, cost about a third of the bytes allocated per job.
	pending recRing
	// appended counts records written since start; the drain's barrier
	// waits until it has drained this many.
	appended uint64
	writes   uint64        // groups written since start
	kick     chan struct{} // capacity 1: wakes the drain
	urgent   chan struct{} // capacity 1: a barrier waits; drain everything now
}

// group is records written together. Guarded by journal.mu.
type group struct {
	buf  []byte   // the records, encoded
	recs []record // the records
	done bool     // written, or failed with err
	err  error
	// members is how many appenders are in the group and not returned;
	// the last one to return frees it for reuse (one connection then
	// allocates no group per record).
	members int
}

func journalName(n int) string { return fmt.Sprintf("%08d.journal", n) }

// journalFiles lists the journal files in dir, oldest first.
func journalFiles(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tasks: journal: %w", err)
	}
	var nums []int
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".journal")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(base); err == nil {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// openJournal starts a new journal file in dir numbered after the
// existing ones (which replay reads, then removes).
func openJournal(dir string, next int) (*journal, error) {
	j := &journal{dir: dir, fileNo: next - 1, cur: &group{}, kick: make(chan struct{}, 1), urgent: make(chan struct{}, 1)}
	j.groupDone = sync.NewCond(&j.mu)
	if err := j.rotate(0); err != nil {
		return nil, err
	}
	return j, nil
}

// rotate opens the next file, with room for at least need bytes when
// mapped, and closes the current one. When the open fails the current file
// stays (full or broken: the next write tries again, under the next
// number). Caller holds mu (or is the constructor).
func (jl *journal) rotate(need int) error {
	jl.fileNo++
	f, err := os.OpenFile(filepath.Join(jl.dir, journalName(jl.fileNo)), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("tasks: journal: %w", err)
	}
	jl.closeFile()
	jl.f, jl.size = f, 0
	// Where the file cannot be mapped (no fallocate on its file system,
	// no room), it is written with write(2), from its start.
	jl.m, _ = mapJournal(f, max(journalRotate, need))
	return nil
}

// closeFile unmaps and closes the current file. Caller holds mu.
func (jl *journal) closeFile() {
	if jl.m != nil {
		unmapJournal(jl.m)
		jl.m = nil
	}
	if jl.f != nil {
		jl.f.Close()
		jl.f = nil
	}
}

// append writes r (in a group, see journal) and queues it for the drain.
// When it returns nil the record is in the kernel: it survives the
// engine's death.
func (jl *journal) append(r record) error {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	if jl.f == nil {
		return ErrDraining // closed by Service.Close
	}
	g := jl.cur
	g.buf = encodeRecord(g.buf, r)
	g.recs = append(g.recs, r)
	g.members++
	for !g.done {
		if jl.writing {
			jl.groupDone.Wait()
			continue
		}
		// No write in progress, so g is still the group being filled
		// (groups are written in order): write it.
		jl.writeGroup(g)
	}
	err := g.err
	if g.members--; g.members == 0 {
		*g = group{} // its last member is done with it: reuse it
		jl.free = g
	}
	return err
}

// writeGroup writes g, the group being filled, in one copy or write(2);
// the appenders that come meanwhile fill the next. Caller holds mu.
func (jl *journal) writeGroup(g *group) {
	next := jl.free
	if next == nil {
		next = &group{}
	}
	next.buf, next.recs = jl.spare[:0], jl.spareRecs[:0]
	jl.cur, jl.free, jl.spare, jl.spareRecs = next, nil, nil, nil
	err := jl.prepare(len(g.buf))
	if err == nil && jl.m != nil {
		// Holding mu: a copy takes less time than parking and waking
		// the appenders that would wait for it.
		copy(jl.m[jl.size:], g.buf)
	} else if err == nil {
		jl.writing = true
		f := jl.f
		jl.mu.Unlock()
		_, err = f.Write(g.buf)
		jl.mu.Lock()
		jl.writing = false
		if err != nil {
			jl.broken = true
			err = fmt.Errorf("tasks: journal write: %w", err)
		}
	}
	if err == nil {
		jl.size += int64(len(g.buf))
		jl.pending.push(g.recs, int32(jl.fileNo), time.Now())
		jl.appended += uint64(len(g.recs))
		jl.writes++
		select {
		case jl.kick <- struct{}{}:
		default:
		}
	}
	g.done, g.err = true, err
	clear(g.recs) // the drain owns the records' jobs and bodies now
	jl.spare, jl.spareRecs = g.buf, g.recs
	g.buf, g.recs = nil, nil
	jl.groupDone.Broadcast()
}

// prepare makes the file ready for a write of n bytes: open, rotated when
// full (a mapped file: when n bytes do not fit) or after a failed write.
// Caller holds mu.
func (jl *journal) prepare(n int) error {
	if jl.f == nil {
		return ErrDraining
	}
	full := jl.size >= journalRotate
	if jl.m != nil {
		full = int(jl.size)+n > len(jl.m)
	}
	if full || jl.broken {
		if err := jl.rotate(n); err != nil {
			return err
		}
		jl.broken = false
	}
	return nil
}

// take hands the drain the records written since it last asked and no
// later than cutoff (all of them with a zero cutoff), and how many
// records were written up to the last one it hands out.
func (jl *journal) take(into []queued, cutoff time.Time) ([]queued, uint64) {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	p := &jl.pending
	n := p.n
	if !cutoff.IsZero() {
		n = 0
		for n < p.n && !p.at(n).at.After(cutoff) {
			n++
		}
	}
	into = p.pop(into, n)
	return into, jl.appended - uint64(p.n)
}

// oldestAt is when the oldest record not taken by the drain was written
// (zero when there is none).
func (jl *journal) oldestAt() time.Time {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	if jl.pending.n == 0 {
		return time.Time{}
	}
	return jl.pending.at(0).at
}

// removeBefore deletes the files numbered below n: all their records are
// in the stream.
func (jl *journal) removeBefore(n int) {
	nums, err := journalFiles(jl.dir)
	if err != nil {
		return
	}
	for _, k := range nums {
		if k < n {
			os.Remove(filepath.Join(jl.dir, journalName(k)))
		}
	}
}

// close closes the journal; drained, it also removes its files (all is
// in the stream, nothing to read again at the next start).
func (jl *journal) close(drained bool) {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	for jl.writing {
		jl.groupDone.Wait() // a group being written is answered written
	}
	jl.closeFile()
	if drained && jl.pending.n == 0 {
		if nums, err := journalFiles(jl.dir); err == nil {
			for _, n := range nums {
				os.Remove(filepath.Join(jl.dir, journalName(n)))
			}
		}
	}
}

// encodeRecord appends r to b.
func encodeRecord(b []byte, r record) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // length, checksum
	b = append(b, r.kind)
	b = binary.LittleEndian.AppendUint64(b, r.id)
	if r.kind == recPut {
		b = binary.LittleEndian.AppendUint64(b, uint64(r.created.UnixNano()))
	} else {
		b = binary.LittleEndian.AppendUint64(b, r.seq)
	}
	b = binary.LittleEndian.AppendUint32(b, r.pri)
	b = binary.LittleEndian.AppendUint32(b, uint32(min(r.ttr.Milliseconds(), 1<<32-1)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.app)))
	b = append(b, r.app...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.queue)))
	b = append(b, r.queue...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.body)))
	b = append(b, r.body...)
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-8))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], castagnoli))
	return b
}

// errTorn: the record is cut short or damaged.
var errTorn = errors.New("torn journal record")

// decodeRecord reads one record from the front of b and returns it and
// its size on disk.
func decodeRecord(b []byte) (record, int, error) {
	if len(b) < 8 {
		return record{}, 0, errTorn
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 1+8+8+4+4+2+2+4 || len(b)-8 < n {
		return record{}, 0, errTorn
	}
	p := b[8 : 8+n]
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return record{}, 0, errTorn
	}
	r := record{kind: p[0]}
	switch r.kind {
	case recPut, recDelete, recCounts:
	case recPutOwn:
		r.kind, r.ownSubject = recPut, true
	default:
		return record{}, 0, errTorn
	}
	r.id = binary.LittleEndian.Uint64(p[1:])
	v := binary.LittleEndian.Uint64(p[9:])
	if r.kind == recPut {
		r.created = time.Unix(0, int64(v))
	} else {
		r.seq = v
	}
	r.pri = binary.LittleEndian.Uint32(p[17:])
	r.ttr = time.Duration(binary.LittleEndian.Uint32(p[21:])) * time.Millisecond
	rest := p[25:]
	var ok bool
	if r.app, rest, ok = cutString16(rest); !ok {
		return record{}, 0, errTorn
	}
	if r.queue, rest, ok = cutString16(rest); !ok {
		return record{}, 0, errTorn
	}
	if len(rest) < 4 || int(binary.LittleEndian.Uint32(rest)) != len(rest)-4 {
		return record{}, 0, errTorn
	}
	r.body = slices.Clone(rest[4:])
	return r, 8 + n, nil
}

func cutString16(b []byte) (string, []byte, bool) {
	if len(b) < 2 {
		return "", nil, false
	}
	n := int(binary.LittleEndian.Uint16(b))
	if len(b)-2 < n {
		return "", nil, false
	}
	return string(b[2 : 2+n]), b[2+n:], true
}

// readJournal returns the intact records of file n, in order.
func readJournal(dir string, n int) ([]record, error) {
	f, err := os.Open(filepath.Join(dir, journalName(n)))
	if err != nil {
		return nil, fmt.Errorf("tasks: journal: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("tasks: journal: %w", err)
	}
	var out []record
	for len(b) > 0 {
		r, size, err := decodeRecord(b)
		if err != nil {
			break // the engine died writing it: never acknowledged
		}
		r.file = n
		out = append(out, r)
		b = b[size:]
	}
	return out, nil
}

// counts returns how many records wait for the drain and how many were
// written since start.
func (jl *journal) counts() (pending int, appended uint64) {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	return jl.pending.n, jl.appended
}

// oldest is the number of the oldest file holding a record not yet
// taken by the drain (the current file when there is none).
func (jl *journal) oldest() int {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	if jl.pending.n > 0 {
		return int(jl.pending.at(0).file)
	}
	return jl.fileNo
}

// recRing is a queue of records for the drain: n of them from
// buf[head], wrapping.
type recRing struct {
	buf     []queued
	head, n int
}

// at is the i-th record from the front.
func (q *recRing) at(i int) *queued { return &q.buf[(q.head+i)%len(q.buf)] }

// push adds rs, written to file at at, at the back, growing the ring
// (twice as big) when full.
func (q *recRing) push(rs []record, file int32, at time.Time) {
	if q.n+len(rs) > len(q.buf) {
		n := q.n
		buf := make([]queued, max(2*len(q.buf), n+len(rs), 64))
		q.pop(buf[:0], n) // into buf's own array: it has room
		q.buf, q.head, q.n = buf, 0, n
	}
	for i := range rs {
		r := &rs[i]
		q.buf[(q.head+q.n)%len(q.buf)] = queued{j: r.j, id: r.id, seq: r.seq, at: at, file: file, kind: r.kind, tombed: r.tombed}
		q.n++
	}
}

// pop moves the k records at the front to the end of into.
func (q *recRing) pop(into []queued, k int) []queued {
	for k > 0 {
		seg := q.buf[q.head:min(q.head+k, len(q.buf))]
		into = append(into, seg...)
		clear(seg) // their jobs and bodies are the taker's now
		q.head = (q.head + len(seg)) % len(q.buf)
		q.n -= len(seg)
		k -= len(seg)
	}
	return into
}
