//go:build !linux || !(amd64 || arm64)

package gateway

import "net"

// readWaiter is readwait_linux.go's; elsewhere there is none and reads
// start with read(2) as usual.
type readWaiter struct{}

func newReadWaiter(net.Conn) *readWaiter { return nil }

func (w *readWaiter) Wait() {}
