package manifest

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// designYAML is the manifest of DESIGN.md, plus limits.
const designYAML = `name: blog
processes:                # process type -> command; "web" receives HTTP
  web: python app.py      # listens on $PORT
  worker: python worker.py
health: {path: /healthz, timeout: 5s}
scale: {web: {min: 1, max: 4}, worker: 1}   # min 0 = started on first request
domains: [blog.example.com, "*.blogs.example.com"]
static: {/static: public/}                 # served by the gateway itself
cache:                                     # on top of Cache-Control from the app
  - {path: /comments/count, ttl: 5m}
queues:
  email: {push: /tasks/email, rate: 50/s, concurrency: 10, attempts: 10}
cron:
  - {schedule: "*/5 * * * *", queue: email, body: "{}"}
env: {LOG_LEVEL: info}
limits: {memory: 256M, cpu: 0.5}
`

func TestParseDesign(t *testing.T) {
	got, err := Parse("pier.yaml", []byte(designYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{
		Name:      "blog",
		Processes: map[string]string{"web": "python app.py", "worker": "python worker.py"},
		Protocol:  ProtocolHTTP,
		Health:    Health{Path: "/healthz", Timeout: 5 * time.Second, Interval: 500 * time.Millisecond},
		Scale:     map[string]Scale{"web": {Min: 1, Max: 4}, "worker": {Min: 1, Max: 1}},
		Domains:   []string{"blog.example.com", "*.blogs.example.com"},
		Static:    map[string]string{"/static": "public"},
		Cache:     []CacheRule{{Path: "/comments/count", TTL: 5 * time.Minute, Cache: true}},
		Queues:    map[string]Queue{"email": {Push: "/tasks/email", Rate: 50, Concurrency: 10, Attempts: 10}},
		Cron:      []Cron{{Schedule: "*/5 * * * *", Queue: "email", Body: "{}"}},
		Env:       map[string]string{"LOG_LEVEL": "info"},
		Limits:    Limits{MemoryBytes: 256 << 20, CPU: 0.5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// parseOK parses src and fails the test on error.
func parseOK(t *testing.T, src string) *Manifest {
	t.Helper()
	m, err := Parse("pier.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return m
}

func TestParseValues(t *testing.T) {
	const web = "processes: {web: ./server}\n"
	tests := []struct {
		name string
		src  string
		get  func(*Manifest) any
		want any
	}{
		{"name absent", web, func(m *Manifest) any { return m.Name }, ""},
		{"command trimmed", "processes:\n  web: |\n    ./server --port $PORT\n", func(m *Manifest) any { return m.Processes["web"] }, "./server --port $PORT"},
		{"health defaults", web, func(m *Manifest) any { return m.Health }, Health{Timeout: 30 * time.Second, Interval: 500 * time.Millisecond}},
		{"health seconds", web + "health: {timeout: 10, interval: 1m30s}", func(m *Manifest) any { return m.Health }, Health{Timeout: 10 * time.Second, Interval: 90 * time.Second}},
		{"scale int", web + "scale: {web: 3}", func(m *Manifest) any { return m.Scale["web"] }, Scale{Min: 3, Max: 3}},
		{"scale zero", web + "scale: {web: 0}", func(m *Manifest) any { return m.Scale["web"] }, Scale{Min: 0, Max: 1}},
		{"scale min only", web + "scale: {web: {min: 2}}", func(m *Manifest) any { return m.Scale["web"] }, Scale{Min: 2, Max: 2}},
		{"scale min zero", web + "scale: {web: {min: 0}}", func(m *Manifest) any { return m.Scale["web"] }, Scale{Min: 0, Max: 1}},
		{"scale max only", web + "scale: {web: {max: 5}}", func(m *Manifest) any { return m.Scale["web"] }, Scale{Min: 0, Max: 5}},
		{"domains lower-cased", web + "domains: [Blog.Example.COM, '*.X.org', localhost]", func(m *Manifest) any { return m.Domains }, []string{"blog.example.com", "*.x.org", "localhost"}},
		{"static cleaned", web + "static: {/assets/: ./build//assets/, /: .}", func(m *Manifest) any { return m.Static }, map[string]string{"/assets/": "build/assets", "/": "."}},
		{"cache never", web + "cache: [{path: /admin*, cache: false}]", func(m *Manifest) any { return m.Cache }, []CacheRule{{Path: "/admin*"}}},
		{"cache true", web + "cache: [{path: /, ttl: 60, cache: true}]", func(m *Manifest) any { return m.Cache }, []CacheRule{{Path: "/", TTL: time.Minute, Cache: true}}},
		{"rate per minute", web + "queues: {q: {rate: 120/m}}", func(m *Manifest) any { return m.Queues["q"].Rate }, 2.0},
		{"rate per hour", web + "queues: {q: {rate: 36/h}}", func(m *Manifest) any { return m.Queues["q"].Rate }, 0.01},
		{"rate number", web + "queues: {q: {rate: 2.5}}", func(m *Manifest) any { return m.Queues["q"].Rate }, 2.5},
		{"rate integer", web + "queues: {q: {rate: 7}}", func(m *Manifest) any { return m.Queues["q"].Rate }, 7.0},
		{"queue full", web + "queues: {q: {push: /t, concurrency: 2, attempts: 3, min_backoff: 1s, max_backoff: 1h}}", func(m *Manifest) any { return m.Queues["q"] },
			Queue{Push: "/t", Concurrency: 2, Attempts: 3, MinBackoff: time.Second, MaxBackoff: time.Hour}},
		{"queue empty", web + "queues: {pull: }", func(m *Manifest) any { return m.Queues }, map[string]Queue{"pull": {}}},
		{"cron path", web + "cron: [{schedule: '@every 1m', path: /tick}]", func(m *Manifest) any { return m.Cron }, []Cron{{Schedule: "@every 1m", Path: "/tick"}}},
		{"cron seconds", web + "cron: [{schedule: '0 */5 * * * MON-FRI', path: /tick}]", func(m *Manifest) any { return m.Cron[0].Schedule }, "0 */5 * * * MON-FRI"},
		{"cron hourly", web + "cron: [{schedule: '@hourly', path: /tick}]", func(m *Manifest) any { return m.Cron[0].Schedule }, "@hourly"},
		{"env scalars", web + "env:\n  A: 1.10\n  B: true\n  C: 010\n  D: ''\n  E: |\n    two\n    lines\n", func(m *Manifest) any { return m.Env },
			map[string]string{"A": "1.10", "B": "true", "C": "010", "D": "", "E": "two\nlines\n"}},
		{"memory bytes", web + "limits: {memory: 1048576}", func(m *Manifest) any { return m.Limits.MemoryBytes }, int64(1 << 20)},
		{"memory K", web + "limits: {memory: 512K}", func(m *Manifest) any { return m.Limits.MemoryBytes }, int64(512 << 10)},
		{"memory MB", web + "limits: {memory: 256MB}", func(m *Manifest) any { return m.Limits.MemoryBytes }, int64(256 << 20)},
		{"memory G", web + "limits: {memory: 1G}", func(m *Manifest) any { return m.Limits.MemoryBytes }, int64(1 << 30)},
		{"memory GiB", web + "limits: {memory: 1GiB}", func(m *Manifest) any { return m.Limits.MemoryBytes }, int64(1 << 30)},
		{"memory fraction", web + "limits: {memory: 1.5g}", func(m *Manifest) any { return m.Limits.MemoryBytes }, int64(3 << 29)},
		{"cpu integer", web + "limits: {cpu: 2}", func(m *Manifest) any { return m.Limits.CPU }, 2.0},
		{"request limits", web + "limits: {requests: 100/s, per_ip: 600/m}", func(m *Manifest) any { return m.Limits }, Limits{Requests: 100, PerIP: 10}},
		{"request limit number", web + "limits: {requests: 2.5, memory: 1G}", func(m *Manifest) any { return m.Limits }, Limits{Requests: 2.5, MemoryBytes: 1 << 30}},
		{"static site", "static: {/: public}", func(m *Manifest) any { return len(m.Processes) }, 0},
		{"anchors and merge", "x-common: &c {web: ./a, worker: ./b}\nprocesses:\n  <<: *c\n  worker: ./c\n",
			func(m *Manifest) any { return m.Processes }, map[string]string{"web": "./a", "worker": "./c"}},
		{"explicit string", "processes: {web: !!str 1}", func(m *Manifest) any { return m.Processes["web"] }, "1"},
		{"explicit key", "? processes\n: {web: x}\n", func(m *Manifest) any { return m.Processes["web"] }, "x"},
		{"protocol default", web, func(m *Manifest) any { return m.Protocol }, ProtocolHTTP},
		{"protocol h2c", "processes:\n  web: {command: ./server, protocol: h2c}\n  worker: ./w\n", func(m *Manifest) any { return []string{m.Processes["web"], m.Protocol} }, []string{"./server", ProtocolH2C}},
		{"protocol http", "processes: {web: {command: ./server, protocol: http}}", func(m *Manifest) any { return m.Protocol }, ProtocolHTTP},
		{"process object without protocol", "processes: {worker: {command: ' ./w '}}", func(m *Manifest) any { return []string{m.Processes["worker"], m.Protocol} }, []string{"./w", ProtocolHTTP}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := parseOK(t, tt.src)
			if got := tt.get(m); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const web = "processes: {web: ./server}\n" // line 1
	tests := []struct {
		name string
		src  string
		want string // every problem, one per line
	}{
		// Syntax and shape.
		{"syntax", "processes:\n  web: [a\n", "pier.yaml:2:8: invalid YAML: sequence end token ']' not found"},
		{"duplicate key", web + "processes: {}", `pier.yaml:2:1: invalid YAML: mapping key "processes" already defined at [1:1]`},
		{"not a mapping", "- web", "pier.yaml:1:1: a manifest must be a mapping of fields, not a list"},
		{"two documents", web + "---\n" + web, "pier.yaml:3:1: a manifest holds one YAML document, found 2"},
		{"empty", "", "pier.yaml:1:1: processes: at least one process is required (or static, for a static site)"},
		{"comment only", "# nothing\n", "pier.yaml:1:1: processes: at least one process is required (or static, for a static site)"},
		{"no processes", "name: blog\nenv: {A: b}", "pier.yaml:1:1: processes: at least one process is required (or static, for a static site)"},
		{"deep", strings.Repeat("[", 40), "pier.yaml:1:33: nested deeper than 32 levels"},
		{"crowded line", "processes: {web: [" + strings.Repeat("*x, ", 70) + "]}", "pier.yaml:1:267: more than 64 collections, anchors, aliases or tags on one line"},
		{"unknown alias", "processes: {web: *cmd}", "pier.yaml:1:18: processes.web: unknown alias *cmd"},
		// Unknown keys.
		{"unknown top", "procesess:\n  web: x\n", `pier.yaml:1:1: procesess: unknown field "procesess" (did you mean "processes"?)` +
			"\npier.yaml:1:1: processes: at least one process is required (or static, for a static site)"},
		{"unknown far", web + "replicas: 3", `pier.yaml:2:1: replicas: unknown field "replicas"`},
		{"unknown nested", web + "health: {path: /, timout: 5s}", `pier.yaml:2:19: health.timout: unknown field "timout" (did you mean "timeout"?)`},
		{"unknown queue field", web + "queues:\n  email:\n    retries: 3\n", `pier.yaml:4:5: queues.email.retries: unknown field "retries"`},
		{"unknown cache field", web + "cache:\n  - {path: /, ttl: 1s}\n  - {path: /a, tll: 1s}\n", "pier.yaml:4:5: cache[1].ttl: is required (set a ttl, e.g. ttl: 5m, or cache: false to never cache)\n" +
			`pier.yaml:4:16: cache[1].tll: unknown field "tll" (did you mean "ttl"?)`},
		// Types.
		{"string for mapping", "processes: web", "pier.yaml:1:12: processes: must be a mapping, not a string"},
		{"list for string", "processes: {web: [a, b]}", "pier.yaml:1:18: processes.web: must be a string, not a list"},
		{"int for list", web + "domains: 3", "pier.yaml:2:10: domains: must be a list, not an integer"},
		{"float for int", web + "queues: {q: {attempts: 1.5}}", "pier.yaml:2:24: queues.q.attempts: must be an integer, not a number"},
		{"string for bool", web + "cache: [{path: /, cache: 'no'}]", "pier.yaml:2:26: cache[0].cache: must be true or false, not a string"},
		// name.
		{"name upper", "name: Blog\n" + web, `pier.yaml:1:7: name: invalid app name "Blog": use lower-case letters, digits and '-', starting with a letter and not ending with '-', at most 40 characters`},
		{"name dash", "name: blog-\n" + web, `pier.yaml:1:7: name: invalid app name "blog-": use lower-case letters, digits and '-', starting with a letter and not ending with '-', at most 40 characters`},
		{"name long", "name: " + strings.Repeat("a", 41) + "\n" + web, `pier.yaml:1:7: name: invalid app name "` + strings.Repeat("a", 41) + `": use lower-case letters, digits and '-', starting with a letter and not ending with '-', at most 40 characters`},
		// processes.
		{"process name", "processes: {Web: x}", `pier.yaml:1:13: processes.Web: invalid process type "Web": use lower-case letters, digits, '_' and '-', starting with a letter, at most 30 characters`},
		{"process empty", "processes: {web: '  '}", "pier.yaml:1:18: processes.web: command must not be empty"},
		{"process null", "processes:\n  web:\n", "pier.yaml:2:3: processes.web: must be a string, not null"},
		{"protocol unknown", "processes: {web: {command: x, protocol: h2}}", `pier.yaml:1:41: processes.web.protocol: unknown protocol "h2": want "http" (HTTP/1.1, the default) or "h2c" (HTTP/2 without TLS) (did you mean "h2c"?)`},
		{"protocol not web", "processes:\n  web: x\n  worker: {command: y, protocol: h2c}\n", "pier.yaml:3:24: processes.worker.protocol: only the web process receives HTTP; remove protocol here"},
		{"protocol type", "processes: {web: {command: x, protocol: 2}}", "pier.yaml:1:41: processes.web.protocol: must be a string, not an integer"},
		{"process no command", "processes: {web: {protocol: h2c}}", "pier.yaml:1:18: processes.web.command: is required"},
		{"process command typo", "processes: {web: {comand: x}}", "pier.yaml:1:18: processes.web.command: is required\n" +
			`pier.yaml:1:19: processes.web.comand: unknown field "comand" (did you mean "command"?)`},
		{"process object empty command", "processes: {web: {command: ''}}", "pier.yaml:1:18: processes.web: command must not be empty"},
		// health.
		{"health path", web + "health: {path: healthz}", `pier.yaml:2:16: health.path: invalid path "healthz": must start with "/"`},
		{"health duration", web + "health: {timeout: 5 sec}", `pier.yaml:2:19: health.timeout: invalid duration "5 sec" (want e.g. 5s, 1m30s, or whole seconds)`},
		{"health zero", web + "health: {interval: 0}", "pier.yaml:2:20: health.interval: must be at least 1"},
		{"health negative", web + "health: {interval: -1s}", "pier.yaml:2:20: health.interval: must be positive"},
		// scale.
		{"scale min", web + "scale:\n  web: {min: -1}\n", "pier.yaml:3:14: scale.web.min: must be at least 0"},
		{"scale max", web + "scale: {web: {min: 1, max: 101}}", "pier.yaml:2:28: scale.web.max: must be at most 100"},
		{"scale max below min", web + "scale: {web: {min: 3, max: 2}}", "pier.yaml:2:28: scale.web.max: must be at least min (3)"},
		{"scale max zero", web + "scale: {web: {max: 0}}", "pier.yaml:2:20: scale.web.max: must be at least 1"},
		{"scale type", web + "scale: {web: lots}", "pier.yaml:2:14: scale.web: must be an instance count or {min: n, max: m}, not a string"},
		{"scale unknown", web + "scale: {web: 1, wroker: 2}", `pier.yaml:2:17: scale.wroker: no process "wroker" is declared (have [web])`},
		{"scale suggest", "processes: {web: a, worker: b}\nscale: {wroker: 2}", `pier.yaml:2:9: scale.wroker: no process "wroker" is declared (have [web worker]) (did you mean "worker"?)`},
		// domains.
		{"domain port", web + "domains: [a.com:80]", `pier.yaml:2:11: domains[0]: invalid domain "a.com:80": write the host name alone, without a port`},
		{"domain scheme", web + "domains: ['https://a.com']", `pier.yaml:2:11: domains[0]: invalid domain "https://a.com": write the host name alone, without a scheme`},
		{"domain path", web + "domains: [a.com/x]", `pier.yaml:2:11: domains[0]: invalid domain "a.com/x": write the host name alone, without a path`},
		{"domain empty label", web + "domains: [ok.com, a..com]", `pier.yaml:2:19: domains[1]: invalid domain "a..com": empty label`},
		{"domain wildcard", web + "domains: ['a.*.com']", `pier.yaml:2:11: domains[0]: invalid domain "a.*.com": a wildcard is only allowed as a leading "*."`},
		{"domain label long", web + "domains: [" + strings.Repeat("a", 64) + ".com]", `pier.yaml:2:11: domains[0]: invalid domain "` + strings.Repeat("a", 64) + `.com": label "` + strings.Repeat("a", 64) + `" is longer than 63 characters`},
		{"domain long", web + "domains: [" + strings.Repeat("a.", 127) + "com]", `pier.yaml:2:11: domains[0]: invalid domain "` + strings.Repeat("a.", 127) + `com": longer than 253 characters`},
		{"domain duplicate", web + "domains: [a.com, A.com]", `pier.yaml:2:18: domains[1]: duplicate domain "a.com"`},
		{"domain unicode", web + "domains: [café.fr]", `pier.yaml:2:11: domains[0]: invalid domain "café.fr": write international names in their xn-- (punycode) form`},
		// static.
		{"static prefix", web + "static: {assets: public}", `pier.yaml:2:10: static.assets: invalid URL prefix "assets": must start with "/"`},
		{"static escape", web + "static: {/a: ../secret}", `pier.yaml:2:14: static["/a"]: invalid directory "../secret": must stay inside the app directory`},
		{"static escape inner", web + "static: {/a: public/../../x}", `pier.yaml:2:14: static["/a"]: invalid directory "public/../../x": must stay inside the app directory`},
		{"static absolute", web + "static: {/a: /var/www}", `pier.yaml:2:14: static["/a"]: invalid directory "/var/www": must be relative to the app root`},
		// cache.
		{"cache path", web + "cache: [{path: x, ttl: 1s}]", `pier.yaml:2:16: cache[0].path: invalid path "x": must start with "/"`},
		{"cache star", web + "cache: [{path: /a*/b, ttl: 1s}]", `pier.yaml:2:16: cache[0].path: invalid path "/a*/b": "*" is only allowed at the end`},
		{"cache no path", web + "cache: [{ttl: 1s}]", "pier.yaml:2:9: cache[0].path: is required"},
		{"cache no ttl", web + "cache: [{path: /a, cache: true}]", "pier.yaml:2:9: cache[0].ttl: is required (set a ttl, e.g. ttl: 5m)"},
		{"cache ttl and false", web + "cache: [{path: /a, ttl: 1s, cache: false}]", "pier.yaml:2:25: cache[0].ttl: a ttl makes no sense with cache: false"},
		{"cache duplicate", web + "cache:\n  - {path: /a, ttl: 1s}\n  - {path: /a, cache: false}\n", `pier.yaml:4:12: cache[1].path: another rule already covers "/a"`},
		// queues.
		{"queue name", web + "queues: {Email: {}}", `pier.yaml:2:10: queues.Email: invalid queue name "Email": use lower-case letters, digits, '_' and '-', starting with a letter, at most 64 characters`},
		{"queue rate", web + "queues: {email: {rate: 50/d}}", `pier.yaml:2:24: queues.email.rate: invalid rate "50/d" (want e.g. 50/s, 100/m or 5/h)`},
		{"queue rate zero", web + "queues: {email: {rate: 0/s}}", "pier.yaml:2:24: queues.email.rate: must be positive"},
		{"queue rate negative", web + "queues: {email: {rate: -1}}", "pier.yaml:2:24: queues.email.rate: must be positive"},
		{"queue concurrency", web + "queues: {email: {concurrency: 0}}", "pier.yaml:2:31: queues.email.concurrency: must be at least 1"},
		{"queue push", web + "queues: {email: {push: tasks}}", `pier.yaml:2:24: queues.email.push: invalid path "tasks": must start with "/"`},
		{"queue backoff", web + "queues: {email: {min_backoff: 1m, max_backoff: 1s}}", "pier.yaml:2:48: queues.email.max_backoff: must be at least min_backoff (1m0s)"},
		// cron.
		{"cron fields", web + "cron: [{schedule: '* * * *', path: /x}]", `pier.yaml:2:19: cron[0].schedule: invalid schedule "* * * *": want 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; got 4`},
		{"cron chars", web + "cron: [{schedule: '* * * * $', path: /x}]", `pier.yaml:2:19: cron[0].schedule: invalid schedule "* * * * $": field "$" has '$'`},
		{"cron descriptor", web + "cron: [{schedule: '@often', path: /x}]", `pier.yaml:2:19: cron[0].schedule: invalid schedule "@often": unknown descriptor; use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>`},
		{"cron every", web + "cron: [{schedule: '@every soon', path: /x}]", `pier.yaml:2:19: cron[0].schedule: invalid schedule "@every soon": @every needs a positive duration, e.g. @every 1m`},
		{"cron queue", web + "queues: {email: {}}\ncron: [{schedule: '@daily', queue: emial}]", `pier.yaml:3:36: cron[0].queue: no queue "emial" in queues (did you mean "email"?)`},
		{"cron neither", web + "cron: [{schedule: '@daily'}]", "pier.yaml:2:8: cron[0]: needs a queue (to enqueue a task) or a path (to request)"},
		{"cron both", web + "queues: {q: {}}\ncron: [{schedule: '@daily', queue: q, path: /x}]", "pier.yaml:3:8: cron[0]: has both queue and path; use one"},
		{"cron no schedule", web + "cron:\n  - path: /x\n", "pier.yaml:3:5: cron[0].schedule: is required"},
		// env.
		{"env name", web + "env: {1A: x}", `pier.yaml:2:7: env.1A: invalid variable name "1A": use letters, digits and '_', not starting with a digit`},
		{"env port", web + "env: {PORT: 80}", "pier.yaml:2:7: env.PORT: PORT is set by pier for each web instance"},
		{"env pier", web + "env: {PIER_APP: x}", "pier.yaml:2:7: env.PIER_APP: names starting with PIER_ are reserved for pier"},
		{"env null", web + "env: {A: }", `pier.yaml:2:7: env.A: must be a string, number or boolean, not null (write "" for an empty value)`},
		{"env list", web + "env: {A: [1]}", `pier.yaml:2:10: env.A: must be a string, number or boolean, not a list (write "" for an empty value)`},
		// limits.
		{"memory unit", web + "limits: {memory: 256Q}", `pier.yaml:2:18: limits.memory: invalid size "256Q" (want e.g. 256M, 1GiB or bytes)`},
		{"memory zero", web + "limits: {memory: 0}", "pier.yaml:2:18: limits.memory: must be positive"},
		{"memory huge", web + "limits: {memory: 99999999999T}", "pier.yaml:2:18: limits.memory: too large"},
		{"cpu zero", web + "limits: {cpu: 0}", "pier.yaml:2:15: limits.cpu: must be a number of cores greater than 0 and at most 1024"},
		{"cpu string", web + "limits: {cpu: half}", "pier.yaml:2:15: limits.cpu: must be a number, not a string"},
		{"requests rate", web + "limits: {requests: 100/d}", `pier.yaml:2:20: limits.requests: invalid rate "100/d" (want e.g. 50/s, 100/m or 5/h)`},
		{"requests zero", web + "limits: {requests: 0}", "pier.yaml:2:20: limits.requests: must be positive"},
		{"per_ip type", web + "limits: {per_ip: [10]}", "pier.yaml:2:18: limits.per_ip: must be a rate like 50/s, 100/m or 5/h, not a list"},
		{"per_ip typo", web + "limits: {perip: 10/s}", `pier.yaml:2:10: limits.perip: unknown field "perip" (did you mean "per_ip"?)`},
		// Several at once, in file order.
		{"several", "name: X\nprocesses: {web: ''}\nscale: {web: -1}\n",
			`pier.yaml:1:7: name: invalid app name "X": use lower-case letters, digits and '-', starting with a letter and not ending with '-', at most 40 characters` +
				"\npier.yaml:2:18: processes.web: command must not be empty" +
				"\npier.yaml:3:14: scale.web: must be at least 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("pier.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want error %q", m, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			var list List
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T is not a non-empty List", err)
			}
		})
	}
}

func TestErrorAs(t *testing.T) {
	_, err := Parse("app/pier.yaml", []byte("processes: {web: x}\nscale: {web: {min: -1}}\nenv: {PORT: 1}\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(%v, *Error) = false", err)
	}
	want := Error{File: "app/pier.yaml", Line: 2, Column: 20, Field: "scale.web.min", Msg: "must be at least 0"}
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
	if got, want := e.Error(), "app/pier.yaml:2:20: scale.web.min: must be at least 0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseLimits(t *testing.T) {
	t.Run("too many errors", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("processes: {web: x}\nenv:\n")
		for i := range 200 {
			b.WriteString("  PIER_" + strings.Repeat("X", i+1) + ": 1\n")
		}
		_, err := Parse("pier.yaml", []byte(b.String()))
		var list List
		if !errors.As(err, &list) {
			t.Fatalf("got %v, want a List", err)
		}
		if len(list) != maxErrors+1 || list[maxErrors].Msg != "too many errors, stopping" {
			t.Errorf("got %d errors ending in %q, want %d ending in %q", len(list), list[len(list)-1].Msg, maxErrors+1, "too many errors, stopping")
		}
	})
	t.Run("alias bomb", func(t *testing.T) {
		// Each level doubles: a naive expansion would visit 2^40 nodes.
		var b strings.Builder
		b.WriteString("x-0: &a0 {web: x}\n")
		for i := 1; i <= 40; i++ {
			b.WriteString("x-" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [*a" + strconv.Itoa(i-1) + ", *a" + strconv.Itoa(i-1) + "]\n")
		}
		b.WriteString("processes:\n  <<: *a40\n")
		if _, err := Parse("pier.yaml", []byte(b.String())); err == nil {
			t.Fatal("Parse succeeded, want an error")
		}
	})
	t.Run("large file", func(t *testing.T) {
		_, err := Parse("pier.yaml", make([]byte, maxFileSize+1))
		if got, want := err.Error(), "pier.yaml:1:1: file is larger than 64 KiB"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}
