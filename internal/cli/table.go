package cli

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// Table layout, as text/tabwriter is configured for every listing.
const (
	tablePadding = 2
	// minCell is the narrowest a cut column gets, ellipsis included: below
	// that a value is no longer recognisable, and the line wraps instead.
	minCell = 8
)

// table returns a writer for aligned, tab-separated columns on w; Flush
// it. When w is a terminal, rows are cut to its width (see fit); piped
// output (and --json, which does not come here) is never cut.
func table(w io.Writer) *fitTable {
	return &fitTable{out: w, width: termWidth(w)}
}

// fitTable is a text/tabwriter that first cuts its rows to a width.
type fitTable struct {
	out   io.Writer
	width int // 0: never cut
	buf   bytes.Buffer
}

func (t *fitTable) Write(p []byte) (int, error) { return t.buf.Write(p) }

// Flush lays the buffered rows out on the underlying writer.
func (t *fitTable) Flush() error {
	text := t.buf.String()
	t.buf.Reset()
	if t.width > 0 {
		text = fit(text, t.width)
	}
	tw := tabwriter.NewWriter(t.out, 0, 4, tablePadding, ' ', 0)
	if _, err := io.WriteString(tw, text); err != nil {
		return err
	}
	return tw.Flush()
}

// fit cuts tab-separated rows so that, aligned, no line is wider than
// width runes: while too wide, the widest column of free text (a cause, a
// title: cells with spaces), else the widest column, is shortened to what
// the width allows, never below minCell, its longer cells ending in "…".
// A table that fits is returned as it is; one that cannot fit wraps.
func fit(text string, width int) string {
	lines := strings.Split(text, "\n")
	rows := make([][]string, len(lines))
	for i, l := range lines {
		rows[i] = strings.Split(l, "\t")
	}
	// seg[j] is the widest text at position j; of a line's texts all but
	// the last are cells (tab-terminated: their column is as wide as its
	// widest cell), the last is trailing text that sets no column.
	seg := func() (seg, cells []int) {
		for _, r := range rows {
			for j, c := range r {
				if j >= len(seg) {
					seg, cells = append(seg, 0), append(cells, 0)
				}
				n := utf8.RuneCountInString(c)
				seg[j] = max(seg[j], n)
				if j < len(r)-1 {
					cells[j] = max(cells[j], n)
				}
			}
		}
		return seg, cells
	}
	// total is the widest aligned line.
	total := func(cells []int) int {
		n := 0
		for _, r := range rows {
			w := utf8.RuneCountInString(r[len(r)-1])
			for j := range len(r) - 1 {
				w += cells[j] + tablePadding
			}
			n = max(n, w)
		}
		return n
	}
	// spaced[j]: a cell at j below the header has a space in it.
	var spaced []bool
	for i, r := range rows {
		for j, c := range r {
			if j >= len(spaced) {
				spaced = append(spaced, false)
			}
			if i > 0 && strings.Contains(strings.TrimSpace(c), " ") {
				spaced[j] = true
			}
		}
	}
	changed := false
	for {
		w, cells := seg()
		over := total(cells) - width
		if over <= 0 {
			break
		}
		// Free text (a cell with a space: a cause, a title) goes first;
		// names, times and URLs only when no free text is left to cut.
		widest := -1
		for _, free := range []bool{true, false} {
			for j, x := range w {
				if x > minCell && (!free || spaced[j]) && (widest < 0 || x > w[widest]) {
					widest = j
				}
			}
			if widest >= 0 {
				break
			}
		}
		if widest < 0 {
			break // every column is already as narrow as it gets
		}
		to := max(minCell, w[widest]-over)
		for _, r := range rows {
			if widest < len(r) && utf8.RuneCountInString(r[widest]) > to {
				r[widest] = string([]rune(r[widest])[:to-1]) + "…"
			}
		}
		changed = true
	}
	if !changed {
		return text
	}
	for i, r := range rows {
		lines[i] = strings.Join(r, "\t")
	}
	return strings.Join(lines, "\n")
}

// termWidth is the width to fit tables to on w: 0 unless w is a
// terminal; then $COLUMNS when set (the shell's idea, and a way to ask
// for another width), else what the terminal says.
func termWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(os.Getenv("COLUMNS"))); err == nil && n > 0 {
		return n
	}
	return terminalColumns(f)
}
