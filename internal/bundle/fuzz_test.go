package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"testing"
)

// FuzzUnpack feeds Unpack arbitrary input: as is when it starts with the gzip
// magic, else gzip'd first, so the fuzzer explores tar structure rather than
// gzip checksums. Nothing may panic, and nothing may appear outside the target.
func FuzzUnpack(f *testing.F) {
	for _, entries := range [][]entry{
		{{name: "a.txt", body: "hello"}, {name: "d/", typ: tar.TypeDir}, {name: "d/b", body: "b"}},
		{{name: "l", link: "../../etc", typ: tar.TypeSymlink}, {name: "l/passwd", body: "x"}},
		{{name: "a", link: ".", typ: tar.TypeSymlink}, {name: "l", link: "a/../sentinel", typ: tar.TypeSymlink}, {name: "l/passwd", body: "x"}},
		{{name: "x", body: "x"}, {name: "h", link: "x", typ: tar.TypeLink}, {name: "h", body: "y"}},
		{{name: "../sentinel/passwd", body: "x"}},
		{{name: "/abs", body: "x"}},
	} {
		b := makeTarGz(f, entries)
		f.Add(b)
		zr, _ := gzip.NewReader(bytes.NewReader(b))
		var raw bytes.Buffer
		raw.ReadFrom(zr)
		f.Add(raw.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := data
		if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			zw.Close()
			in = buf.Bytes()
		}
		target, check := sandbox(t)
		Unpack(context.Background(), bytes.NewReader(in), target, Limits{MaxBytes: 64 << 10, MaxFiles: 100})
		check()
	})
}
