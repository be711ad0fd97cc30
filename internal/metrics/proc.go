package metrics

import (
	"bytes"
	"os"
	"strconv"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture pier runs on.
const clockTicks = 100

// procUsage is the CPU time and resident memory of one process group.
type procUsage struct {
	ticks uint64 // utime + stime of its living processes
	rss   uint64 // bytes
}

// readProcGroups sums CPU time and RSS per process group over every
// process in procRoot (normally /proc) whose group is in want. Each
// instance runs in its own process group (its leader's PID), so this
// counts the children an app forks (gunicorn workers, node clusters).
// Processes that vanish while being read are skipped.
func readProcGroups(procRoot string, want map[int]bool) map[int]procUsage {
	out := make(map[int]procUsage, len(want))
	if len(want) == 0 {
		return out
	}
	dir, err := os.Open(procRoot)
	if err != nil {
		return out
	}
	defer dir.Close()
	names, _ := dir.Readdirnames(-1)
	page := uint64(os.Getpagesize())
	buf := make([]byte, 0, 1024)
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		data, err := readSmall(procRoot+"/"+name+"/stat", buf)
		if err != nil {
			continue
		}
		pgrp, ticks, rssPages, ok := parseStat(data)
		if !ok || !want[pgrp] {
			continue
		}
		u := out[pgrp]
		u.ticks += ticks
		u.rss += rssPages * page
		out[pgrp] = u
	}
	return out
}

func readSmall(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Read(buf[:cap(buf)])
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// parseStat reads the process group, utime+stime and rss (pages) from the
// contents of /proc/<pid>/stat. The command name (field 2) may hold spaces
// and parentheses, so fields are counted from the last ')'.
func parseStat(data []byte) (pgrp int, ticks, rss uint64, ok bool) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, 0, 0, false
	}
	fields := bytes.Fields(data[end+1:])
	// fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15, rss 24.
	if len(fields) < 22 {
		return 0, 0, 0, false
	}
	num := func(i int) uint64 {
		v, _ := strconv.ParseUint(string(fields[i-3]), 10, 64)
		return v
	}
	pg, err := strconv.Atoi(string(fields[5-3]))
	if err != nil {
		return 0, 0, 0, false
	}
	return pg, num(14) + num(15), num(24), true
}
