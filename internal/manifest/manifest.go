// Package manifest reads an app's manifest — pier.yaml at the app's root, or
// a Procfile — and validates it into a Manifest that the deploy, supervisor,
// gateway and task parts act on.
//
// Every problem is reported with the file, line, column and dotted field path
// it concerns ("pier.yaml:3:7: scale.web.min: must be at least 0"), and a
// file's problems are reported together as a List. Unknown keys are errors.
// Defaults are applied in one place (applyDefaults), so a Manifest returned
// without error is complete.
package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Manifest is a validated app manifest.
type Manifest struct {
	// Name is the app's name, or "" when the manifest leaves it to the CLI
	// (--app). When set it matches ^[a-z][a-z0-9-]{0,39}$ and does not end in
	// "-": it becomes a hostname label and a UNIX user name suffix.
	Name string
	// Processes maps a process type to its shell command line. "web"
	// receives HTTP on $PORT. Empty only for a static site.
	Processes map[string]string
	// Protocol is what the web process speaks on $PORT: ProtocolHTTP
	// (HTTP/1.1, the default) or ProtocolH2C (HTTP/2 without TLS, with
	// prior knowledge). The gateway and the health check speak it to the
	// web instances. A release stored before the field existed reads "",
	// which means ProtocolHTTP.
	Protocol string
	// Health is how a web instance proves it is ready.
	Health Health
	// Scale holds the instance bounds of the process types that set them;
	// a declared process without an entry runs one instance (see Desired).
	Scale map[string]Scale
	// Domains are exact host names or "*.suffix" wildcards, lower-cased.
	Domains []string
	// Static maps a URL prefix (starting with "/") to a directory relative
	// to the app root, cleaned ("public/" reads as "public"). The gateway
	// serves these itself.
	Static map[string]string
	// Cache holds per-path cache rules, in file order, applied on top of the
	// app's own Cache-Control.
	Cache []CacheRule
	// Queues are the app's task queues by name.
	Queues map[string]Queue
	// Cron holds scheduled tasks in file order.
	Cron []Cron
	// Env holds config vars; numbers and booleans keep their spelling.
	Env map[string]string
	// Limits hold resource limits for every instance of every process and
	// request rate limits for the app's HTTP traffic. Zero means no limit.
	Limits Limits
}

// Health configures the readiness and liveness check of web instances.
type Health struct {
	// Path is requested with GET and must answer 2xx. If empty, an instance
	// is ready once its port accepts connections.
	Path string
	// Timeout is how long a new instance may take to become healthy.
	// Defaults to DefaultHealthTimeout.
	Timeout time.Duration
	// Interval is the time between checks. Defaults to DefaultHealthInterval.
	Interval time.Duration
}

// Defaults applied to a manifest that does not set them.
const (
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthInterval = 500 * time.Millisecond
)

// The protocols a web process may speak (processes.web.protocol).
const (
	ProtocolHTTP = "http" // HTTP/1.1
	ProtocolH2C  = "h2c"  // HTTP/2 over plain TCP, prior knowledge
)

// Scale bounds the number of instances of one process type.
type Scale struct {
	// Min instances to keep running; 0 means started on the first request.
	Min int
	// Max instances, at least max(Min, 1) and at most 100.
	Max int
}

// Limits are resource limits per instance, and request rate limits the
// gateway applies to the app (answering 429 with Retry-After past them).
type Limits struct {
	MemoryBytes int64   // 0 = no limit
	CPU         float64 // cores, e.g. 0.5; 0 = no limit

	// Requests bounds the requests per second the whole app is served,
	// all clients together; 0 = no limit.
	Requests float64
	// PerIP bounds the requests per second served to each client
	// address; 0 = no limit.
	PerIP float64
}

// CacheRule sets how the gateway caches responses under one path.
type CacheRule struct {
	// Path is an exact URL path, or a prefix when it ends in "*".
	Path string
	// TTL is how long a response stays fresh; set when Cache is true.
	TTL time.Duration
	// Cache is false for paths that must never be cached.
	Cache bool
}

// Queue configures one task queue. Zero fields leave the choice to the tasks
// part's defaults.
type Queue struct {
	Push        string  // path tasks are POSTed to on the web process; "" = pull only
	Rate        float64 // tasks started per second
	Concurrency int     // tasks running at once
	Attempts    int     // tries before a task is dead
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
}

