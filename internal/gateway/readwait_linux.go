//go:build linux && (amd64 || arm64)

package gateway

import (
	"net"
	"unsafe"
)

// readWaiter waits for a TCP connection to have something to read without
// reading it first.
//
// Why: a Read on a socket in Go's network poller starts with read(2) and
// parks only when that finds nothing (EAGAIN). Where the gateway knows the
// socket is empty — the app's connection right after a request went out,
// before the app can have answered — that first read(2) always fails: it
// is one system call of the six a passed-through request costs, where
// nginx waits for epoll's edge and reads once. The runtime's poller has
// the wait on its own (internal/poll.runtime_pollWait), which parks until
// the socket's next edge, or returns at once if one came since the last
// read: the Read that follows then finds the data at its first read(2).
//
// Nothing is lost if the socket was not empty after all: the edge of the
// bytes already there was seen (the wait returns at once) or the next one
// wakes it — the answer to the request just sent, the app closing, or the
// read deadline, which ends the wait as it ends a Read. Waiting never
// reads, so whatever ends it, the Read after it behaves as it always has.
//
// The wait needs the runtime's handle of the socket, which net does not
// export: it is read from the net.TCPConn's file descriptor structure, and
// checked against the descriptor number the standard SyscallConn gives.
// Where the layout is not the one expected (another Go release), there is
// no waiter and reads go on as before; TestReadWaiterLayout fails then.
type readWaiter struct {
	rc   interface{ Control(func(fd uintptr)) error }
	ctx  uintptr
	wait func(fd uintptr) // w.park, made once: Control with it allocates nothing
}

// pollFD is the start of internal/poll.FD on 64-bit Linux (as of Go 1.26;
// TestReadWaiterLayout checks it):
// the fdMutex, Sysfd, SysFile (one pointer) and the pollDesc's runtimeCtx.
type pollFD struct {
	fdmu  [16]byte
	sysfd int
	_     uintptr
	ctx   uintptr
}

//go:linkname runtimePollWait internal/poll.runtime_pollWait
func runtimePollWait(ctx uintptr, mode int) int

// newReadWaiter returns c's waiter, or nil if c is not a TCP connection in
// the poller laid out as expected.
func newReadWaiter(c net.Conn) *readWaiter {
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
	w := &readWaiter{rc: rc, ctx: pfd.ctx}
	w.wait = w.park
	return w
}

// park runs inside Control, which holds a reference on the descriptor:
// the runtime's handle cannot be freed (and reused by another socket)
// while the goroutine waits on it; a Close meanwhile ends the wait.
func (w *readWaiter) park(uintptr) { runtimePollWait(w.ctx, 'r') }

// Wait returns once the connection's socket may have something to read,
// has an error, or passed its read deadline. Call it only where a Read
// would otherwise start with a read(2) bound to find nothing.
func (w *readWaiter) Wait() {
	if w != nil {
		w.rc.Control(w.wait)
	}
}
