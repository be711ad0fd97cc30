package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// file describes one entry of a test tree: a regular file (body), a directory
// (dir) or a symlink (link).
type file struct {
	body string
	mode fs.FileMode
	dir  bool
	link string
}

// writeTree creates the entries of tree under root.
func writeTree(t *testing.T, root string, tree map[string]file) {
	t.Helper()
	names := make([]string, 0, len(tree))
	for n := range tree {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := tree[n]
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := f.mode
		switch {
		case f.dir:
			if mode == 0 {
				mode = 0o755
			}
			if err := os.MkdirAll(p, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		case f.link != "":
			if err := os.Symlink(f.link, p); err != nil {
				t.Fatal(err)
			}
		default:
			if mode == 0 {
				mode = 0o644
			}
			if err := os.WriteFile(p, []byte(f.body), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readTree lists what is under root, in the form writeTree takes.
func readTree(t *testing.T, root string) map[string]file {
	t.Helper()
	got := map[string]file{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			got[rel] = file{dir: true, mode: fi.Mode().Perm()}
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[rel] = file{link: l}
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[rel] = file{body: string(b), mode: fi.Mode().Perm()}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func pack(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Pack(context.Background(), dir, &buf); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes()
}

// normalize fills in the default modes writeTree uses.
func normalize(tree map[string]file) map[string]file {
	out := map[string]file{}
	for n, f := range tree {
		switch {
		case f.dir && f.mode == 0:
			f.mode = 0o755
		case f.link == "" && !f.dir && f.mode == 0:
			f.mode = 0o644
		}
		out[n] = f
		// Parents made implicitly by writeTree.
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			if _, ok := tree[d]; !ok {
				out[d] = file{dir: true, mode: 0o755}
			}
		}
	}
	return out
}

func diffTrees(t *testing.T, got, want map[string]file) {
	t.Helper()
	for n, w := range want {
		if g, ok := got[n]; !ok {
			t.Errorf("%s: missing", n)
		} else if g != w {
			t.Errorf("%s: got %+v, want %+v", n, g, w)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s: unexpected", n)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]file // packed
		want map[string]file // unpacked; nil = same as in
	}{
		{name: "empty", in: map[string]file{}},
		{name: "files and modes", in: map[string]file{
			"app.py":           {body: "print('hi')\n"},
			"run.sh":           {body: "#!/bin/sh\n", mode: 0o755},
			"secret":           {body: "s", mode: 0o600},
			"static/css/a.css": {body: "body{}"},
			"empty":            {dir: true, mode: 0o750},
			"big":              {body: strings.Repeat("x", 1<<20)},
		}},
		{name: "symlinks inside", in: map[string]file{
			"lib/real.txt":  {body: "real"},
			"link.txt":      {link: "lib/real.txt"},
			"lib/up.txt":    {link: "../link.txt"},
			"dangling":      {link: "nowhere/yet"},
			"lib/dirlink":   {link: "."},
			"static/assets": {link: "../lib"},
		}},
		{name: "always skipped", in: map[string]file{
			"index.js":                  {body: "x"},
			".git/HEAD":                 {body: "ref"},
			".pier/bin/app":             {body: "elf"},
			"node_modules/ms/index.js":  {body: "m"},
			"sub/node_modules/a.js":     {body: "a"},
			".venv/bin/python":          {body: "py"},
			".gitignore":                {body: "x"},
			"src/.pier-not-skipped.txt": {body: "kept"},
		}, want: map[string]file{
			"index.js":                  {body: "x"},
			".gitignore":                {body: "x"},
			"sub":                       {dir: true},
			"src/.pier-not-skipped.txt": {body: "kept"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
			writeTree(t, src, tt.in)
			b := pack(t, src)
			if b2 := pack(t, src); !bytes.Equal(b, b2) {
				t.Errorf("packing twice gave different bytes")
			}
			if err := Unpack(context.Background(), bytes.NewReader(b), dst, Limits{}); err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			want := tt.want
			if want == nil {
				want = tt.in
			}
			diffTrees(t, readTree(t, dst), normalize(want))
		})
	}
}

func TestPierignore(t *testing.T) {
	tree := map[string]file{
		"app.py":                {body: "a"},
		"debug.log":             {body: "l"},
		"logs/today.log":        {body: "l"},
		"logs/keep.txt":         {body: "k"},
		"build/out.js":          {body: "b"},
		"src/build/gen.go":      {body: "g"},
		"src/build":             {dir: true},
		"tmp":                   {body: "tmp is a file here"},
		"cache/a/b/c.bin":       {body: "c"},
		"docs/a.md":             {body: "d"},
		"docs/internal/b.md":    {body: "d"},
		"docs/keep.md":          {body: "k"},
		"x/__pycache__/m.pyc":   {body: "p"},
		"data/file1.csv":        {body: "1"},
		"data/file22.csv":       {body: "2"},
		"important.log":         {body: "i"},
		"secrets/nested/k.pem":  {body: "s"},
		"secrets/nested/ok.txt": {body: "re-include impossible: parent excluded"},
		"notes # not comment":   {body: "n"},
	}
	ignore := `# comment line

*.log
!important.log
/build
tmp/
cache/**
docs/**/*.md
!docs/keep.md
__pycache__/
data/file?.csv
secrets/
!secrets/nested/ok.txt
`
	want := map[string]file{
		"app.py":              {body: "a"},
		"logs/keep.txt":       {body: "k"},
		"src/build/gen.go":    {body: "g"},
		"src/build":           {dir: true},
		"tmp":                 {body: "tmp is a file here"},
		"cache":               {dir: true},
		"docs/keep.md":        {body: "k"},
		"docs/internal":       {dir: true},
		"x":                   {dir: true},
		"data/file22.csv":     {body: "2"},
		"important.log":       {body: "i"},
		".pierignore":         {body: ignore},
		"notes # not comment": {body: "n"},
	}
	src, dst := t.TempDir(), t.TempDir()
	tree[".pierignore"] = file{body: ignore}
	writeTree(t, src, tree)
	if err := Unpack(context.Background(), bytes.NewReader(pack(t, src)), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	diffTrees(t, readTree(t, dst), normalize(want))
}

func TestPierignoreBadPattern(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]file{".pierignore": {body: "ok\n[unclosed\n"}})
	err := Pack(context.Background(), src, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), ".pierignore:2") {
		t.Fatalf("got %v, want an error naming .pierignore:2", err)
	}
}

func TestPackRefuses(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name string
		tree map[string]file
		want string // in the error
	}{
		{"relative out", map[string]file{"a/l": {link: "../../x"}}, "a/l"},
		{"absolute", map[string]file{"l": {link: "/etc/passwd"}}, "l: symlink"},
		{"absolute into outside", map[string]file{"l": {link: outside}}, "l: symlink"},
		{"through a link", map[string]file{"a": {link: "."}, "l": {link: "a/../x"}}, "l: symlink"},
		{"through a link dangling", map[string]file{"a": {link: "."}, "l": {link: "a/../nonexistent/y"}}, "l: symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			writeTree(t, src, tt.tree)
			err := Pack(context.Background(), src, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("fifo", func(t *testing.T) {
		src := t.TempDir()
		if err := mkfifo(filepath.Join(src, "pipe")); err != nil {
			t.Skip(err)
		}
		err := Pack(context.Background(), src, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "pipe") {
			t.Fatalf("got %v, want an error naming pipe", err)
		}
	})
}

func TestPackCancelled(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]file{"a": {body: "a"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Pack(ctx, src, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// entry is one tar header (and body) of a hand-made archive.
type entry struct {
	name, body, link string
	typ              byte
	size             int64 // header size when it differs from len(body)
}

func makeTarGz(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		if typ != tar.TypeReg {
			size = 0
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o644, Size: size}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg && e.size == 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		} else if typ == tar.TypeReg {
			zero := make([]byte, 1<<16)
			for n := size; n > 0; {
				k := min(n, int64(len(zero)))
				if _, err := tw.Write(zero[:k]); err != nil {
					t.Fatal(err)
				}
				n -= k
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox returns a target dir and checks, at cleanup, that nothing appeared
// next to it and that a sibling sentinel dir is untouched.
func sandbox(t testing.TB) (target string, check func()) {
	t.Helper()
	parent := t.TempDir()
	target = filepath.Join(parent, "app", "out")
	sentinel := filepath.Join(parent, "app", "sentinel")
	if err := os.MkdirAll(sentinel, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sentinel, "passwd"), []byte("root"), 0o644); err != nil {
		t.Fatal(err)
	}
	return target, func() {
		t.Helper()
		var found []string
		filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !strings.HasPrefix(p, target+"/") && p != target {
				rel, _ := filepath.Rel(parent, p)
				found = append(found, rel)
			}
			return nil
		})
		want := []string{".", "app", "app/sentinel", "app/sentinel/passwd"}
		if strings.Join(found, " ") != strings.Join(want, " ") {
			t.Fatalf("outside the target: %q, want %q", found, want)
		}
		if b, err := os.ReadFile(filepath.Join(sentinel, "passwd")); err != nil || string(b) != "root" {
			t.Fatalf("sentinel changed: %q, %v", b, err)
		}
	}
}

func TestUnpackRefuses(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		lim     Limits
		want    string // in the error
	}{
		{"dotdot", []entry{{name: "../x", body: "x"}}, Limits{}, "../x"},
		{"dotdot to sentinel", []entry{{name: "../sentinel/passwd", body: "x"}}, Limits{}, "../sentinel/passwd"},
		{"absolute", []entry{{name: "/etc/x", body: "x"}}, Limits{}, "/etc/x"},
		{"inner dotdot", []entry{{name: "a/../../x", body: "x"}}, Limits{}, "a/../../x"},
		{"symlink out then through", []entry{
			{name: "l", link: "../../etc", typ: tar.TypeSymlink},
			{name: "l/passwd", body: "x"},
		}, Limits{}, "l: symlink"},
		{"symlink to sentinel then through", []entry{
			{name: "l", link: "../sentinel", typ: tar.TypeSymlink},
			{name: "l/passwd", body: "x"},
		}, Limits{}, "l: symlink"},
		{"symlink absolute", []entry{{name: "l", link: "/etc", typ: tar.TypeSymlink}}, Limits{}, "l: symlink"},
		{"symlink chain out", []entry{
			{name: "a", link: ".", typ: tar.TypeSymlink},
			{name: "l", link: "a/../sentinel", typ: tar.TypeSymlink},
			{name: "l/passwd", body: "x"},
		}, Limits{}, "l"},
		{"symlink chain out dangling", []entry{
			{name: "a", link: ".", typ: tar.TypeSymlink},
			{name: "l", link: "a/../nothing", typ: tar.TypeSymlink},
		}, Limits{}, "l: symlink leaves"},
		{"symlink made escaping later", []entry{
			{name: "l", link: "a/../sentinel", typ: tar.TypeSymlink},
			{name: "a", link: ".", typ: tar.TypeSymlink},
		}, Limits{}, "l: symlink leaves"},
		{"hardlink out", []entry{{name: "h", link: "../sentinel/passwd", typ: tar.TypeLink}}, Limits{}, "h: hard link"},
		{"hardlink absolute", []entry{{name: "h", link: "/etc/passwd", typ: tar.TypeLink}}, Limits{}, "h: hard link"},
		{"hardlink through symlink", []entry{
			{name: "d", link: ".", typ: tar.TypeSymlink},
			{name: "h", link: "d/../sentinel/passwd", typ: tar.TypeLink},
		}, Limits{}, "h: hard link"},
		{"char device", []entry{{name: "null", typ: tar.TypeChar}}, Limits{}, "null: device"},
		{"fifo", []entry{{name: "p", typ: tar.TypeFifo}}, Limits{}, "p: device"},
		{"too many files", []entry{{name: "a"}, {name: "b"}, {name: "c"}}, Limits{MaxFiles: 2}, "more than 2 entries"},
		{"too big", []entry{{name: "a", body: "12345"}, {name: "b", body: "67890"}}, Limits{MaxBytes: 8}, "more than 8 bytes"},
		{"gzip bomb", []entry{{name: "zeros", size: 16 << 20}}, Limits{MaxBytes: 1 << 20}, "more than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, check := sandbox(t)
			err := Unpack(context.Background(), bytes.NewReader(makeTarGz(t, tt.entries)), target, tt.lim)
			t.Logf("error: %v", err)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			check()
		})
	}
}

func TestUnpackLimitIsErrLimit(t *testing.T) {
	target, check := sandbox(t)
	b := makeTarGz(t, []entry{{name: "zeros", size: 8 << 20}})
	if len(b) > 64<<10 {
		t.Fatalf("bomb is %d bytes compressed", len(b))
	}
	err := Unpack(context.Background(), bytes.NewReader(b), target, Limits{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("got %v, want ErrLimit", err)
	}
	check()
}

func TestUnpackAccepts(t *testing.T) {
	// Things other tar writers produce that are fine.
	target, check := sandbox(t)
	b := makeTarGz(t, []entry{
		{name: "./", typ: tar.TypeDir},
		{name: "./a/b.txt", body: "one"},
		{name: "a/b.txt", body: "two"}, // repeated: the last one wins
		{name: "a/link", link: "b.txt", typ: tar.TypeSymlink},
		{name: "a/hard", link: "a/b.txt", typ: tar.TypeLink},
		{name: "a/hard", body: "replaced, not written through"},
		{name: "d/", typ: tar.TypeDir},
		{name: "d/x", link: "../a/link", typ: tar.TypeSymlink},
	})
	if err := Unpack(context.Background(), bytes.NewReader(b), target, Limits{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a/b.txt": "two", "d/x": "two", "a/hard": "replaced, not written through"} {
		if got, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(got) != want {
			t.Errorf("%s: got %q, %v, want %q", name, got, err, want)
		}
	}
	check()
}
