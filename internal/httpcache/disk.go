package httpcache

// The disk tier keeps large bodies in files, one per stored variant, so
// that the memory tier holds only their heads and can keep many of them.
//
// The index is in memory: the variant holds a *diskBody (file name and
// size); the tier keeps its bodies in LRU order under a byte bound. Nothing
// on disk is trusted across runs: Open empties the directory of the files
// pier names, Close removes them. A file that is gone or has another size
// when a request opens it is a miss, never a wrong body.
//
// File names are never reused within a run (a sequence number), so a
// variant can never open another variant's body. A request that finds a
// disk variant opens its file first (pin) and then reads from that handle:
// an eviction or purge that unlinks the file meanwhile does not take the
// bytes away from it.

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/maypok86/otter/v2"
)

// DiskOptions configures the disk tier for large bodies. It is used by
// Open; New ignores it.
type DiskOptions struct {
	// Dir is where bodies are written. If empty, there is no disk tier.
	// It is created if missing; files pier names there (*.body, *.tmp)
	// are removed when the cache opens and closes, other files are left
	// alone. Two caches cannot use one directory at a time.
	Dir string

	// MaxBytes bounds the bytes of bodies on disk, those being written
	// included; the least recently used go first. If 0, 1 GiB.
	MaxBytes int64

	// MinBytes is the body size from which a response is stored on disk
	// instead of in memory. If 0, 64 KiB.
	MinBytes int64

	// MaxEntryBytes is the largest body stored on disk; larger responses
	// pass through. If 0, MaxBytes/4.
	MaxEntryBytes int64
}

// Open returns an empty cache, with a disk tier when opts.Disk.Dir is set.
func Open(opts Options) (*Cache, error) {
	c := New(opts)
	if opts.Disk.Dir == "" {
		return c, nil
	}
	d, err := openDisk(opts.Disk, c.log)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.disk = d
	return c, nil
}

// DiskUsage reports the bytes and files of the disk tier (0, 0 without
// one). In-progress writes count in bytes, not in files.
func (c *Cache) DiskUsage() (bytes int64, files int) {
	if c.disk == nil {
		return 0, 0
	}
	d := c.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used + d.reserved, d.lru.Len()
}

// diskTier is the set of body files of one cache.
type diskTier struct {
	dir                string
	max, min, maxEntry int64
	log                *slog.Logger
	lock               *os.File  // holds the directory's flock
	bufs               sync.Pool // *[]byte of copyBuf bytes
	seq                atomic.Uint64

	// mu guards lru, used, reserved, closed and every diskBody.elem. It
	// is taken under the memory tier's bucket locks (onDelete runs as
	// OnAtomicDeletion), so nothing holding it may call the memory tier.
	mu       sync.Mutex
	lru      list.List // *diskBody, most recently used at the front
	used     int64     // sizes of the bodies in lru
	reserved int64     // bytes of bodies being written
	closed   bool
}

// diskBody is one body file. Immutable but for elem.
type diskBody struct {
	name string
	size int64
	elem *list.Element // in diskTier.lru; nil once the file is released
}

const lockName = ".pier-httpcache.lock"

func openDisk(o DiskOptions, log *slog.Logger) (*diskTier, error) {
	d := &diskTier{dir: o.Dir, max: o.MaxBytes, min: o.MinBytes, maxEntry: o.MaxEntryBytes, log: log}
	if d.max <= 0 {
		d.max = 1 << 30
	}
	if d.min <= 0 {
		d.min = 64 << 10
	}
	if d.maxEntry <= 0 {
		d.maxEntry = d.max / 4
	}
	d.maxEntry = min(d.maxEntry, d.max)
	if d.min > d.maxEntry {
		return nil, fmt.Errorf("httpcache: disk tier: bodies from %d bytes would go to disk, but it takes none above %d (a quarter of its size): raise its size or lower the threshold", d.min, d.maxEntry)
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("httpcache: disk tier: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(d.dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("httpcache: disk tier: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("httpcache: disk tier: %s is in use by another cache (%w)", d.dir, err)
	}
	d.lock = f
	// The index of a previous run is gone with its process: its files
	// cannot be trusted to match anything, so they go.
	if n, err := d.sweep(); err != nil {
		d.unlock()
		return nil, fmt.Errorf("httpcache: disk tier: empty %s: %w", d.dir, err)
	} else if n > 0 {
		log.Info("httpcache: removed the bodies of a previous run", "dir", d.dir, "files", n)
	}
	log.Info("httpcache: disk tier for large bodies", "dir", d.dir, "max_bytes", d.max, "min_body_bytes", d.min, "max_body_bytes", d.maxEntry)
	return d, nil
}

func (d *diskTier) unlock() {
	os.Remove(d.lock.Name())
	d.lock.Close()
}

// ours reports a file name the disk tier makes: <hex>-<seq>.body or
// <seq>.tmp.
func ours(name string) bool {
	if base, ok := strings.CutSuffix(name, ".tmp"); ok {
		_, err := strconv.ParseUint(base, 10, 64)
		return err == nil
	}
	base, ok := strings.CutSuffix(name, ".body")
	if !ok {
		return false
	}
	h, seq, ok := strings.Cut(base, "-")
	if _, err := hex.DecodeString(h); err != nil || !ok || h == "" {
		return false
	}
	_, err := strconv.ParseUint(seq, 10, 64)
	return err == nil
}

// sweep removes the files the disk tier names and reports how many went.
func (d *diskTier) sweep() (int, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !e.Type().IsRegular() || !ours(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(d.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, err
		}
		n++
	}
	return n, nil
}

// close removes every body file and the lock. Writes still running fail
// to commit and remove their own files.
func (d *diskTier) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for e := d.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*diskBody).elem = nil
	}
	d.lru.Init()
	d.used = 0
	d.mu.Unlock()
	if _, err := d.sweep(); err != nil {
		d.log.Warn("httpcache: disk tier: remove bodies", "dir", d.dir, "err", err)
	}
	d.unlock()
}

