package cli

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"unsafe"
)

// openPTY opens a pseudo-terminal and returns its terminal side, sized
// cols wide.
func openPTY(t *testing.T, cols uint16) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		t.Fatalf("unlockpt: %v", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, ptmx.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Fatalf("ptsname: %v", errno)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	ws := struct{ Row, Col, X, Y uint16 }{Row: 24, Col: cols}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, pts.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); errno != 0 {
		t.Fatalf("TIOCSWINSZ: %v", errno)
	}
	return pts
}

func TestTermWidthOfATerminal(t *testing.T) {
	pts := openPTY(t, 57)
	t.Setenv("COLUMNS", "")
	if got := termWidth(pts); got != 57 {
		t.Errorf("a 57-column terminal: width %d", got)
	}
	t.Setenv("COLUMNS", "100")
	if got := termWidth(pts); got != 100 {
		t.Errorf("with COLUMNS=100: width %d", got)
	}
	t.Setenv("COLUMNS", "wide")
	if got := termWidth(pts); got != 57 {
		t.Errorf("with a bad COLUMNS: width %d, want the terminal's 57", got)
	}
}
