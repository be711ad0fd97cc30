package cli

import (
	"os"
	"syscall"
	"unsafe"
)

// terminalColumns is the width of the terminal f is, from the
// TIOCGWINSZ ioctl (0 if it does not say).
func terminalColumns(f *os.File) int {
	var ws struct{ Row, Col, X, Y uint16 }
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	if errno != 0 {
		return 0
	}
	return int(ws.Col)
}
