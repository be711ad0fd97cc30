package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDescribeLimits(t *testing.T) {
	for _, tc := range []struct {
		l    Limits
		want string
	}{
		{Limits{}, "none"},
		{Limits{MemoryBytes: 256 << 20, CPU: 0.5}, "memory 256M, cpu 0.5"},
		{Limits{MemoryBytes: 2 << 30}, "memory 2G"},
		{Limits{MemoryBytes: 1536 << 10}, "memory 1536K"},
		{Limits{MemoryBytes: 1000}, "memory 1000"},
		{Limits{CPU: 2}, "cpu 2"},
	} {
		if got := describeLimits(tc.l); got != tc.want {
			t.Errorf("describeLimits(%+v) = %q, want %q", tc.l, got, tc.want)
		}
	}
	for _, tc := range []struct {
		cpu  float64
		want string
	}{{0.5, "50000 100000"}, {1, "100000 100000"}, {2.25, "225000 100000"}, {0.001, "1000 100000"}} {
		if got := cpuMax(tc.cpu); got != tc.want {
			t.Errorf("cpuMax(%v) = %q, want %q", tc.cpu, got, tc.want)
		}
	}
}

// On this kind of machine (cgroup v1/hybrid) limits cannot be enforced: the
// process runs anyway and Status says why. On a cgroup v2 machine with the
// controllers, the limits land in the instance's cgroup.
func TestLimits(t *testing.T) {
	t.Parallel()
	ok, why := LimitsSupported()
	t.Logf("LimitsSupported: %v %q", ok, why)
	s, _ := newTestSupervisor(t)
	i := startOrFatal(t, s, Spec{ID: "limited.1", Command: "sleep 1000", Env: baseEnv(), Limits: Limits{MemoryBytes: 64 << 20, CPU: 0.5}})
	st := i.Status()
	if !ok {
		if !strings.HasPrefix(why, noControllers) {
			t.Errorf("why = %q", why)
		}
		if st.Limits != "not enforced: no cgroup v2 memory/cpu controllers" {
			t.Errorf("Status.Limits = %q", st.Limits)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("cgroup v2 limits need root")
	}
	if st.Limits != "memory 64M, cpu 0.5" {
		t.Fatalf("Status.Limits = %q", st.Limits)
	}
	dir := filepath.Join(defaultCgroupRoot, "pier", "limited.1")
	for file, want := range map[string]string{"memory.max": "67108864", "cpu.max": "50000 100000"} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q (%v), want %q", file, b, err, want)
		}
	}
	assertInCgroup(t, st.PID, "/pier/limited.1")
	stopOrFatal(t, i)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup %s left after Stop: %v", dir, err)
	}
}

// The CgroupFD path, tested on any writable cgroup2 mount, with or without
// controllers (here: the hybrid layout's /sys/fs/cgroup/unified).
func TestStartsInCgroup(t *testing.T) {
	t.Parallel()
	root := "/sys/fs/cgroup/unified"
	if ok, _ := LimitsSupported(); ok {
		root = defaultCgroupRoot
	}
	if err := checkCgroupRoot(root, nil); err != nil {
		t.Skip(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	s, _ := newTestSupervisor(t)
	s.cg = &cgroups{log: s.log, root: root, always: true}
	id := fmt.Sprintf("cgtest-%d.1", os.Getpid())
	i := startOrFatal(t, s, Spec{ID: id, Command: "sleep 1000", Env: baseEnv()})
	assertInCgroup(t, i.Status().PID, "/pier/"+id)
	dir := filepath.Join(root, "pier", id)
	stopOrFatal(t, i)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup %s left after Stop: %v", dir, err)
	}
}

func assertInCgroup(t *testing.T, pid int, want string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			if path != want {
				t.Errorf("process %d in cgroup %q, want %q", pid, path, want)
			}
			return
		}
	}
	t.Errorf("process %d: no cgroup2 line in %q", pid, b)
}
