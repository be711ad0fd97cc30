//go:build !linux || !(amd64 || arm64)

package netwait

import "net"

// Waiter is wait_linux.go's; here New returns nil.
type Waiter struct{}

// New returns nil: no waiter on this platform.
func New(net.Conn) *Waiter { return nil }

// Wait returns at once.
func (w *Waiter) Wait() {}
