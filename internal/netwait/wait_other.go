//go:build !linux || !(amd64 || arm64)

// Package netwait waits for a TCP connection to have something to read
// without reading it first; see wait_linux.go. Elsewhere there is no
// waiter and reads start with read(2) as usual.
package netwait

import "net"

// Waiter is wait_linux.go's; here New returns nil.
type Waiter struct{}

// New returns nil: no waiter on this platform.
func New(net.Conn) *Waiter { return nil }

// Wait returns at once.
func (w *Waiter) Wait() {}
