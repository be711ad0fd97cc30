package supervisor

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startGroup starts sh -c script in its own process group, as the
// supervisor does, and returns it with the pid of its child printed on stdout.
func startGroup(t *testing.T, sh string) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", sh)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	child, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("child pid %q: %v", buf[:n], err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		syscall.Kill(child, syscall.SIGKILL)
	})
	return cmd, child
}

func writePid(t *testing.T, dir, name string, pid int, start uint64) string {
	t.Helper()
	path := filepath.Join(dir, name+".pid")
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d\n", pid, start), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSweep(t *testing.T) {
	dir := t.TempDir()

	// An orphaned group whose leader still runs.
	leader, child := startGroup(t, `sleep 1000 & echo $!; wait`)
	st, err := readProcStat(leader.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writePid(t, dir, "live.1", leader.Process.Pid, st.start)
	go leader.Wait()

	// A group whose leader died (as Pdeathsig does) leaving a child.
	dead, orphan := startGroup(t, `sleep 1000 & echo $!; exec sleep 1000`)
	st2, err := readProcStat(dead.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writePid(t, dir, "orphan.1", dead.Process.Pid, st2.start)
	dead.Process.Kill()
	dead.Wait()

	// A recycled pid: a live process whose start time differs. Never killed.
	bystander, bchild := startGroup(t, `sleep 1000 & echo $!; wait`)
	bst, err := readProcStat(bystander.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writePid(t, dir, "recycled.1", bystander.Process.Pid, bst.start-1)
	go bystander.Wait()

	// A pid that is gone, and garbage.
	writePid(t, dir, "gone.1", 1<<22+12345, 1)
	os.WriteFile(filepath.Join(dir, "junk.pid"), []byte("not a pid file"), 0o600)
	os.WriteFile(filepath.Join(dir, "other.txt"), []byte("kept"), 0o600)

	killed, err := Sweep(nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if killed != 2 {
		t.Errorf("killed %d groups, want 2", killed)
	}
	waitFor(t, 5*time.Second, "orphans gone", func() bool {
		return !alive(leader.Process.Pid) && !alive(child) && !alive(orphan)
	})
	if !alive(bystander.Process.Pid) || !alive(bchild) {
		t.Error("Sweep killed a process whose pid was recycled")
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "other.txt" {
		t.Errorf("left in run dir: %v", left)
	}
	if n, err := Sweep(nil, filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Errorf("Sweep of a missing dir = %d, %v", n, err)
	}
}

func TestParseProcStat(t *testing.T) {
	line := "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'S' || st.pgrp != 4242 || st.start != 987654 {
		t.Errorf("got %+v", st)
	}
	if _, err := parseProcStat([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
}

// An engine killed with SIGKILL: Pdeathsig takes its instances down, and
// Sweep finds what they left behind from the pid files.
func TestEngineKilled(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	runDir := t.TempDir()
	engine := exec.Command(exe)
	engine.Env = baseEnv("SUPERVISOR_TEST_HELPER=engine", "RUN_DIR="+runDir,
		"COMMAND="+script(t, `sleep 1000 & echo "child $!"; exec sleep 1000`))
	out, err := engine.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Process.Kill(); engine.Wait() })
	var leader, child int
	sc := bufio.NewScanner(out)
	for (leader == 0 || child == 0) && sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "leader "); ok {
			leader, _ = strconv.Atoi(n)
		} else if n, ok := strings.CutPrefix(sc.Text(), "child "); ok {
			child, _ = strconv.Atoi(n)
		} else {
			t.Logf("engine: %s", sc.Text())
		}
	}
	if leader == 0 || child == 0 {
		t.Fatalf("engine did not report its instance (leader %d, child %d)", leader, child)
	}
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })

	engine.Process.Kill()
	engine.Wait()
	waitFor(t, 10*time.Second, "instance killed by Pdeathsig", func() bool { return !alive(leader) })
	if !alive(child) {
		t.Fatal("the instance's child died too; nothing left to sweep")
	}
	killed, err := Sweep(nil, runDir)
	if err != nil || killed != 1 {
		t.Errorf("Sweep = %d, %v; want 1", killed, err)
	}
	waitFor(t, 10*time.Second, "orphaned child swept", func() bool { return !alive(child) })
}
