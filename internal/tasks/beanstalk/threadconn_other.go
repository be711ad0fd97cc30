//go:build !linux

package beanstalk

import (
	"errors"
	"net"
)

// takeThread: connections stay in the poller (see threadconn_linux.go).
func takeThread(nc net.Conn) (net.Conn, error) {
	return nil, errors.New("beanstalk: threaded connections need Linux")
}
