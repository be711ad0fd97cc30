// Package bundle turns an app's source directory into a gzip'd tar (Pack) and
// back (Unpack). Pack runs on the client (`pier deploy`) and honours
// .pierignore; Unpack runs in the engine on input it must not trust, so it
// refuses anything that could write outside its target directory.
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
	"path/filepath"
	"strings"
	"time"
)

// IgnoreFile is the name of the file, at the root of a packed directory, whose
// gitignore-style patterns name paths to leave out of the bundle.
const IgnoreFile = ".pierignore"

// alwaysSkipped are directory names never packed, at any depth: version
// control, pier's own build outputs, and dependencies the server rebuilds.
var alwaysSkipped = map[string]bool{
	".git":         true,
	".pier":        true,
	"node_modules": true,
	".venv":        true,
}

// Pack writes dir as a gzip'd tar to w. It skips .git/, .pier/, node_modules/
// and .venv/ directories, and the paths matched by dir/.pierignore. Regular
// files and directories keep their permission bits; symlinks are kept only
// when their target stays inside dir; any other file type is an error.
//
// The output depends only on names, contents, permissions and link targets
// (owners and times are not recorded), so packing the same tree twice gives
// the same bytes and the same content hash.
func Pack(ctx context.Context, dir string, w io.Writer) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// Walk the real directory, so a dir given through a symlink still packs
	// and link targets are compared against where the tree really is.
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if fi, err := os.Stat(root); err != nil {
		return fmt.Errorf("pack: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("pack: %s is not a directory", dir)
	}
	var ignore ignoreList
	if f, err := os.Open(filepath.Join(root, IgnoreFile)); err == nil {
		ignore, err = parseIgnore(f, filepath.Join(dir, IgnoreFile))
		f.Close()
		if err != nil {
			return fmt.Errorf("pack: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pack: %w", err)
	}

	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	defer r.Close()

	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && alwaysSkipped[d.Name()] {
			return filepath.SkipDir
		}
		if ignore.ignored(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return packEntry(tw, r, p, rel, d)
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return nil
}

// packEntry writes one walked path (p, relative name rel) to tw.
func packEntry(tw *tar.Writer, root *os.Root, p, rel string, d fs.DirEntry) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(fi.Mode().Perm()),
		ModTime: time.Unix(0, 0),
		Format:  tar.FormatPAX,
	}
	switch mode := fi.Mode(); {
	case mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case mode.IsRegular():
		hdr.Typeflag = tar.TypeReg
		hdr.Size = fi.Size()
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := checkPackedLink(root, rel, target); err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = filepath.ToSlash(target)
		hdr.Mode = 0o777
	default:
		return fmt.Errorf("%s: unsupported file type %s", rel, mode.Type())
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("%s: %w (did it change while packing?)", rel, err)
	}
	return nil
}

// checkPackedLink refuses a symlink at rel whose target leaves the tree,
// either by its text (absolute, or too many "..") or by where it really
// leads once the links it goes through are followed (a -> ".", l -> "a/../x").
func checkPackedLink(root *os.Root, rel, target string) error {
	if target == "" || filepath.IsAbs(target) ||
		escapes(path.Join(path.Dir(rel), filepath.ToSlash(target))) {
		return fmt.Errorf("%s: symlink to %q leaves %s", rel, target, root.Name())
	}
	// Root.Stat follows links and fails if the resolution leaves the root;
	// a link dangling inside the tree is kept as is.
	if _, err := root.Stat(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: symlink to %q leaves %s: %w", rel, target, root.Name(), err)
	}
	return nil
}

// escapes reports whether a cleaned slash path climbs above its root.
func escapes(p string) bool {
	p = path.Clean(p)
	return p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p)
}
