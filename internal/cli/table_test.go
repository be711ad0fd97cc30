package cli

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFit(t *testing.T) {
	releases := "VERSION\tSTATUS\tCAUSE\tCREATED\n" +
		"v12\tactive\tenv set DATABASE_URL, set LOG_LEVEL, unset OLD_FEATURE_FLAG\t2026-11-21 22:10\n" +
		"v11\tretired\tdeploy\t2026-11-21 21:00\n"
	for _, tc := range []struct {
		name  string
		in    string
		width int
		want  string
	}{
		{"fits: unchanged", releases, 200, releases},
		// 60 = VERSION (7) + STATUS (7) + CAUSE (24) + CREATED (16), 2 spaces between.
		{"the widest column is cut", releases, 60,
			"VERSION\tSTATUS\tCAUSE\tCREATED\n" +
				"v12\tactive\tenv set DATABASE_URL, s…\t2026-11-21 22:10\n" +
				"v11\tretired\tdeploy\t2026-11-21 21:00\n"},
		{"never below minCell", "a\tbbbbbbbbbbbbbbbbbbbb\tc\n", 5, "a\tbbbbbbb…\tc\n"},
		// NAME is 27 + 2, TITLE 20: the title goes first, down to minCell,
		{"free text before a wider name", "NAME\tTITLE\nshop-production-europe-west\tKeyError in checkout\n", 37,
			"NAME\tTITLE\nshop-production-europe-west\tKeyErro…\n"},
		// then the name.
		{"then the widest other column", "NAME\tTITLE\nshop-production-europe-west\tKeyError in checkout\n", 20,
			"NAME\tTITLE\nshop-prod…\tKeyErro…\n"},
		{"multibyte counted as runes", "k\tééééééééééééééééééé\n", 12, "k\téééééééé…\n"},
		{"trailing text sets no column", "title line that is long but has no tab\nab\tcd\n", 60, "title line that is long but has no tab\nab\tcd\n"},
		{"the last cell cut too", "NAME\tURL\nblog\thttp://blog.localhost:8080/a/very/long/path\n", 30,
			"NAME\tURL\nblog\thttp://blog.localhost:8…\n"},
	} {
		got := fit(tc.in, tc.width)
		if got != tc.want {
			t.Errorf("%s: got\n%q, want\n%q", tc.name, got, tc.want)
		}
	}
}

// TestFitLaidOut checks the promise: once laid out by the tabwriter, no
// line of a cut table is wider than the terminal.
func TestFitLaidOut(t *testing.T) {
	var in strings.Builder
	in.WriteString("ID\tCOUNT\tTITLE\tLAST SEEN\n")
	for i := range 20 {
		fmt.Fprintf(&in, "%08x\t%d\t%s\t%dm ago\n", i*7919, i*i, strings.Repeat("ValueError: bad input ", i%5+1), i)
	}
	for _, width := range []int{40, 60, 80, 120} {
		var out bytes.Buffer
		tw := &fitTable{out: &out, width: width}
		tw.Write([]byte(in.String()))
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			if n := utf8.RuneCountInString(strings.TrimRight(l, " ")); n > width {
				t.Errorf("width %d: a line of %d: %q", width, n, l)
			}
		}
		if !strings.Contains(out.String(), "…") {
			t.Errorf("width %d: nothing was cut:\n%s", width, out.String())
		}
	}
}

func TestTableNotCutWhenPiped(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	t.Setenv("COLUMNS", "10")
	if got := table(w).width; got != 0 {
		t.Errorf("a pipe: width %d, want 0 (never cut)", got)
	}
	var buf bytes.Buffer
	if got := table(&buf).width; got != 0 {
		t.Errorf("a buffer: width %d, want 0 (never cut)", got)
	}
}
