package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	defaultCgroupRoot = "/sys/fs/cgroup"
	cgroup2Magic      = 0x63677270 // CGROUP2_SUPER_MAGIC
	noControllers     = "no cgroup v2 memory/cpu controllers"
	cpuPeriod         = 100000 // cpu.max period in µs
)

var limitControllers = []string{"memory", "cpu"}

// LimitsSupported reports whether memory and CPU limits can be enforced on
// this machine: /sys/fs/cgroup must be a cgroup v2 mount offering the memory
// and cpu controllers. If not, why says what is missing.
func LimitsSupported() (ok bool, why string) {
	if err := checkCgroupRoot(defaultCgroupRoot, limitControllers); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// checkCgroupRoot checks that root is a cgroup2 mount with the controllers.
func checkCgroupRoot(root string, need []string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		return fmt.Errorf("%s: %v", noControllers, err)
	}
	if st.Type != cgroup2Magic {
		return fmt.Errorf("%s: %s is not a cgroup2 mount (cgroup v1 or hybrid layout)", noControllers, root)
	}
	b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("%s: %v", noControllers, err)
	}
	have := strings.Fields(string(b))
	var missing []string
	for _, c := range need {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %s does not offer %s", noControllers, root, strings.Join(missing, ", "))
	}
	return nil
}

// cgroups creates one cgroup per limited process under <root>/pier.
// The setup (checks, <root>/pier, enabling controllers) happens once, on
// the first process with limits.
type cgroups struct {
	log    *slog.Logger
	root   string   // "" = defaultCgroupRoot
	need   []string // controllers required; tests use none
	always bool     // create a cgroup even for a process without limits (tests)

	once sync.Once
	base string // <root>/pier once set up; "" if limits are not enforced
	why  string // Status.Limits when base is ""
}

func newCgroups(root string, log *slog.Logger) *cgroups {
	return &cgroups{log: log, root: root, need: limitControllers}
}

func (c *cgroups) setup() {
	root := c.root
	if root == "" {
		root = defaultCgroupRoot
	}
	if err := checkCgroupRoot(root, c.need); err != nil {
		c.why = "not enforced: " + noControllers
		c.log.Warn("resource limits are not enforced", "why", err.Error())
		return
	}
	base := filepath.Join(root, "pier")
	err := enableControllers(root, c.need)
	if err == nil {
		err = os.Mkdir(base, 0o755)
		if errors.Is(err, os.ErrExist) {
			err = nil
		}
	}
	if err == nil {
		err = enableControllers(base, c.need)
	}
	if err != nil {
		c.why = "not enforced: " + err.Error()
		c.log.Warn("resource limits are not enforced", "why", err.Error())
		return
	}
	c.base = base
}

// enableControllers makes the controllers available to dir's children.
func enableControllers(dir string, need []string) error {
	if len(need) == 0 {
		return nil
	}
	file := filepath.Join(dir, "cgroup.subtree_control")
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	have := strings.Fields(string(b))
	var add []string
	for _, c := range need {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.WriteFile(file, []byte(strings.Join(add, " ")), 0); err != nil {
		return fmt.Errorf("enable %s in %s: %w", strings.Join(add, " "), file, err)
	}
	return nil
}

// open returns the Status.Limits text for l and, when limits apply and can
// be enforced, a new cgroup <root>/pier/<id> holding them. Failing to set it
// up is not fatal: the process then runs without limits and says so.
func (c *cgroups) open(id string, l Limits) (string, *cgroup) {
	if l == (Limits{}) && !c.always {
		return "none", nil
	}
	c.once.Do(c.setup)
	if c.base == "" {
		return c.why, nil
	}
	g, err := createCgroup(filepath.Join(c.base, id), l)
	if err != nil {
		c.log.Warn("resource limits are not enforced", "instance", id, "err", err)
		return "not enforced: " + err.Error(), nil
	}
	return describeLimits(l), g
}

// cgroup is one process's cgroup; fd is its directory, for CgroupFD.
type cgroup struct {
	dir string
	fd  int
}

func createCgroup(dir string, l Limits) (*cgroup, error) {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, os.ErrExist) {
		// Left over by an engine that died: whatever runs in it is an
		// orphan of the same instance.
		(&cgroup{dir: dir}).kill()
		err = nil
	}
	if err != nil {
		return nil, err
	}
	write := func(name, value string) error {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
			return fmt.Errorf("cgroup %s: %w", name, err)
		}
		return nil
	}
	if l.MemoryBytes > 0 {
		err = write("memory.max", strconv.FormatInt(l.MemoryBytes, 10))
		if err == nil {
			// Best effort: without swap.max the limit could be escaped by
			// swapping; the file is missing when swap accounting is off.
			_ = write("memory.swap.max", "0")
		}
	}
	if err == nil && l.CPU > 0 {
		err = write("cpu.max", cpuMax(l.CPU))
	}
	var fd int
	if err == nil {
		fd, err = syscall.Open(dir, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		_ = syscall.Rmdir(dir)
		return nil, err
	}
	return &cgroup{dir: dir, fd: fd}, nil
}

// kill SIGKILLs every process in the cgroup (cgroup.kill, Linux 5.14+).
func (g *cgroup) kill() {
	_ = os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0)
}

// remove closes the cgroup and removes it once its processes are gone
// (which takes a moment after SIGKILL), giving up after a second.
func (g *cgroup) remove(log *slog.Logger) {
	if g == nil {
		return
	}
	if g.fd >= 0 {
		syscall.Close(g.fd)
		g.fd = -1
	}
	var err error
	for range 20 {
		if err = syscall.Rmdir(g.dir); err == nil || errors.Is(err, syscall.ENOENT) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Warn("remove cgroup", "dir", g.dir, "err", err)
}

// cpuMax is cpu.max for a number of CPUs: 0.5 -> "50000 100000".
func cpuMax(cpus float64) string {
	quota := max(int64(math.Round(cpus*cpuPeriod)), 1000) // kernel minimum 1ms
	return fmt.Sprintf("%d %d", quota, cpuPeriod)
}

// describeLimits is Status.Limits for enforced limits: "memory 256M, cpu 0.5".
func describeLimits(l Limits) string {
	var parts []string
	if l.MemoryBytes > 0 {
		parts = append(parts, "memory "+formatBytes(l.MemoryBytes))
	}
	if l.CPU > 0 {
		parts = append(parts, "cpu "+strconv.FormatFloat(l.CPU, 'g', -1, 64))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
