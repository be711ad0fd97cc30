package errortrack

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Line is one line an app process wrote, as the engine hands it over.
type Line struct {
	Time                            time.Time
	App, Release, Process, Instance string
	Stream                          string // stdout | stderr
	Text                            string
}

// Output takes a line of app output; crash reports in it (Python
// tracebacks, Go panics, Node uncaught exceptions) are filed as events.
// It never blocks.
func (t *Tracker) Output(l Line) { t.crash.feed(l) }

// detector recognises crash reports in process output. Each (instance,
// stream) has its own state machine; a report ends at a line that cannot
// belong to it, at Node's "Node.js vX" trailer, or after idle without a new
// line (a panicking Go program writes nothing after its stack).
type detector struct {
	emit func(*Event)
	idle time.Duration

	mu     sync.Mutex // guards states
	states map[string]*report
}

// report is a crash report being read.
type report struct {
	kind  string // python | go | node
	first Line
	lines []string
	last  time.Time
	phase int
}

const maxReportLines = 400

// Phases of a Python traceback.
const (
	pyFrames = iota // "  File ..." lines until the exception line
	pyAfterException
	pyChain // "During handling of the above exception ...": another traceback follows
)

func newDetector(emit func(*Event)) *detector {
	return &detector{emit: emit, idle: time.Second, states: map[string]*report{}}
}

func (d *detector) feed(l Line) {
	key := l.App + "\x00" + l.Instance + "\x00" + l.Stream
	text := strings.TrimRight(l.Text, "\r\n")
	var done []*report
	d.mu.Lock()
	if r := d.states[key]; r != nil {
		consumed, end := r.add(text)
		if consumed {
			r.lines = append(r.lines, text)
			r.last = time.Now()
		}
		if end || !consumed || len(r.lines) >= maxReportLines {
			done = append(done, r)
			delete(d.states, key)
		}
		if consumed {
			text = "" // not the start of another report
		}
	}
	if kind := startOf(text); kind != "" {
		d.states[key] = &report{kind: kind, first: l, lines: []string{text}, last: time.Now()}
	}
	d.mu.Unlock()
	for _, r := range done {
		if ev := r.event(); ev != nil {
			d.emit(ev)
		}
	}
}

// run ends reports that have been idle, until ctx ends.
func (d *detector) run(ctx context.Context) {
	tick := time.NewTicker(d.idle / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var done []*report
			d.mu.Lock()
			for k, r := range d.states {
				if now.Sub(r.last) >= d.idle {
					done = append(done, r)
					delete(d.states, k)
				}
			}
			d.mu.Unlock()
			for _, r := range done {
				if ev := r.event(); ev != nil {
					d.emit(ev)
				}
			}
		}
	}
}

// flush ends every report being read.
func (d *detector) flush() {
	d.mu.Lock()
	var done []*report
	for k, r := range d.states {
		done = append(done, r)
		delete(d.states, k)
	}
	d.mu.Unlock()
	for _, r := range done {
		if ev := r.event(); ev != nil {
			d.emit(ev)
		}
	}
}

func (d *detector) forget(app string) {
	d.mu.Lock()
	for k := range d.states {
		if strings.HasPrefix(k, app+"\x00") {
			delete(d.states, k)
		}
	}
	d.mu.Unlock()
}

var nodeStart = regexp.MustCompile(`^(/|file://|node:)\S*:[0-9]+$`)

func startOf(text string) string {
	switch {
	case text == "Traceback (most recent call last):":
		return "python"
	case strings.HasPrefix(text, "panic: "), strings.HasPrefix(text, "fatal error: "):
		return "go"
	case nodeStart.MatchString(text):
		return "node"
	}
	return ""
}

// add says whether text belongs to the report and whether it ends it.
func (r *report) add(text string) (consumed, end bool) {
	switch r.kind {
	case "python":
		return r.addPython(text)
	case "go":
		return r.addGo(text)
	default: // node: everything up to the "Node.js v20.1.0" trailer
		if k := startOf(text); k != "" && k != "node" {
			return false, true
		}
		if nodeFrame.MatchString(text) {
			r.phase = 1 // frames seen
		} else if r.phase == 0 && len(r.lines) > 20 {
			return false, true // no stack after 20 lines: not a Node crash
		}
		return true, strings.HasPrefix(text, "Node.js v")
	}
}