// Cron is one scheduled task: a task on Queue, or a request to Path.
// Exactly one of Queue and Path is set.
type Cron struct {
	// Schedule is a 5-field (or 6-field, with seconds) cron expression, or a
	// descriptor such as "@hourly" or "@every 1m". Only its shape is checked.
	Schedule string
	Queue    string
	Path     string
	Body     string
}

// ErrNotFound is wrapped by Load when a directory holds no manifest at all.
var ErrNotFound = errors.New("manifest: no pier.yaml or Procfile")

// ProcessTypes returns the declared process types, sorted, "web" first.
func (m *Manifest) ProcessTypes() []string {
	types := make([]string, 0, len(m.Processes))
	for t := range m.Processes {
		types = append(types, t)
	}
	slices.SortFunc(types, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "web":
			return -1
		case b == "web":
			return 1
		case a < b:
			return -1
		}
		return 1
	})
	return types
}

// Desired returns how many instances of process to run: its Scale.Min when
// set, 1 for any other declared process, 0 for an undeclared one.
func (m *Manifest) Desired(process string) int {
	if _, ok := m.Processes[process]; !ok {
		return 0
	}
	if s, ok := m.Scale[process]; ok {
		return s.Min
	}
	return 1
}

// Load reads the manifest of the app in dir: dir/pier.yaml (or pier.yml),
// else dir/Procfile. When both exist pier.yaml wins, but if it declares no
// processes the Procfile's fill in. With neither, the error wraps ErrNotFound.
// Problems are reported against the file's base name ("pier.yaml:3:7: ...").
func Load(dir string) (*Manifest, error) {
	yamlName, yamlData, err := readFirst(dir, "pier.yaml", "pier.yml")
	if err != nil {
		return nil, err
	}
	procName, procData, err := readFirst(dir, "Procfile")
	if err != nil {
		return nil, err
	}
	switch {
	case yamlName == "" && procName == "":
		return nil, fmt.Errorf("%w in %s", ErrNotFound, dir)
	case yamlName == "":
		return ParseProcfile(procName, procData)
	}
	m, src, errs := parseYAML(yamlName, yamlData)
	if len(m.Processes) == 0 && !src.badProcesses && procName != "" {
		pm, perrs := parseProcfile(procName, procData)
		m.Processes = pm.Processes
		errs = append(errs, perrs...)
	}
	errs = append(errs, src.finish(m)...)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// readFirst reads the first of names that exists in dir. It returns "" and
// no error when none does; two spellings of the same file are an error.
func readFirst(dir string, names ...string) (name string, data []byte, err error) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return "", nil, fmt.Errorf("manifest: %w", err)
		case name != "":
			return "", nil, fmt.Errorf("manifest: both %s and %s exist in %s; keep one", name, n, dir)
		}
		name, data = n, b
	}
	return name, data, nil
}

// source remembers where things were in a parsed file, for the checks that
// can only run once the whole manifest is known (see finish).
type source struct {
	file         string
	root         pos            // where "missing" problems are reported
	scaleKeys    map[string]pos // position of each scale key
	badProcesses bool           // the processes section had errors
}

type pos struct{ line, col int }

// finish applies defaults and runs the checks that span sections: scale keys
// name declared processes, and there is something to run or serve.
func (s *source) finish(m *Manifest) List {
	applyDefaults(m)
	var errs List
	if len(m.Processes) == 0 {
		if len(m.Static) == 0 && !s.badProcesses {
			errs = append(errs, &Error{File: s.file, Line: s.root.line, Column: s.root.col, Field: "processes",
				Msg: "at least one process is required (or static, for a static site)"})
		}
		return errs
	}
	types := m.ProcessTypes()
	for _, name := range slices.Sorted(maps.Keys(m.Scale)) {
		if _, ok := m.Processes[name]; ok {
			continue
		}
		p := s.scaleKeys[name]
		errs = append(errs, &Error{File: s.file, Line: max(p.line, 1), Column: max(p.col, 1), Field: join("scale", name),
			Msg: fmt.Sprintf("no process %q is declared (have %v)%s", name, types, suggest(name, types))})
	}
	return errs
}

// applyDefaults fills in every default a manifest has.
func applyDefaults(m *Manifest) {
	if m.Health.Timeout == 0 {
		m.Health.Timeout = DefaultHealthTimeout
	}
	if m.Health.Interval == 0 {
		m.Health.Interval = DefaultHealthInterval
	}
	if m.Protocol == "" {
		m.Protocol = ProtocolHTTP
	}
}
