package supervisor

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestPortsBelowEphemeral(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skip("no ip_local_port_range:", err)
	}
	eph, _ := strconv.Atoi(strings.Fields(string(b))[0])
	p := NewPorts()
	seen := map[int]bool{}
	for range 200 {
		port, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		if eph-portsLow >= 1000 && (port < portsLow || port >= eph) {
			t.Fatalf("port %d outside [%d, %d)", port, portsLow, eph)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice in 200 calls", port)
		}
		seen[port] = true
	}
}

func TestPortsSkipTakenAndWrap(t *testing.T) {
	p := newPorts(portsLow, portsLow+1000)
	if p.hi == 0 {
		t.Fatal("a range of 1,000 ports was not used")
	}
	p.next = p.hi - 2
	// The next port in turn is taken: the one after it comes, then the
	// range starts over.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.hi-2)))
	if err != nil {
		t.Skip("port taken already:", err)
	}
	defer l.Close()
	for _, want := range []int{p.hi - 1, p.lo} {
		if got, err := p.Next(); err != nil || got != want {
			t.Fatalf("Next = %d, %v; want %d", got, err, want)
		}
	}
}

func TestPortsNoneFree(t *testing.T) {
	// Hold two ports that follow each other: a range of just those has
	// nothing to hand out.
	for a := portsLow; a < portsLow+1000; a += 2 {
		la, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a)))
		if err != nil {
			continue
		}
		defer la.Close()
		lb, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(a+1)))
		if err != nil {
			continue
		}
		defer lb.Close()
		p := &Ports{lo: a, hi: a + 2, next: a}
		if port, err := p.Next(); err == nil || !strings.Contains(err.Error(), "no free port") {
			t.Fatalf("Next with every port taken = %d, %v", port, err)
		}
		return
	}
	t.Fatal("no two free ports that follow each other")
}

func TestPortsSmallRange(t *testing.T) {
	// A lowered ephemeral range leaves too few ports below it: the
	// kernel picks.
	p := newPorts(portsLow, portsLow+10)
	if port, err := p.Next(); err != nil || port <= 0 || port > 65535 {
		t.Fatalf("Next = %d, %v", port, err)
	}
}