func (r *report) addPython(text string) (bool, bool) {
	indented := strings.HasPrefix(text, " ") || strings.HasPrefix(text, "\t")
	switch r.phase {
	case pyFrames:
		if !indented && text != "" {
			r.phase = pyAfterException // the exception line
		}
		return true, false
	case pyAfterException:
		switch {
		case text == "":
			return true, false
		case strings.HasPrefix(text, "During handling of the above exception"),
			strings.HasPrefix(text, "The above exception was the direct cause"):
			r.phase = pyChain
			return true, false
		}
		return false, true
	default: // pyChain
		switch {
		case text == "":
			return true, false
		case text == "Traceback (most recent call last):":
			r.phase = pyFrames
			return true, false
		}
		return false, true
	}
}

func (r *report) addGo(text string) (bool, bool) {
	switch {
	case text == "", strings.HasPrefix(text, "\t"), strings.HasPrefix(text, "goroutine "),
		strings.HasPrefix(text, "created by "), strings.HasPrefix(text, "panic: "),
		strings.HasPrefix(text, "[signal "), text == "runtime stack:":
		return true, false
	case strings.HasPrefix(text, "exit status "):
		return true, true
	case goFuncLine.MatchString(text), text == "...additional frames elided...":
		return true, false
	}
	return false, true
}

// event turns a finished report into an event, or nil when it does not
// parse as a crash after all.
func (r *report) event() *Event {
	var exs []Exception
	var level, platform string
	switch r.kind {
	case "python":
		exs, level, platform = parsePython(r.lines), "error", "python"
	case "go":
		exs, level, platform = parseGo(r.lines), "fatal", "go"
	case "node":
		exs, level, platform = parseNode(r.lines), "fatal", "node"
	}
	if len(exs) == 0 || len(exs[len(exs)-1].Frames) == 0 {
		return nil // a crash report always has a stack
	}
	l := r.first
	out := strings.Join(r.lines, "\n")
	ev := &Event{
		ID: newEventID(), Timestamp: l.Time.UTC(), Received: time.Now().UTC(),
		Level: level, Platform: platform, Logger: "pier.crash", Release: l.Release,
		Environment: "production", Exceptions: exs, App: l.App, Source: "crash",
		Tags:   map[string]string{"process": l.Process, "instance": l.Instance, "stream": l.Stream},
		Output: clip(out, 16<<10),
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = ev.Received
	}
	return ev
}

var (
	pyFrame   = regexp.MustCompile(`^\s+File "(.*)", line ([0-9]+), in (.*)$`)
	pyExcLine = regexp.MustCompile(`^([A-Za-z_][\w.]*)(?::\s?(.*))?$`)
	pyLib     = regexp.MustCompile(`/(site|dist)-packages/|/lib/python[0-9.]+/|^<frozen `)
)

func parsePython(lines []string) []Exception {
	var out []Exception
	var cur *Exception
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "Traceback (most recent call last):" {
			cur = &Exception{}
			continue
		}
		if cur == nil {
			continue
		}
		if m := pyFrame.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[2])
			inApp := !pyLib.MatchString(m[1])
			f := Frame{Filename: m[1], AbsPath: m[1], Lineno: n, Function: m[3], InApp: &inApp}
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    ") && !pyFrame.MatchString(lines[i+1]) {
				f.ContextLine = strings.TrimSpace(lines[i+1])
				i++
			}
			cur.Frames = append(cur.Frames, f)
			continue
		}
		if line != "" && line[0] != ' ' && line[0] != '\t' {
			if m := pyExcLine.FindStringSubmatch(line); m != nil {
				cur.Type, cur.Value = m[1], m[2]
			} else {
				cur.Type = clip(line, 256)
			}
			out = append(out, *cur)
			cur = nil
		}
	}
	return out
}

var (
	goFileLine = regexp.MustCompile(`^\t(.+):([0-9]+)(?: \+0x[0-9a-f]+)?$`)
	goFuncLine = regexp.MustCompile(`^[\w.$/*()\[\]-]+\(.*\)$`)
)

