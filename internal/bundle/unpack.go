package bundle

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Limits bound what Unpack accepts. A zero field means its default.
type Limits struct {
	MaxBytes int64 // total uncompressed size of the files; default 1 GiB
	MaxFiles int   // number of entries of any type; default 100000
}

const (
	defaultMaxBytes = 1 << 30
	defaultMaxFiles = 100000
)

func (l Limits) maxBytes() int64 {
	if l.MaxBytes > 0 {
		return l.MaxBytes
	}
	return defaultMaxBytes
}

func (l Limits) maxFiles() int {
	if l.MaxFiles > 0 {
		return l.MaxFiles
	}
	return defaultMaxFiles
}

// ErrLimit is wrapped by the error Unpack returns when an archive is over its Limits.
var ErrLimit = errors.New("bundle over limits")

// Unpack extracts a gzip'd tar (one made by Pack, or any other) into dir,
// creating dir if needed. It refuses, with an error naming the entry, absolute
// paths, ".." components, symlinks and hard links whose target leaves dir,
// device and fifo entries, and archives over lim. Every write goes through an
// os.Root opened on dir, so even a hostile archive (a symlink entry followed by
// a file entry through it, say) cannot create or change anything outside dir.
//
// Permission bits are kept (setuid, setgid and sticky bits are dropped);
// owners and times are not. On error, dir may hold a partial tree: callers
// unpack into a fresh directory and remove it on failure.
func Unpack(ctx context.Context, r io.Reader, dir string, lim Limits) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer zr.Close()
	u := &unpacker{root: root, lim: lim}
	// Metadata (headers, PAX records, padding) is bounded too, so a gzip bomb
	// of empty blocks cannot make us inflate forever.
	meta := int64(lim.maxFiles())*8192 + 1<<20
	tr := tar.NewReader(&limitedReader{r: zr, n: lim.maxBytes() + meta, ctx: ctx})
	if err := u.run(ctx, tr); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	return nil
}

type unpacker struct {
	root  *os.Root
	lim   Limits
	files int
	bytes int64
	dirs  []dirMode // applied at the end, so read-only dirs can still be filled
	links []string  // symlinks created, checked once the tree is complete
}

type dirMode struct {
	name string
	mode fs.FileMode
}

func (u *unpacker) run(ctx context.Context, tr *tar.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		u.files++
		if u.files > u.lim.maxFiles() {
			return fmt.Errorf("%w: more than %d entries", ErrLimit, u.lim.maxFiles())
		}
		if err := u.entry(tr, hdr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	// A link may only be judged once the tree is complete: "a/../x" is inside
	// until a later entry makes a a symlink to ".". Root.Stat follows links
	// and fails if the resolution leaves the root.
	for _, name := range u.links {
		if err := u.checkLink(name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		if err := u.root.Chmod(u.dirs[i].name, u.dirs[i].mode); err != nil {
			return err
		}
	}
	return nil
}

func (u *unpacker) entry(tr *tar.Reader, hdr *tar.Header) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	mode := fs.FileMode(hdr.Mode).Perm()
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return errors.New("entry names the bundle root")
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.root.MkdirAll(name, 0o700); err != nil {
			return err
		}
		u.dirs = append(u.dirs, dirMode{name, mode | 0o700})
		return nil
	case tar.TypeReg:
		if hdr.Size < 0 || hdr.Size > u.lim.maxBytes()-u.bytes {
			return fmt.Errorf("%w: more than %d bytes", ErrLimit, u.lim.maxBytes())
		}
		u.bytes += hdr.Size
		if err := u.prepare(name); err != nil {
			return err
		}
		f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		_, err = io.CopyN(f, tr, hdr.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return u.root.Chmod(name, mode) // umask may have cut bits
	case tar.TypeSymlink:
		target := hdr.Linkname
		if target == "" || strings.ContainsRune(target, 0) || path.IsAbs(target) ||
			escapes(path.Join(path.Dir(name), target)) {
			return fmt.Errorf("symlink to %q leaves the bundle", target)
		}
		if err := u.prepare(name); err != nil {
			return err
		}
		if err := u.root.Symlink(target, name); err != nil {
			return err
		}
		u.links = append(u.links, name)
		return u.checkLink(name)
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || target == "." {
			return fmt.Errorf("hard link to %q leaves the bundle", hdr.Linkname)
		}
		fi, err := u.root.Lstat(target)
		if err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("hard link to %q: not a regular file", hdr.Linkname)
		}
		if err := u.prepare(name); err != nil {
			return err
		}
		return u.root.Link(target, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return errors.New("device and fifo entries are not allowed")
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
}

// checkLink fails if the symlink name resolves to a place outside the root.
// A link dangling inside the root is fine.
func (u *unpacker) checkLink(name string) error {
	if _, err := u.root.Stat(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("symlink leaves the bundle: %w", err)
	}
	return nil
}

// prepare makes name's parent directories and removes whatever non-directory
// is at name already (tar archives may repeat a name; the last one wins).
func (u *unpacker) prepare(name string) error {
	if dir := path.Dir(name); dir != "." {
		if err := u.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	fi, err := u.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("a directory is already there")
	}
	return u.root.Remove(name)
}

// cleanName validates an entry name: relative, no ".." component, no NUL.
func cleanName(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", errors.New("bad entry name")
	}
	if path.IsAbs(name) {
		return "", errors.New("absolute path")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`".." in path`)
		}
	}
	return path.Clean(name), nil
}

// limitedReader fails (rather than returning EOF, as io.LimitReader would)
// once more than n bytes have been read, and stops when ctx is done.
type limitedReader struct {
	r   io.Reader
	n   int64
	ctx context.Context
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if l.n <= 0 {
		return 0, fmt.Errorf("%w: archive inflates past its size limit", ErrLimit)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
