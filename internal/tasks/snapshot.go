package tasks

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"pier/internal/store"
)

// The index snapshot makes a start after a clean stop fast. Rebuilding the
// index from the stream reads every message, bodies included — minutes for
// a backlog of millions of tasks. At a clean stop, once the journal is all
// drained, Close writes what the index holds without the bodies (about 80
// bytes a task) to $dir/index.snapshot, with the stream's last sequence and
// message count then. The next start takes it (removing the file first, so
// that a crash later cannot use it again), reads only the stream's messages
// after that sequence, and uses the snapshot if the stream lost nothing up
// to it meanwhile: its message count then, less what came after, plus the
// delayed tasks whose schedule fired (the server removes the schedule
// message and stores the task after the snapshot's sequence) is the
// snapshot's count. Otherwise — and after a kill -9, which leaves no
// snapshot — the whole stream is read. Tasks loaded from a snapshot have
// their bodies in the stream only (read back when reserved, as past
// Options.Memory).
//
// The file: "PIERIDX1" | u64 last seq | u64 messages | u32 tasks | tasks |
// u32 CRC-32C of all before; a task: u64 id | u64 seq | u32 pri |
// u32 ttr ms | i64 created unix ns | i32 attempt | 5 x i32 counters |
// u8 flags (1: on r.*) | 4 x (u16 len, bytes): app, queue, name, path.

const snapshotName = "index.snapshot"

var snapshotMagic = []byte("PIERIDX1")

// snapshot is the index as a clean stop left it.
type snapshot struct {
	last, msgs uint64 // the stream's last sequence and message count
	tasks      []snapTask
}

type snapTask struct {
	id, seq                uint64
	pri                    uint32
	ttr                    time.Duration
	created                time.Time
	attempt                int32
	counts                 jobCounts
	onR                    bool
	app, queue, name, path string
}

func encodeSnapshot(sn snapshot) []byte {
	b := append([]byte(nil), snapshotMagic...)
	b = binary.LittleEndian.AppendUint64(b, sn.last)
	b = binary.LittleEndian.AppendUint64(b, sn.msgs)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(sn.tasks)))
	for _, t := range sn.tasks {
		b = binary.LittleEndian.AppendUint64(b, t.id)
		b = binary.LittleEndian.AppendUint64(b, t.seq)
		b = binary.LittleEndian.AppendUint32(b, t.pri)
		b = binary.LittleEndian.AppendUint32(b, uint32(min(t.ttr.Milliseconds(), 1<<32-1)))
		b = binary.LittleEndian.AppendUint64(b, uint64(t.created.UnixNano()))
		for _, v := range []int32{t.attempt, t.counts.reserves, t.counts.timeouts, t.counts.releases, t.counts.buries, t.counts.kicks} {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
		flags := byte(0)
		if t.onR {
			flags = 1
		}
		b = append(b, flags)
		for _, s := range []string{t.app, t.queue, t.name, t.path} {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
			b = append(b, s...)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadSnapshot = errors.New("tasks: damaged index snapshot")

func decodeSnapshot(b []byte) (snapshot, error) {
	var sn snapshot
	if len(b) < len(snapshotMagic)+8+8+4+4 || !bytes.Equal(b[:len(snapshotMagic)], snapshotMagic) {
		return sn, errBadSnapshot
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return sn, errBadSnapshot
	}
	p := body[len(snapshotMagic):]
	sn.last = binary.LittleEndian.Uint64(p)
	sn.msgs = binary.LittleEndian.Uint64(p[8:])
	n := int(binary.LittleEndian.Uint32(p[16:]))
	p = p[20:]
	const fixed = 8 + 8 + 4 + 4 + 8 + 6*4 + 1
	if n > len(p)/(fixed+4*2) {
		return sn, errBadSnapshot
	}
	sn.tasks = make([]snapTask, 0, n)
	for range n {
		if len(p) < fixed {
			return sn, errBadSnapshot
		}
		t := snapTask{
			id: binary.LittleEndian.Uint64(p), seq: binary.LittleEndian.Uint64(p[8:]),
			pri: binary.LittleEndian.Uint32(p[16:]),
			ttr: time.Duration(binary.LittleEndian.Uint32(p[20:])) * time.Millisecond,
		}
		t.created = time.Unix(0, int64(binary.LittleEndian.Uint64(p[24:])))
		var v [6]int32
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(p[32+4*i:]))
		}
		t.attempt, t.counts = v[0], jobCounts{v[1], v[2], v[3], v[4], v[5]}
		t.onR = p[56]&1 != 0
		p = p[fixed:]
		for _, s := range []*string{&t.app, &t.queue, &t.name, &t.path} {
			var ok bool
			if *s, p, ok = cutString16(p); !ok {
				return sn, errBadSnapshot
			}
		}
		sn.tasks = append(sn.tasks, t)
	}
	if len(p) != 0 {
		return sn, errBadSnapshot
	}
	return sn, nil
}

// writeSnapshot saves the index for the next start; Close calls it once
// the drain has stopped. Nothing is written unless the journal is all
// drained (its files are gone) and every task is in the stream.
func (s *Service) writeSnapshot(ctx context.Context) error {
	if files, err := journalFiles(s.opts.Dir); err != nil || len(files) > 0 {
		return err // the next start replays the journal: no snapshot
	}
	last, msgs, err := s.q.State(ctx)
	if err != nil {
		return err
	}
	sn := snapshot{last: last, msgs: msgs}
	s.mu.Lock()
	sn.tasks = make([]snapTask, 0, len(s.jobs))
	for _, j := range s.jobs {
		if j.seq == 0 || j.gone {
			s.mu.Unlock()
			return nil // not all stored: the stream is read at the next start
		}
		sn.tasks = append(sn.tasks, snapTask{
			id: j.id, seq: j.seq, pri: j.pri, ttr: j.ttr, created: j.created, attempt: j.attempt,
			counts: j.counts, onR: j.onR, app: j.q.app, queue: j.q.name, name: j.name, path: j.path,
		})
	}
	s.mu.Unlock()
	path := filepath.Join(s.opts.Dir, snapshotName)
	f, err := os.CreateTemp(s.opts.Dir, snapshotName+".*")
	if err != nil {
		return fmt.Errorf("tasks: write the index snapshot: %w", err)
	}
	defer os.Remove(f.Name())
	// No fsync: a file torn by a crash fails its checksum, and the next
	// start reads the stream instead.
	_, err = f.Write(encodeSnapshot(sn))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("tasks: write the index snapshot: %w", err)
	}
	return nil
}