func (d *diskTier) path(name string) string { return filepath.Join(d.dir, name) }

// release removes b's file, once.
func (d *diskTier) release(b *diskBody) {
	d.mu.Lock()
	e := b.elem
	if e != nil {
		d.lru.Remove(e)
		d.used -= b.size
		b.elem = nil
	}
	d.mu.Unlock()
	if e != nil {
		d.remove(b.name)
	}
}

func (d *diskTier) remove(name string) {
	if err := os.Remove(d.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Warn("httpcache: disk tier: remove body", "file", name, "err", err)
	}
}

// reserve makes room for n more bytes being written, evicting the least
// recently used bodies; false if that cannot be.
func (d *diskTier) reserve(n int64) bool {
	var victims []string
	d.mu.Lock()
	for d.used+d.reserved+n > d.max && d.lru.Len() > 0 {
		b := d.lru.Remove(d.lru.Back()).(*diskBody)
		b.elem = nil
		d.used -= b.size
		victims = append(victims, b.name)
	}
	ok := !d.closed && d.used+d.reserved+n <= d.max
	if ok {
		d.reserved += n
	}
	d.mu.Unlock()
	for _, name := range victims {
		d.remove(name)
	}
	return ok
}

func (d *diskTier) unreserve(n int64) {
	d.mu.Lock()
	d.reserved -= n
	d.mu.Unlock()
}

// pin opens v's body for one request and returns a copy of v that reads
// it (fh), or nil when the file is gone or not the size stored (a miss;
// the body is released). The caller closes the copy's fh.
func (c *Cache) pin(v *variant) *variant {
	d, b := c.disk, v.disk
	if d == nil {
		return nil
	}
	d.mu.Lock()
	live := b.elem != nil
	if live {
		d.lru.MoveToFront(b.elem)
	}
	d.mu.Unlock()
	if !live {
		return nil
	}
	f, err := os.Open(d.path(b.name))
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil && fi.Size() != b.size {
			err = fmt.Errorf("size %d, want %d", fi.Size(), b.size)
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		c.log.Warn("httpcache: disk body unusable, answering as a miss", "file", b.name, "err", err)
		d.release(b)
		return nil
	}
	p := *v
	p.fh = f
	return &p
}

// copyBody writes v's pinned body to w: by w's ReadFrom when it has one
// (sendfile from the file to the client's socket), otherwise in large
// pieces from a pooled buffer, as io.Copy's 32 KiB steps would cost a read
// and a write system call each.
func (d *diskTier) copyBody(w io.Writer, v *variant) {
	if rf, ok := w.(io.ReaderFrom); ok {
		// The file is this request's own, at offset 0 (pin opened it).
		n, err := rf.ReadFrom(io.LimitReader(v.fh, v.disk.size))
		if n >= v.disk.size {
			return
		}
		if fi, serr := v.fh.Stat(); err != nil && serr == nil && fi.Size() == v.disk.size {
			return // the file is whole: the client went
		}
		// Shortened or unreadable under us: as below.
		d.log.Warn("httpcache: disk body unreadable", "file", v.disk.name, "sent", n, "want", v.disk.size, "err", err)
		d.release(v.disk)
		panic(http.ErrAbortHandler)
	}
	bp, _ := d.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, copyBuf)
		bp = &b
	}
	defer d.bufs.Put(bp)
	buf := *bp
	for off := int64(0); off < v.disk.size; {
		n, err := v.fh.ReadAt(buf[:min(int64(len(buf)), v.disk.size-off)], off)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client went
			}
			off += int64(n)
		}
		if err != nil && off < v.disk.size {
			// Shortened or unreadable under us: the client sees a cut
			// body (the Content-Length says so), never a wrong one.
			d.log.Warn("httpcache: disk body unreadable", "file", v.disk.name, "read", off, "want", v.disk.size, "err", err)
			d.release(v.disk)
			panic(http.ErrAbortHandler)
		}
	}
}

// copyBuf is the size of the buffers bodies are copied through.
const copyBuf = 256 << 10