func parseGo(lines []string) []Exception {
	ex := Exception{Type: "panic"}
	first := lines[0]
	if v, ok := strings.CutPrefix(first, "fatal error: "); ok {
		ex.Type, ex.Value = "fatal error", v
	} else {
		v := strings.TrimSuffix(strings.TrimPrefix(first, "panic: "), " [recovered]")
		ex.Value = v
		if strings.HasPrefix(v, "runtime error: ") {
			ex.Type = "runtime.Error"
		}
		if ev, ok := strings.CutPrefix(v, "main."); ok && strings.Contains(ev, "{") { // panic(err) of a struct type
			ex.Type = "main." + ev[:strings.IndexAny(ev, "{")]
		}
	}
	// Frames of the first goroutine: a function line, then its file line.
	inStack := false
	for i := 1; i < len(lines); i++ {
		line := lines[i]
		if strings.HasPrefix(line, "goroutine ") {
			if inStack {
				break
			}
			inStack = true
			continue
		}
		if !inStack || line == "" {
			if inStack && line == "" && len(ex.Frames) > 0 {
				break
			}
			continue
		}
		if strings.HasPrefix(line, "\t") || i+1 >= len(lines) {
			continue
		}
		m := goFileLine.FindStringSubmatch(lines[i+1])
		if m == nil {
			continue
		}
		fn := strings.TrimPrefix(line, "created by ")
		if j := strings.LastIndex(fn, "("); j > 0 && strings.HasSuffix(fn, ")") {
			fn = fn[:j]
		}
		if j := strings.Index(fn, " in goroutine "); j > 0 {
			fn = fn[:j]
		}
		n, _ := strconv.Atoi(m[2])
		pkg := goPackage(fn)
		inApp := goInApp(pkg, m[1])
		ex.Frames = append(ex.Frames, Frame{Filename: m[1], AbsPath: m[1], Lineno: n, Function: fn, Module: pkg, InApp: &inApp})
		i++
	}
	slices.Reverse(ex.Frames) // Go prints the innermost call first
	return []Exception{ex}
}

// goPackage is the import path of a function name such as
// "github.com/x/y.(*T).M" or "main.handler.func1".
func goPackage(fn string) string {
	slash := strings.LastIndex(fn, "/")
	dot := strings.Index(fn[slash+1:], ".")
	if dot < 0 {
		return fn
	}
	return fn[:slash+1+dot]
}

func goInApp(pkg, file string) bool {
	if strings.Contains(file, "/pkg/mod/") || strings.Contains(file, "/vendor/") {
		return false
	}
	first, _, _ := strings.Cut(pkg, "/")
	return pkg == "main" || strings.Contains(first, ".")
}

var (
	nodeFrame = regexp.MustCompile(`^\s+at (?:(.+?) \()?(.+?):([0-9]+):([0-9]+)\)?$`)
	nodeError = regexp.MustCompile(`^(?:Uncaught )?([A-Za-z_$][\w$.]*)(?: \[[^\]]+\])?: (.*)$`)
)

func parseNode(lines []string) []Exception {
	// The error line is the first non-blank line after the "   ^" marker
	// under the source line (or after the location line when the marker is
	// missing), followed by "    at ..." frames.
	start := 1
	for i, l := range lines {
		if strings.TrimSpace(l) != "" && strings.Trim(strings.TrimSpace(l), "^") == "" {
			start = i + 1
			break
		}
	}
	var ex *Exception
	for _, l := range lines[start:] {
		if ex == nil {
			if strings.TrimSpace(l) == "" {
				continue
			}
			ex = &Exception{Type: "Error", Value: l}
			if m := nodeError.FindStringSubmatch(l); m != nil {
				ex.Type, ex.Value = m[1], m[2]
			}
			continue
		}
		m := nodeFrame.FindStringSubmatch(l)
		if m == nil {
			if len(ex.Frames) > 0 {
				break
			}
			continue
		}
		n, _ := strconv.Atoi(m[3])
		c, _ := strconv.Atoi(m[4])
		file := strings.TrimPrefix(m[2], "file://")
		inApp := !strings.HasPrefix(file, "node:") && !strings.Contains(file, "/node_modules/")
		ex.Frames = append(ex.Frames, Frame{Filename: file, AbsPath: file, Lineno: n, Colno: c,
			Function: strings.TrimPrefix(m[1], "async "), InApp: &inApp})
	}
	if ex == nil {
		return nil
	}
	slices.Reverse(ex.Frames) // innermost call first in V8's stack
	return []Exception{*ex}
}

// fileCrash queues a detected crash for fileCrashes; never blocks.
func (t *Tracker) fileCrash(ev *Event) {
	select {
	case t.crashes <- ev:
	default:
		t.log.Warn("errortrack: crash queue full; crash report dropped", "app", ev.App)
	}
}

func (t *Tracker) fileCrashes(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-t.crashes:
			if t.st == nil {
				continue
			}
			if err := t.store(ctx, ev); err != nil && ctx.Err() == nil {
				t.log.Warn("errortrack: file crash", "app", ev.App, "err", err)
			}
		}
	}
}
