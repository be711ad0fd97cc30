package metrics

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// ProcOwners finds which app sent a UDP datagram from a loopback source
// port: the kernel lists the socket bound to that port in /proc/net/udp
// with its inode, and the socket is among the open files of one process of
// one instance (the group leader the supervisor started, or a child in its
// process group). Answers are cached per port for a few minutes (a statsd
// client keeps its socket), misses for a few seconds.
type ProcOwners struct {
	procRoot  string
	processes func() []Process

	mu    sync.Mutex // guards cache
	cache map[uint16]owner
}

type owner struct {
	app     string
	expires time.Time
}

const (
	ownerTTL = 5 * time.Minute
	missTTL  = 5 * time.Second
)

// NewProcOwners returns a resolver over the instances processes lists.
// procRoot "" means /proc.
func NewProcOwners(procRoot string, processes func() []Process) *ProcOwners {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &ProcOwners{procRoot: procRoot, processes: processes, cache: make(map[uint16]owner)}
}

// AppFor returns the app whose process owns the socket src is bound to.
func (o *ProcOwners) AppFor(src netip.AddrPort) (string, bool) {
	if !src.Addr().Unmap().IsLoopback() {
		return "", false
	}
	now := time.Now()
	port := src.Port()
	o.mu.Lock()
	c, ok := o.cache[port]
	o.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.app, c.app != ""
	}
	app := o.lookup(port)
	ttl := ownerTTL
	if app == "" {
		ttl = missTTL
	}
	o.mu.Lock()
	if len(o.cache) > 4096 {
		for k, v := range o.cache {
			if now.After(v.expires) {
				delete(o.cache, k)
			}
		}
	}
	o.cache[port] = owner{app: app, expires: now.Add(ttl)}
	o.mu.Unlock()
	return app, app != ""
}

func (o *ProcOwners) lookup(port uint16) string {
	inodes := make(map[string]bool)
	for _, f := range []string{"net/udp", "net/udp6"} {
		udpInodes(o.procRoot+"/"+f, port, inodes)
	}
	if len(inodes) == 0 {
		return ""
	}
	leaders := make(map[int]string) // process group -> app
	for _, p := range o.processes() {
		if p.PID > 0 {
			leaders[p.PID] = p.App
		}
	}
	dir, err := os.Open(o.procRoot)
	if err != nil {
		return ""
	}
	names, _ := dir.Readdirnames(-1)
	dir.Close()
	buf := make([]byte, 0, 1024)
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		data, err := readSmall(o.procRoot+"/"+name+"/stat", buf)
		if err != nil {
			continue
		}
		pgrp, _, _, ok := parseStat(data)
		app, mine := leaders[pgrp]
		if !ok || !mine {
			continue
		}
		if ownsSocket(o.procRoot+"/"+name+"/fd", inodes) {
			return app
		}
	}
	return ""
}

// udpInodes adds the inodes of the sockets bound to port listed in a
// /proc/net/udp{,6} table.
func udpInodes(path string, port uint16, into map[string]bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
		if len(fields) < 10 || !strings.HasSuffix(fields[1], want) {
			continue
		}
		into[fields[9]] = true
	}
}

func ownsSocket(fdDir string, inodes map[string]bool) bool {
	d, err := os.Open(fdDir)
	if err != nil {
		return false
	}
	fds, _ := d.Readdirnames(-1)
	d.Close()
	for _, fd := range fds {
		target, err := os.Readlink(fdDir + "/" + fd)
		if err != nil {
			continue
		}
		inode, ok := strings.CutPrefix(target, "socket:[")
		if ok && inodes[strings.TrimSuffix(inode, "]")] {
			return true
		}
	}
	return false
}
