package manifest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem found in a manifest file, at a position a person can
// jump to.
type Error struct {
	File   string // file name as given to Parse, e.g. "pier.yaml"
	Line   int    // 1-based
	Column int    // 1-based
	Field  string // dotted path of the offending field, e.g. "queues.email.rate"; empty for syntax errors
	Msg    string
}

// Error formats e as "pier.yaml:3:7: scale.web.min: must be at least 0".
func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Column, e.Field, e.Msg)
}

// List is every problem found in one manifest, in file order. Parse,
// ParseProcfile and Load return a non-empty List as their error; errors.As
// with a **Error target finds the first problem.
type List []*Error

// Error lists the problems one per line.
func (l List) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns every problem, so errors.As and errors.Is see each of them.
func (l List) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sort orders the problems by position; problems found by later checks at
// the same position keep their order.
func (l List) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// err returns l as an error, or nil when it is empty (never a typed nil).
func (l List) err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	return l
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to word,
// when it is at most two edits away, and "" otherwise.
func suggest(word string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(word), c); d < bestDist || d == bestDist && d < 3 && c < best {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64 // nobody misspells a field name that badly
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
