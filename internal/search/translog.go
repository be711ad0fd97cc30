package search

import (
	"bufio"
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
)

// The translog makes a write durable without waiting for bleve to persist
// it, the way Elasticsearch's translog does. Waiting for bleve's persister
// after every batch made indexing about twice as slow: the persister's
// in-memory merge and file writes could not overlap with the analysis of
// the next batch. Instead bleve runs with unsafe_batch (a batch returns
// once searchable, in memory) and each batch, once applied, is appended to
// the index's translog and fsynced before the write is acknowledged. On
// open, what the translog holds is applied again (it is idempotent: each
// operation carries the document's final source and version) and made
// durable, then the translog is removed.
//
// The log is kept in generations (translog-<n>.log in the index
// directory). When the current one grows past Options.TranslogSize, a new one
// is started and a durable bleve batch is used as a barrier: once it is
// persisted, so is every batch introduced before it, hence every operation
// of the older generations, which are then deleted.

// logOp is one document change as applied: the final source and version
// of an indexed document, or a deletion.
type logOp struct {
	id      string
	version int64
	deleted bool
	source  []byte
}

// logEntry is what one batch changed, with the last sequence number it
// gave.
type logEntry struct {
	seq int64
	ops []logOp
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// translog is the write-ahead log of one index.
type translog struct {
	dir string

	mu   sync.Mutex // guards f, gen, size
	f    *os.File
	gen  int64
	size int64
}

func translogName(gen int64) string { return fmt.Sprintf("translog-%016d.log", gen) }

// translogGens lists the generations present in dir, oldest first.
func translogGens(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list translog: %w", err)
	}
	var gens []int64
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "translog-")
		if !ok {
			continue
		}
		name, ok = strings.CutSuffix(name, ".log")
		if n, err := strconv.ParseInt(name, 10, 64); ok && err == nil {
			gens = append(gens, n)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// readTranslog reads the entries of one generation file. A torn or
// corrupt record ends it: it was being written when the process died, so
// its write was never acknowledged.
func readTranslog(path string, fn func(logEntry) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read translog: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var head [8]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return nil
		}
		n, sum := binary.LittleEndian.Uint32(head[:4]), binary.LittleEndian.Uint32(head[4:])
		if n > 1<<31 {
			return nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil || crc32.Checksum(payload, crcTable) != sum {
			return nil
		}
		e, err := decodeEntry(payload)
		if err != nil {
			return nil
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// openTranslog starts a new generation after the existing ones.
func openTranslog(dir string) (*translog, error) {
	gens, err := translogGens(dir)
	if err != nil {
		return nil, err
	}
	t := &translog{dir: dir}
	if len(gens) > 0 {
		t.gen = gens[len(gens)-1]
	}
	if err := t.startGen(); err != nil {
		return nil, err
	}
	return t, nil
}

// startGen opens the next generation. Called with mu held (or before the
// translog is shared).
func (t *translog) startGen() error {
	f, err := os.OpenFile(filepath.Join(t.dir, translogName(t.gen+1)), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("start translog: %w", err)
	}
	if err := syncDir(t.dir); err != nil {
		f.Close()
		return fmt.Errorf("start translog: %w", err)
	}
	if t.f != nil {
		t.f.Close()
	}
	t.f, t.gen, t.size = f, t.gen+1, 0
	return nil
}

// append writes e and fsyncs it. It reports whether the current
// generation has grown past limit (see rotate).
func (t *translog) append(e logEntry, limit int64) (full bool, err error) {
	payload := encodeEntry(e)
	rec := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(rec[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(payload, crcTable))
	rec = append(rec, payload...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return false, errors.New("translog closed")
	}
	if _, err := t.f.Write(rec); err != nil {
		return false, fmt.Errorf("append to translog: %w", err)
	}
	if err := t.f.Sync(); err != nil {
		return false, fmt.Errorf("sync translog: %w", err)
	}
	t.size += int64(len(rec))
	return t.size > limit, nil
}

// rotate starts a new generation and returns the current one's number:
// every generation below it may be removed once a barrier batch
// introduced after rotate returns is persisted.
func (t *translog) rotate() (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return 0, errors.New("translog closed")
	}
	if err := t.startGen(); err != nil {
		return 0, err
	}
	return t.gen, nil
}

// removeBelow deletes the generations older than gen.
func (t *translog) removeBelow(gen int64) error {
	gens, err := translogGens(t.dir)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g < gen {
			if err := os.Remove(filepath.Join(t.dir, translogName(g))); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove translog: %w", err)
			}
		}
	}
	return nil
}

// close closes the current generation; with removeAll (everything is
// persisted in bleve), it deletes every generation.
func (t *translog) close(removeAll bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	if removeAll && err == nil {
		err = t.removeBelow(t.gen + 1)
	}
	return err
}

// encodeEntry: uvarint seq, uvarint count, then per operation a kind
// byte (0 index, 1 delete), uvarint version, uvarint-prefixed id and, for
// index, uvarint-prefixed source. Binary, so that sources stay byte for
// byte as sent.
func encodeEntry(e logEntry) []byte {
	n := 20
	for _, op := range e.ops {
		n += 30 + len(op.id) + len(op.source)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(e.seq))
	b = binary.AppendUvarint(b, uint64(len(e.ops)))
	for _, op := range e.ops {
		kind := byte(0)
		if op.deleted {
			kind = 1
		}
		b = append(b, kind)
		b = binary.AppendUvarint(b, uint64(op.version))
		b = binary.AppendUvarint(b, uint64(len(op.id)))
		b = append(b, op.id...)
		if !op.deleted {
			b = binary.AppendUvarint(b, uint64(len(op.source)))
			b = append(b, op.source...)
		}
	}
	return b
}

var errBadEntry = errors.New("malformed translog entry")

func decodeEntry(b []byte) (logEntry, error) {
	var e logEntry
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errBadEntry
		}
		b = b[n:]
		return v, nil
	}
	bytesOf := func() ([]byte, error) {
		n, err := uv()
		if err != nil || n > uint64(len(b)) {
			return nil, errBadEntry
		}
		v := b[:n]
		b = b[n:]
		return v, nil
	}
	seq, err := uv()
	if err != nil {
		return e, err
	}
	count, err := uv()
	if err != nil || count > uint64(len(b)) {
		return e, errBadEntry
	}
	e.seq = int64(seq)
	e.ops = make([]logOp, 0, count)
	for range count {
		if len(b) == 0 {
			return e, errBadEntry
		}
		var op logOp
		op.deleted = b[0] == 1
		b = b[1:]
		v, err := uv()
		if err != nil {
			return e, err
		}
		op.version = int64(v)
		id, err := bytesOf()
		if err != nil {
			return e, err
		}
		op.id = string(id)
		if !op.deleted {
			if op.source, err = bytesOf(); err != nil {
				return e, err
			}
		}
		e.ops = append(e.ops, op)
	}
	if len(b) != 0 {
		return e, errBadEntry
	}
	return e, nil
}