// onDelete releases the disk bodies of an object the memory tier dropped
// (evicted, expired, purged). Replacements are put's business: a new
// object may keep some variants of the old one.
func (c *Cache) onDelete(e otter.DeletionEvent[string, *object]) {
	if c.disk == nil || e.Cause == otter.CauseReplacement {
		return
	}
	for _, v := range e.Value.variants {
		if v.disk != nil {
			c.disk.release(v.disk)
		}
	}
}

// dropped releases the disk bodies of old's variants that o does not
// keep.
func (c *Cache) dropped(old, o *object) {
	if c.disk == nil || old == nil {
		return
	}
outer:
	for _, ov := range old.variants {
		if ov.disk == nil {
			continue
		}
		for _, v := range o.variants {
			if v.disk == ov.disk {
				continue outer
			}
		}
		c.disk.release(ov.disk)
	}
}

// fits reports whether a body of n bytes (its Content-Length) may be
// stored in some tier.
func (c *Cache) fits(n int64) bool {
	return n <= c.maxEntry || (c.disk != nil && n >= c.disk.min && n <= c.disk.maxEntry)
}

// spill is a body being written to the disk tier while it streams to the
// client.
type spill struct {
	f        *os.File
	seq      uint64
	n        int64 // bytes written
	reserved int64 // bytes reserved in the tier
}

// spillReserve is how much room a spill takes at a time, so that a body
// streamed in small writes does not take the tier's lock for each.
const spillReserve = 256 << 10

// toDisk takes p, the next part of a storable body, when the body belongs
// on disk: from the write that brings it to the tier's MinBytes on. A body
// that outgrows the tier, or a write that fails, is not stored
// (overflow); the client is served all the same. It reports whether it
// took p.
func (cw *captureWriter) toDisk(p []byte) bool {
	d := cw.c.disk
	if cw.spill == nil {
		if int64(len(cw.buf)+len(p)) < d.min {
			return false
		}
		s := &spill{seq: d.seq.Add(1)}
		f, err := os.OpenFile(d.path(strconv.FormatUint(s.seq, 10)+".tmp"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			cw.c.log.Warn("httpcache: disk tier: cannot write a body, not storing it", "err", err)
			cw.overflow, cw.buf = true, nil
			return true
		}
		s.f, cw.spill = f, s
		head := cw.buf
		cw.buf = nil
		if !cw.spillWrite(head) {
			return true
		}
	}
	cw.spillWrite(p)
	return true
}

func (cw *captureWriter) spillWrite(p []byte) bool {
	d, s := cw.c.disk, cw.spill
	if len(p) == 0 {
		return true
	}
	if s.n+int64(len(p)) > d.maxEntry {
		cw.overflow = true
		cw.dropSpill()
		return false
	}
	if need := s.n + int64(len(p)) - s.reserved; need > 0 {
		need = max(need, min(spillReserve, d.maxEntry-s.reserved))
		if !d.reserve(need) {
			cw.overflow = true
			cw.dropSpill()
			return false
		}
		s.reserved += need
	}
	if _, err := s.f.Write(p); err != nil {
		cw.c.log.Warn("httpcache: disk tier: cannot write a body, not storing it", "err", err)
		cw.overflow = true
		cw.dropSpill()
		return false
	}
	s.n += int64(len(p))
	return true
}

// dropSpill removes the file of a body not (or not yet) committed; fill
// defers it so that nothing is left behind by an error or a panic.
func (cw *captureWriter) dropSpill() {
	s := cw.spill
	if s == nil {
		return
	}
	cw.spill = nil
	s.f.Close()
	cw.c.disk.remove(strconv.FormatUint(s.seq, 10) + ".tmp")
	cw.c.disk.unreserve(s.reserved)
}

// commitSpill turns the written body into v's disk body, named after key
// and v's variant; false if that failed and v must not be stored.
func (cw *captureWriter) commitSpill(key string, v *variant) bool {
	d, s := cw.c.disk, cw.spill
	cw.spill = nil
	tmp := strconv.FormatUint(s.seq, 10) + ".tmp"
	sum := sha256.Sum256([]byte(key + "\x00" + varyKey(varyNames(v.header), cw.req.Header)))
	b := &diskBody{name: hex.EncodeToString(sum[:12]) + "-" + strconv.FormatUint(s.seq, 10) + ".body", size: s.n}
	err := s.f.Close()
	if err == nil {
		err = os.Rename(d.path(tmp), d.path(b.name))
	}
	if err != nil {
		cw.c.log.Warn("httpcache: disk tier: cannot keep a body, not storing it", "err", err)
		d.remove(tmp)
		d.unreserve(s.reserved)
		return false
	}
	d.mu.Lock()
	d.reserved -= s.reserved
	ok := !d.closed
	if ok {
		b.elem = d.lru.PushFront(b)
		d.used += b.size
	}
	d.mu.Unlock()
	if !ok {
		d.remove(b.name)
		return false
	}
	v.disk, v.body = b, nil
	v.header["Content-Length"] = []string{strconv.FormatInt(b.size, 10)}
	return true
}
