package supervisor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Ports hands out TCP ports on 127.0.0.1 for app instances to listen on.
//
// They come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, where a port "free a moment ago" from
// listening on :0 comes from): a port in that range may become the local end
// of any outgoing connection — the gateway's to another app, say — between
// the check and the app's bind, and the app then fails to start with "address
// already in use". Ports are handed out in turn from a random start, so that
// instances started together do not get the same one, and each is checked
// with a listen first.
type Ports struct {
	mu     sync.Mutex // guards next
	lo, hi int        // the range, [lo, hi); hi == 0: ask the kernel
	next   int
}

// portsLow is the bottom of the range: above the ports services commonly
// listen on, below Linux's default ephemeral range (32768-60999).
const portsLow = 20000

// NewPorts returns a Ports for the ports from 20000 up to the ephemeral
// range. Where that leaves fewer than 1,000 ports (a lowered
// ip_local_port_range), it asks the kernel for a free port each time.
func NewPorts() *Ports {
	hi := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	return newPorts(portsLow, hi)
}

func newPorts(lo, hi int) *Ports {
	if hi-lo < 1000 {
		return &Ports{}
	}
	return &Ports{lo: lo, hi: hi, next: lo + rand.IntN(hi-lo)}
}

// Next returns a port that was free when checked and that Next has not
// returned in its last hi-lo calls.
func (p *Ports) Next() (int, error) {
	if p.hi == 0 {
		return kernelPort()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var last error
	for range min(p.hi-p.lo, 1000) {
		port := p.next
		if p.next++; p.next == p.hi {
			p.next = p.lo
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			last = err
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port on 127.0.0.1 between %d and %d: %w", p.lo, p.hi-1, last)
}

// kernelPort returns a port the kernel says is free.
func kernelPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("free port: not a TCP address")
	}
	return addr.Port, nil
}
