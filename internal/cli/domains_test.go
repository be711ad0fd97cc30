package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadHosts(t *testing.T) {
	in := "a.example.com\n\n  b.example.com  # the shop\n# a comment\n*.c.example.com\n"
	want := []string{"a.example.com", "b.example.com", "*.c.example.com"}
	got, err := readHosts(strings.NewReader(in), "-")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("from stdin: got %q, %v; want %q", got, err, want)
	}
	file := filepath.Join(t.TempDir(), "domains.txt")
	os.WriteFile(file, []byte(in), 0o644)
	got, err = readHosts(strings.NewReader("ignored.example.com"), file)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("from a file: got %q, %v; want %q", got, err, want)
	}
	if _, err := readHosts(nil, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file: no error")
	}
}