// takeSnapshot reads the snapshot a clean stop left and removes it; false
// when there is none or it is damaged.
func (s *Service) takeSnapshot() (snapshot, bool) {
	path := filepath.Join(s.opts.Dir, snapshotName)
	b, err := os.ReadFile(path)
	if err != nil {
		return snapshot{}, false
	}
	if err := os.Remove(path); err != nil {
		s.log.Warn("remove the index snapshot; reading the stream", "err", err)
		return snapshot{}, false
	}
	sn, err := decodeSnapshot(b)
	if err != nil {
		s.log.Warn("index snapshot unreadable; reading the stream", "err", err)
		return snapshot{}, false
	}
	return sn, true
}

// fromSnapshot indexes sn's tasks if the stream lost none of its messages
// since (see the top of this file); it reports whether it did.
func (s *Service) fromSnapshot(ctx context.Context, sn snapshot) (bool, error) {
	last, msgs, err := s.q.State(ctx)
	if err != nil {
		return false, err
	}
	var after, fired uint64
	if last > sn.last {
		err := s.q.Scan(ctx, sn.last+1, func(m store.Message) bool {
			if m.Seq > last {
				return false
			}
			after++
			if st := state(m.Subject); st == "f" {
				if _, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64); err == nil {
					fired++ // a delayed task's schedule fired: its d.* message is gone
				}
			}
			return true
		})
		if err != nil {
			return false, err
		}
	}
	if last < sn.last || msgs+fired != sn.msgs+after {
		s.log.Info("index snapshot out of date; reading the stream", "snapshot_seq", sn.last, "seq", last,
			"snapshot_msgs", sn.msgs, "msgs", msgs, "after", after, "fired", fired)
		return false, nil
	}
	queues := map[qkey]*queue{}
	for _, t := range sn.tasks {
		k := qkey{t.app, t.queue}
		q := queues[k]
		if q == nil {
			if q, err = s.queue(ctx, t.app, t.queue); err != nil {
				return false, err
			}
			queues[k] = q
		}
		j := &job{
			id: t.id, q: q, pri: t.pri, ttr: t.ttr, created: t.created, name: t.name, path: t.path,
			seq: t.seq, onR: t.onR, attempt: t.attempt, counts: t.counts, saved: t.counts,
			bodyOut: true, hidx: -1,
		}
		s.mu.Lock()
		s.index(j)
		s.mu.Unlock()
	}
	return true, nil
}

// warmBodies reads back, oldest first, the bodies of tasks loaded from a
// snapshot while they fit under Options.Memory, so that a queue worked in
// order finds them at hand again. It stops at the bound, at the end of
// the stream, or when ctx ends; reserves meanwhile read what they need.
func (s *Service) warmBodies(ctx context.Context) {
	var full bool
	err := s.q.Scan(ctx, 1, func(m store.Message) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		j := s.jobs[messageID(m)]
		if j == nil || !j.bodyOut || j.seq != m.Seq {
			return true
		}
		if s.opts.Memory > 0 && s.bodyBytes+int64(len(m.Data)) > s.opts.Memory {
			full = true
			return false
		}
		j.body, j.bodyOut = m.Data, false
		s.bodyBytes += int64(len(m.Data))
		return true
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("read back task bodies after a start from the snapshot", "err", err)
	}
	s.log.Debug("task bodies read back", "memory_full", full)
}
