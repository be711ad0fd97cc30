package errortrack

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runOutput runs a real program and returns its stderr lines.
func runOutput(t *testing.T, dir string, name string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("%s did not fail", name)
	}
	var lines []string
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// detect feeds lines, as one instance's stderr between log noise, to a
// detector and returns the events it files.
func detect(lines []string) []*Event {
	var mu sync.Mutex
	var got []*Event
	d := newDetector(func(ev *Event) { mu.Lock(); got = append(got, ev); mu.Unlock() })
	feed := func(s string) {
		d.feed(Line{App: "a", Release: "v3", Process: "web", Instance: "web.1", Stream: "stderr", Text: s, Time: time.Now()})
	}
	feed("starting up")
	for _, l := range lines {
		feed(l)
	}
	feed("127.0.0.1 - - [01/Jan/2026] \"GET / HTTP/1.1\" 200 -")
	d.flush()
	return got
}

func TestCrashPython(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "releases", "v3"), 0o755)
	app := filepath.Join(dir, "releases", "v3", "app.py")
	os.WriteFile(app, []byte(`import json

def parse(body):
    return json.loads(body)

def handler():
    try:
        parse("{oops")
    except ValueError as err:
        raise RuntimeError("bad request body") from err

handler()
`), 0o644)
	lines := runOutput(t, dir, "python3", app)
	evs := detect(lines)
	if len(evs) != 1 {
		t.Fatalf("got %d events from:\n%s", len(evs), strings.Join(lines, "\n"))
	}
	ev := evs[0]
	if len(ev.Exceptions) != 2 {
		t.Fatalf("chain: %+v", ev.Exceptions)
	}
	last := ev.Exceptions[1]
	if last.Type != "RuntimeError" || last.Value != "bad request body" {
		t.Errorf("exception: %q %q", last.Type, last.Value)
	}
	if ev.Exceptions[0].Type != "json.decoder.JSONDecodeError" {
		t.Errorf("cause: %q", ev.Exceptions[0].Type)
	}
	top := last.Frames[len(last.Frames)-1]
	if top.Function != "handler" || top.ContextLine != `raise RuntimeError("bad request body") from err` || !*top.InApp {
		t.Errorf("innermost frame: %+v", top)
	}
	for _, f := range ev.Exceptions[0].Frames {
		if strings.Contains(f.Filename, "/json/") && *f.InApp {
			t.Errorf("stdlib frame in app: %+v", f)
		}
	}
	if ev.Release != "v3" || ev.Tags["instance"] != "web.1" || ev.Platform != "python" {
		t.Errorf("release %q tags %v platform %q", ev.Release, ev.Tags, ev.Platform)
	}
	group("a", ev)
	if ev.Title != "RuntimeError: bad request body" || ev.Culprit != "app.py in handler" {
		t.Errorf("title %q culprit %q", ev.Title, ev.Culprit)
	}
}

func TestCrashNode(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "server.js"), []byte(`function render(user) {
  return user.name.toUpperCase();
}
setTimeout(() => render({}), 1);
`), 0o644)
	lines := runOutput(t, dir, "node", "server.js")
	evs := detect(lines)
	if len(evs) != 1 {
		t.Fatalf("got %d events from:\n%s", len(evs), strings.Join(lines, "\n"))
	}
	ex := evs[0].Exceptions[0]
	if ex.Type != "TypeError" || !strings.Contains(ex.Value, "toUpperCase") {
		t.Errorf("exception: %q %q", ex.Type, ex.Value)
	}
	top := ex.Frames[len(ex.Frames)-1]
	if top.Function != "render" || top.Lineno != 2 || !strings.HasSuffix(top.Filename, "server.js") {
		t.Errorf("innermost frame: %+v", top)
	}
	if evs[0].Level != "fatal" {
		t.Errorf("level %q", evs[0].Level)
	}
}

func TestCrashGo(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module crashy\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(`package main

import "fmt"

func lookup(xs []int, i int) int { return xs[i] }

func main() {
	fmt.Println(lookup([]int{1, 2, 3}, 5))
}
`), 0o644)
	lines := runOutput(t, dir, "go", "run", ".")
	evs := detect(lines)
	if len(evs) != 1 {
		t.Fatalf("got %d events from:\n%s", len(evs), strings.Join(lines, "\n"))
	}
	ex := evs[0].Exceptions[0]
	if ex.Type != "runtime.Error" || !strings.Contains(ex.Value, "index out of range") {
		t.Errorf("exception: %q %q", ex.Type, ex.Value)
	}
	fns := []string{}
	for _, f := range ex.Frames {
		fns = append(fns, f.Function)
	}
	if len(fns) < 2 || fns[len(fns)-1] != "main.lookup" || fns[len(fns)-2] != "main.main" {
		t.Errorf("frames: %v", fns)
	}
}

// TestCrashNotACrash: ordinary output files nothing.
func TestCrashNotACrash(t *testing.T) {
	evs := detect([]string{
		"GET /healthz 200",
		"/var/log/app.log:12",
		"panic: is a word here",
		"next line",
		"Traceback (most recent call last):",
	})
	for _, ev := range evs {
		if ev.Platform != "go" {
			t.Errorf("unexpected event: %+v", ev)
		}
	}
}
