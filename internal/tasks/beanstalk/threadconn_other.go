//go:build !linux

package beanstalk

import (
	"errors"
	"net"
	"time"
)

// threadsWork: connections stay in the poller (see threadconn_linux.go).
const threadsWork = false

var errNoThreads = errors.New("beanstalk: threaded connections need Linux")

func takeThread(nc net.Conn, idle time.Duration) (net.Conn, error) { return nil, errNoThreads }

func untakeThread(nc net.Conn) (net.Conn, error) { return nil, errNoThreads }
