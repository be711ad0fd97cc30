package manifest

import (
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Parse reads and validates a pier.yaml. filename is used in error messages
// only. A non-nil error is a List of every problem found.
func Parse(filename string, data []byte) (*Manifest, error) {
	m, src, errs := parseYAML(filename, data)
	errs = append(errs, src.finish(m)...)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseYAML reads a pier.yaml without the checks that need the final set of
// processes (source.finish), so Load can fill processes in from a Procfile.
func parseYAML(filename string, data []byte) (*Manifest, *source, List) {
	m := &Manifest{}
	d := &decoder{file: filename}
	src := &source{file: filename, root: pos{1, 1}, scaleKeys: make(map[string]pos)}
	if len(data) > maxFileSize {
		d.errorf(nil, "", "file is larger than %d KiB", maxFileSize>>10)
		src.badProcesses = true
		return m, src, d.errs
	}
	root := d.parseYAML(data)
	if len(d.errs) > 0 {
		src.badProcesses = true // a broken file: "no processes" would be noise
		return m, src, d.errs
	}
	src.root.line, src.root.col = nodePos(root)
	if r := d.resolve(root, ""); !isNull(r) {
		if _, ok := r.(*ast.MappingNode); !ok {
			d.errorf(root, "", "a manifest must be a mapping of fields, not %s", typeName(r))
			src.badProcesses = true
			return m, src, d.errs
		}
	}
	p := &yamlParser{d: d, m: m, src: src}
	d.object(root, "", map[string]func(entry){
		extensionPrefix: func(entry) {},
		"name":          p.name,
		"processes":     p.processes,
		"health":        p.health,
		"scale":         p.scale,
		"domains":       p.domains,
		"static":        p.static,
		"cache":         p.cache,
		"queues":        p.queues,
		"cron":          p.cron,
		"env":           p.env,
		"limits":        p.limits,
	})
	p.checkCronQueues()
	return m, src, d.errs
}

// yamlParser holds the handlers of pier.yaml's top-level fields, one method
// per field, each filling its part of m.
type yamlParser struct {
	d   *decoder
	m   *Manifest
	src *source

	cronQueues []entry // cron[i].queue entries, checked once queues are known
}

func (p *yamlParser) name(e entry) {
	s, ok := p.d.str(e)
	if !ok {
		return
	}
	if msg := checkAppName(s); msg != "" {
		p.d.errorf(e.val, e.field, "%s", msg)
		return
	}
	p.m.Name = s
}

func (p *yamlParser) processes(e entry) {
	before := len(p.d.errs)
	defer func() {
		if len(p.d.errs) > before {
			p.src.badProcesses = true
		}
	}()
	for _, pe := range p.d.mapping(e.val, e.field) {
		if !processRE.MatchString(pe.key) {
			p.d.errorf(pe.keyN, pe.field, "invalid process type %q: %s", pe.key, processRule)
			continue
		}
		var cmd string
		var ok bool
		if isMapping(pe.val) {
			cmd, ok = p.processObject(pe)
		} else {
			cmd, ok = p.d.str(pe)
		}
		if !ok {
			continue
		}
		if cmd = strings.TrimSpace(cmd); cmd == "" {
			p.d.errorf(pe.val, pe.field, "command must not be empty")
			continue
		}
		if p.m.Processes == nil {
			p.m.Processes = make(map[string]string)
		}
		p.m.Processes[pe.key] = cmd
	}
}

// processObject reads a process written as {command: ..., protocol: ...}.
// Only web takes a protocol: it is the one process that receives HTTP.
func (p *yamlParser) processObject(pe entry) (cmd string, ok bool) {
	haveCmd := false
	p.d.object(pe.val, pe.field, map[string]func(entry){
		"command": func(e entry) {
			cmd, ok = p.d.str(e)
			haveCmd = true
		},
		"protocol": func(e entry) {
			s, good := p.d.str(e)
			switch {
			case !good:
			case pe.key != "web":
				p.d.errorf(e.keyN, e.field, "only the web process receives HTTP; remove protocol here")
			case s != ProtocolHTTP && s != ProtocolH2C:
				p.d.errorf(e.val, e.field, "unknown protocol %q: want %q (HTTP/1.1, the default) or %q (HTTP/2 without TLS)%s",
					s, ProtocolHTTP, ProtocolH2C, suggest(s, []string{ProtocolHTTP, ProtocolH2C}))
			default:
				p.m.Protocol = s
			}
		},
	})
	if !haveCmd {
		p.d.errorf(pe.val, pe.field+".command", "is required")
	}
	return cmd, ok && haveCmd
}

func (p *yamlParser) health(e entry) {
	h := &p.m.Health
	p.d.object(e.val, e.field, map[string]func(entry){
		"path": func(e entry) {
			if s, ok := p.urlPath(e, false); ok {
				h.Path = s
			}
		},
		"timeout": func(e entry) {
			if v, ok := p.d.duration(e); ok {
				h.Timeout = v
			}
		},
		"interval": func(e entry) {
			if v, ok := p.d.duration(e); ok {
				h.Interval = v
			}
		},
	})
}

// maxInstances bounds scale.*.max.
const maxInstances = 100

func (p *yamlParser) scale(e entry) {
	for _, se := range p.d.mapping(e.val, e.field) {
		line, col := nodePos(se.keyN)
		p.src.scaleKeys[se.key] = pos{line, col}
		var s Scale
		switch se.val.(type) {
		case *ast.IntegerNode:
			n, ok := p.d.integer(se, 0, maxInstances)
			if !ok {
				continue
			}
			s = Scale{Min: n, Max: max(n, 1)}
		case *ast.MappingNode:
			var haveMax, ok = false, true
			var maxEntry entry
			p.d.object(se.val, se.field, map[string]func(entry){
				"min": func(e entry) {
					var good bool
					s.Min, good = p.d.integer(e, 0, maxInstances)
					ok = ok && good
				},
				"max": func(e entry) {
					var good bool
					s.Max, good = p.d.integer(e, 1, maxInstances)
					ok = ok && good
					haveMax, maxEntry = true, e
				},
			})
			if !ok {
				continue
			}
			if !haveMax {
				s.Max = max(s.Min, 1)
			} else if s.Max < s.Min {
				p.d.errorf(maxEntry.val, maxEntry.field, "must be at least min (%d)", s.Min)
				continue
			}
		default:
			p.d.errorf(se.val, se.field, "must be an instance count or {min: n, max: m}, not %s", typeName(se.val))
			continue
		}
		if p.m.Scale == nil {
			p.m.Scale = make(map[string]Scale)
		}
		p.m.Scale[se.key] = s
	}
}

func (p *yamlParser) domains(e entry) {
	items, fields := p.d.list(e.val, e.field)
	seen := make(map[string]bool)
	for i, n := range items {
		de := entry{val: n, field: fields[i]}
		s, ok := p.d.str(de)
		if !ok {
			continue
		}
		host, msg := checkDomain(s)
		switch {
		case msg != "":
			p.d.errorf(n, de.field, "invalid domain %q: %s", s, msg)
		case seen[host]:
			p.d.errorf(n, de.field, "duplicate domain %q", host)
		default:
			seen[host] = true
			p.m.Domains = append(p.m.Domains, host)
		}
	}
}

func (p *yamlParser) static(e entry) {
	for _, se := range p.d.mapping(e.val, e.field) {
		if msg := checkPrefix(se.key, false); msg != "" {
			p.d.errorf(se.keyN, se.field, "invalid URL prefix %q: %s", se.key, msg)
			continue
		}
		dir, ok := p.d.str(se)
		if !ok {
			continue
		}
		clean, msg := checkDir(dir)
		if msg != "" {
			p.d.errorf(se.val, se.field, "invalid directory %q: %s", dir, msg)
			continue
		}
		if p.m.Static == nil {
			p.m.Static = make(map[string]string)
		}
		p.m.Static[se.key] = clean
	}
}

func (p *yamlParser) cache(e entry) {
	items, fields := p.d.list(e.val, e.field)
	seen := make(map[string]bool)
	for i, n := range items {
		field := fields[i]
		var (
			r                 = CacheRule{Cache: true}
			havePath, haveTTL bool
			cacheSet, ok      = false, true
			ttlEntry          entry
		)
		p.d.object(n, field, map[string]func(entry){
			"path": func(e entry) {
				var good bool
				r.Path, good = p.urlPath(e, true)
				havePath = good
				ok = ok && good
				if good && seen[r.Path] {
					p.d.errorf(e.val, e.field, "another rule already covers %q", r.Path)
					ok = false
				}
				seen[r.Path] = true
			},
			"ttl": func(e entry) {
				var good bool
				r.TTL, good = p.d.duration(e)
				haveTTL, ttlEntry = true, e
				ok = ok && good
			},
			"cache": func(e entry) {
				var good bool
				r.Cache, good = p.d.boolean(e)
				cacheSet = true
				ok = ok && good
			},
		})
		if !ok {
			continue
		}
		switch {
		case !isMapping(n) && !isNull(n):
			continue // reported by object
		case !havePath:
			p.d.errorf(n, field+".path", "is required")
		case !r.Cache && haveTTL:
			p.d.errorf(ttlEntry.val, ttlEntry.field, "a ttl makes no sense with cache: false")
		case r.Cache && !haveTTL:
			hint := "set a ttl, e.g. ttl: 5m"
			if !cacheSet {
				hint += ", or cache: false to never cache"
			}
			p.d.errorf(n, field+".ttl", "is required (%s)", hint)
		default:
			p.m.Cache = append(p.m.Cache, r)
		}
	}
}

func (p *yamlParser) queues(e entry) {
	for _, qe := range p.d.mapping(e.val, e.field) {
		if !queueRE.MatchString(qe.key) {
			p.d.errorf(qe.keyN, qe.field, "invalid queue name %q: %s", qe.key, queueRule)
			continue
		}
		var q Queue
		var backoff entry
		p.d.object(qe.val, qe.field, map[string]func(entry){
			"push": func(e entry) {
				q.Push, _ = p.urlPath(e, false)
			},
			"rate": func(e entry) {
				q.Rate, _ = p.rate(e)
			},
			"concurrency": func(e entry) {
				q.Concurrency, _ = p.d.integer(e, 1, 1<<20)
			},
			"attempts": func(e entry) {
				q.Attempts, _ = p.d.integer(e, 1, 1<<20)
			},
			"min_backoff": func(e entry) {
				q.MinBackoff, _ = p.d.duration(e)
			},
			"max_backoff": func(e entry) {
				q.MaxBackoff, _ = p.d.duration(e)
				backoff = e
			},
		})
		if q.MinBackoff > 0 && q.MaxBackoff > 0 && q.MaxBackoff < q.MinBackoff {
			p.d.errorf(backoff.val, backoff.field, "must be at least min_backoff (%v)", q.MinBackoff)
		}
		if p.m.Queues == nil {
			p.m.Queues = make(map[string]Queue)
		}
		p.m.Queues[qe.key] = q
	}
}

func (p *yamlParser) cron(e entry) {
	items, fields := p.d.list(e.val, e.field)
	for i, n := range items {
		field := fields[i]
		var c Cron
		var haveSchedule, ok = false, true
		p.d.object(n, field, map[string]func(entry){
			"schedule": func(e entry) {
				s, good := p.d.str(e)
				if good {
					if msg := checkSchedule(s); msg != "" {
						p.d.errorf(e.val, e.field, "invalid schedule %q: %s", s, msg)
						good = false
					}
				}
				c.Schedule, haveSchedule, ok = s, true, ok && good
			},
			"queue": func(e entry) {
				var good bool
				c.Queue, good = p.d.str(e)
				if good {
					p.cronQueues = append(p.cronQueues, e)
				}
				ok = ok && good
			},
			"path": func(e entry) {
				var good bool
				c.Path, good = p.urlPath(e, false)
				ok = ok && good
			},
			"body": func(e entry) {
				var good bool
				c.Body, good = p.d.str(e)
				ok = ok && good
			},
		})
		switch {
		case !ok || !isMapping(n) && !isNull(n):
		case !haveSchedule:
			p.d.errorf(n, field+".schedule", "is required")
		case c.Queue == "" && c.Path == "":
			p.d.errorf(n, field, "needs a queue (to enqueue a task) or a path (to request)")
		case c.Queue != "" && c.Path != "":
			p.d.errorf(n, field, "has both queue and path; use one")
		default:
			p.m.Cron = append(p.m.Cron, c)
		}
	}
}

// checkCronQueues reports cron entries that name a queue the manifest does
// not declare.
func (p *yamlParser) checkCronQueues() {
	names := make([]string, 0, len(p.m.Queues))
	for n := range p.m.Queues {
		names = append(names, n)
	}
	for _, e := range p.cronQueues {
		name, _ := scalarText(e.val)
		if _, ok := p.m.Queues[name]; !ok && name != "" {
			p.d.errorf(e.val, e.field, "no queue %q in queues%s", name, suggest(name, names))
		}
	}
}

func (p *yamlParser) env(e entry) {
	for _, ve := range p.d.mapping(e.val, e.field) {
		if msg := checkEnvName(ve.key); msg != "" {
			p.d.errorf(ve.keyN, ve.field, "%s", msg)
			continue
		}
		s, ok := scalarText(ve.val)
		if !ok {
			p.d.errorf(ve.val, ve.field, "must be a string, number or boolean, not %s (write \"\" for an empty value)", typeName(ve.val))
			continue
		}
		if p.m.Env == nil {
			p.m.Env = make(map[string]string)
		}
		p.m.Env[ve.key] = s
	}
}

func (p *yamlParser) limits(e entry) {
	l := &p.m.Limits
	p.d.object(e.val, e.field, map[string]func(entry){
		"memory": func(e entry) {
			var n int64
			var msg string
			switch v := e.val.(type) {
			case *ast.IntegerNode, *ast.StringNode:
				s, _ := scalarText(v)
				n, msg = parseMemory(s)
			default:
				msg = "must be a size like 256M, not " + typeName(v)
			}
			if msg != "" {
				p.d.errorf(e.val, e.field, "%s", msg)
				return
			}
			l.MemoryBytes = n
		},
		"cpu": func(e entry) {
			f, ok := p.d.number(e)
			if !ok {
				return
			}
			if f <= 0 || f > 1024 {
				p.d.errorf(e.val, e.field, "must be a number of cores greater than 0 and at most 1024")
				return
			}
			l.CPU = f
		},
		"requests": func(e entry) {
			l.Requests, _ = p.rate(e)
		},
		"per_ip": func(e entry) {
			l.PerIP, _ = p.rate(e)
		},
	})
}

// urlPath reads a URL path; with wildcard, a trailing "*" marks a prefix.
func (p *yamlParser) urlPath(e entry, wildcard bool) (string, bool) {
	s, ok := p.d.str(e)
	if !ok {
		return "", false
	}
	if msg := checkPrefix(s, wildcard); msg != "" {
		p.d.errorf(e.val, e.field, "invalid path %q: %s", s, msg)
		return "", false
	}
	return s, true
}

// rate reads a task rate: a number per second, or "50/s", "100/m", "5/h".
func (p *yamlParser) rate(e entry) (float64, bool) {
	var (
		r   float64
		msg string
	)
	switch v := e.val.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		r, _ = p.d.number(e)
		if r <= 0 {
			msg = "must be positive"
		}
	case *ast.StringNode:
		r, msg = parseRate(v.Value)
	default:
		msg = "must be a rate like 50/s, 100/m or 5/h, not " + typeName(v)
	}
	if msg != "" {
		p.d.errorf(e.val, e.field, "%s", msg)
		return 0, false
	}
	return r, true
}

func isMapping(n ast.Node) bool {
	_, ok := n.(*ast.MappingNode)
	return ok
}
