package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// pierOnATerminal runs the CLI with a pseudo-terminal cols wide as its
// stdout (and $COLUMNS unset, so the width comes from the terminal) and
// returns what it printed there, line ends as "\n".
func (e *engine) pierOnATerminal(cols uint16, dir string, args ...string) string {
	t := e.t
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer ptmx.Close()
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
	ws := struct{ Row, Col, X, Y uint16 }{Row: 50, Col: cols}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, pts.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); errno != 0 {
		t.Fatalf("TIOCSWINSZ: %v", errno)
	}
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&out, ptmx) // ends with EIO once the terminal side is closed
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pierBin, args...)
	cmd.Dir = dir
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COLUMNS=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "PIER_API=http://"+e.apiAddr, "PIER_HOME="+e.home, "PIER_TOKEN=", "NO_COLOR=1")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = pts, &errb
	err = cmd.Run()
	pts.Close()
	<-read
	if err != nil {
		t.Fatalf("pier %s on a terminal: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n")
}

// TestCLIOnATerminal: on a terminal, a deploy counts its upload, a
// deploy's and a config change's steps say when they came, and a listing
// table wider than the terminal is cut to it; piped, the same commands
// print every character and no times.
func TestCLIOnATerminal(t *testing.T) {
	e := startEngine(t)
	hello := example(t, "hello-python")
	deployed := e.pierOnATerminal(80, hello, "deploy")
	if !regexp.MustCompile(`\r\x1b\[K-----> Uploaded \d+(\.\d)? [KM]?B \(\d+\.\ds\)\n-----> `).MatchString(deployed) ||
		!regexp.MustCompile(`(?m)^-----> Done: v1 .*\(\d+\.\ds\)$`).MatchString(deployed) {
		t.Errorf("a deploy on a terminal, want the upload counted and the steps timed:\n%q", deployed)
	}

	piped := e.must(hello, "env", "set", "A_RATHER_LONG_CONFIG_VAR_NAME=1", "ANOTHER_QUITE_LONG_NAME=2", "--app", "hello-python")
	if strings.Contains(piped, "s)\n") {
		t.Errorf("piped deploy output has times:\n%s", piped)
	}
	tty := e.pierOnATerminal(80, hello, "env", "unset", "ANOTHER_QUITE_LONG_NAME", "--app", "hello-python")
	steps := regexp.MustCompile(`(?m)^-----> .* \(\d+\.\ds\)$`).FindAllString(tty, -1)
	if len(steps) < 3 || !regexp.MustCompile(`(?m)^-----> Done: v\d+ .*\(\d+\.\ds\)$`).MatchString(tty) {
		t.Errorf("on a terminal, want the steps and the end timed:\n%s", tty)
	}

	wide := e.must(hello, "releases", "--app", "hello-python")
	widest := 0
	for _, l := range strings.Split(wide, "\n") {
		widest = max(widest, utf8.RuneCountInString(l))
	}
	if widest <= 80 || strings.Contains(wide, "…") || !strings.Contains(wide, "env set ANOTHER_QUITE_LONG_NAME, set A_RATHER_LONG_CONFIG_VAR_NAME") {
		t.Fatalf("piped, want the whole table (wider than 80):\n%s", wide)
	}
	cut := e.pierOnATerminal(80, hello, "releases", "--app", "hello-python")
	for _, l := range strings.Split(strings.TrimRight(cut, "\n"), "\n") {
		if n := utf8.RuneCountInString(strings.TrimRight(l, " ")); n > 80 {
			t.Errorf("a line of %d on an 80-column terminal: %q", n, l)
		}
	}
	// The cause is cut (free text), the times are not.
	if !regexp.MustCompile(`(?m)^v2 .* env set ANOTHER_\S*… `).MatchString(cut) || !regexp.MustCompile(`v1 .* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`).MatchString(cut) {
		t.Errorf("on an 80-column terminal, want the releases with their causes cut:\n%s", cut)
	}
	t.Logf("piped:\n%s\non an 80-column terminal:\n%s", wide, cut)
}
