//go:build !linux

package cli

import "os"

// terminalColumns is 0 here: only $COLUMNS sets the width tables are fit
// to (Linux asks the terminal, in width_linux.go).
func terminalColumns(f *os.File) int { return 0 }
