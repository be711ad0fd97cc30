//go:build !linux

package cli

import (
	"io"
	"os"
)

// isTerminal reports whether r is a character device, which an interactive
// stdin is (so is /dev/null; Linux has the precise check in term_linux.go).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
