package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Pid files: <RunDir>/<ID>.pid holds "<pid> <starttime>\n", where pid is
// also the process group and starttime is field 22 of /proc/<pid>/stat
// (clock ticks since boot), which tells a recycled pid from ours.

// writePidFile records a started process; it returns the file's path, or ""
// when there is no RunDir or writing failed (logged: the process runs on,
// only the sweep after an engine crash cannot find it).
func (s *Supervisor) writePidFile(id string, pid int) string {
	if s.runDir == "" {
		return ""
	}
	st, err := readProcStat(pid)
	if err == nil {
		err = os.MkdirAll(s.runDir, 0o700)
	}
	path := filepath.Join(s.runDir, id+".pid")
	if err == nil {
		tmp := path + ".tmp"
		err = os.WriteFile(tmp, fmt.Appendf(nil, "%d %d\n", pid, st.start), 0o600)
		if err == nil {
			err = os.Rename(tmp, path)
		}
	}
	if err != nil {
		s.log.Warn("cannot write pid file", "instance", id, "err", err)
		return ""
	}
	return path
}

// Sweep kills the process groups recorded in runDir by an engine that died
// without stopping them, and removes their pid files. The engine calls it
// when it starts, before starting instances. A pid file whose process is
// gone or whose pid now belongs to another process (start time differs) is
// removed without killing anything.
func Sweep(logger *slog.Logger, runDir string) (killed int, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(runDir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(runDir, name)
		if strings.HasSuffix(name, ".pid.tmp") {
			_ = os.Remove(path)
			continue
		}
		if !strings.HasSuffix(name, ".pid") || e.IsDir() {
			continue
		}
		pid, start, perr := readPidFile(path)
		if perr != nil {
			logger.Warn("sweep: unreadable pid file; removing it", "file", path, "err", perr)
		} else if n := sweepGroup(pid, start); n > 0 {
			killed++
			logger.Info("sweep: killed orphaned process group", "file", name, "pgid", pid, "processes", n)
		}
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("sweep: %w", rerr))
		}
	}
	removeEmptyCgroups(logger)
	return killed, errors.Join(errs...)
}

// removeEmptyCgroups removes the limit cgroups (/sys/fs/cgroup/pier/*) that
// a dead engine left behind; rmdir fails on one that still has processes.
func removeEmptyCgroups(logger *slog.Logger) {
	base := filepath.Join(defaultCgroupRoot, "pier")
	if checkCgroupRoot(defaultCgroupRoot, nil) != nil {
		return
	}
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if err := syscall.Rmdir(filepath.Join(base, e.Name())); err == nil {
			logger.Info("sweep: removed leftover cgroup", "cgroup", e.Name())
		}
	}
}

// sweepGroup SIGKILLs the processes of group pgid that belong to the
// process recorded with this start time, and returns how many it killed.
//
// If the leader still runs with the recorded start time, the whole group is
// ours. If it runs with another start time, the pid was recycled: nothing is
// ours. If the leader is gone (Pdeathsig killed it) but members of its group
// remain, they are its children: Linux does not hand out a pid number while
// a process group of that number exists, so the group is the one we started
// (members started no earlier than the leader, which is checked too).
func sweepGroup(pgid int, start uint64) int {
	leader, err := readProcStat(pgid)
	if err == nil {
		if leader.start != start {
			return 0 // recycled pid
		}
		members := groupMembers(pgid, start)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return max(len(members), 1)
	}
	members := groupMembers(pgid, start)
	if len(members) > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return len(members)
}

// groupMembers lists the processes in group pgid started at or after start.
func groupMembers(pgid int, start uint64) []int {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range dir {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.pgrp != pgid || st.start < start || st.state == 'Z' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func readPidFile(path string) (pid int, start uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("want \"<pid> <starttime>\", got %q", b)
	}
	pid, err = strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return 0, 0, fmt.Errorf("bad pid %q", f[0])
	}
	start, err = strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("bad start time %q", f[1])
	}
	return pid, start, nil
}

// procStat holds the fields of /proc/<pid>/stat the supervisor needs.
type procStat struct {
	state byte
	pgrp  int
	start uint64 // starttime, clock ticks after boot
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses "pid (comm) state ppid pgrp ... starttime ...";
// comm may hold spaces and parentheses, so fields count from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat")
	}
	pgrp, err := strconv.Atoi(f[5-3])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: pgrp: %w", err)
	}
	start, err := strconv.ParseUint(f[22-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat: starttime: %w", err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}
