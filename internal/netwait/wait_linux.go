//go:build linux && (amd64 || arm64)

package netwait

import (
	"net"
	"unsafe"
)

// Waiter waits on one connection.
//
// The wait never reads: it returns for an edge since the last read, the
// peer's data or close, a Close, or the read deadline (which ends it as it
// ends a Read), so the Read after it behaves as it always has. Where the
// socket held bytes whose edge the last Read's start already consumed, a
// wait sleeps until the next edge: wait only when the last read(2) came
// back short (it emptied the socket) and nothing since can have come
// without an edge.
//
// The wait needs the runtime's handle of the socket, which net does not
// export: it is read from the net.TCPConn's file descriptor structure, and
// checked against the descriptor number the standard SyscallConn gives.
// Where the layout is not the one expected (another Go release), New
// returns nil and reads go on as before; TestLayout fails then.
type Waiter struct {
	rc   interface{ Control(func(fd uintptr)) error }
	ctx  uintptr
	wait func(fd uintptr) // w.park, made once: Control with it allocates nothing
}

// pollFD is the start of internal/poll.FD on 64-bit Linux (as of Go 1.26;
// TestLayout checks it):
// the fdMutex, Sysfd, SysFile (one pointer) and the pollDesc's runtimeCtx.
type pollFD struct {
	fdmu  [16]byte
	sysfd int
	_     uintptr
	ctx   uintptr
}

//go:linkname runtimePollWait internal/poll.runtime_pollWait
func runtimePollWait(ctx uintptr, mode int) int

// New returns c's waiter, or nil if c is not a TCP connection in the
// poller laid out as expected. A nil *Waiter's Wait returns at once.
func New(c net.Conn) *Waiter {
	tc, ok := c.(*net.TCPConn)
	if !ok || tc == nil {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	// *net.TCPConn is a struct{ conn{ fd *netFD } }, and a netFD starts
	// with its poll.FD.
	fdp := *(*unsafe.Pointer)(unsafe.Pointer(tc))
	if fdp == nil {
		return nil
	}
	pfd := (*pollFD)(fdp)
	match := false
	if rc.Control(func(fd uintptr) { match = int(fd) == pfd.sysfd && pfd.ctx != 0 }) != nil || !match {
		return nil
	}
	w := &Waiter{rc: rc, ctx: pfd.ctx}
	w.wait = w.park
	return w
}

// park runs inside Control, which holds a reference on the descriptor:
// the runtime's handle cannot be freed (and reused by another socket)
// while the goroutine waits on it; a Close meanwhile ends the wait.
func (w *Waiter) park(uintptr) { runtimePollWait(w.ctx, 'r') }

// Wait returns once the connection's socket may have something to read,
// has an error, or passed its read deadline. Call it only where a Read
// would otherwise start with a read(2) bound to find nothing.
func (w *Waiter) Wait() {
	if w != nil {
		w.rc.Control(w.wait)
	}
}
