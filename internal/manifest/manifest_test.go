package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestProcessTypes(t *testing.T) {
	tests := []struct {
		procs map[string]string
		want  []string
	}{
		{nil, []string{}},
		{map[string]string{"worker": "w"}, []string{"worker"}},
		{map[string]string{"worker": "w", "web": "a", "clock": "c"}, []string{"web", "clock", "worker"}},
	}
	for _, tt := range tests {
		m := &Manifest{Processes: tt.procs}
		if got := m.ProcessTypes(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ProcessTypes(%v): got %q, want %q", tt.procs, got, tt.want)
		}
	}
}

func TestDesired(t *testing.T) {
	m := parseOK(t, "processes: {web: a, worker: b, clock: c}\nscale: {web: {min: 2, max: 4}, worker: 0}\n")
	for proc, want := range map[string]int{"web": 2, "worker": 0, "clock": 1, "nope": 0} {
		if got := m.Desired(proc); got != want {
			t.Errorf("Desired(%q): got %d, want %d", proc, got, want)
		}
	}
}

// writeApp creates an app directory holding files (name -> content).
func writeApp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		procs map[string]string
		env   map[string]string
	}{
		{"pier.yaml", map[string]string{"pier.yaml": "processes: {web: ./y}"}, map[string]string{"web": "./y"}, nil},
		{"pier.yml", map[string]string{"pier.yml": "processes: {web: ./y}"}, map[string]string{"web": "./y"}, nil},
		{"Procfile", map[string]string{"Procfile": "web: ./p"}, map[string]string{"web": "./p"}, nil},
		{"pier.yaml wins", map[string]string{"pier.yaml": "processes: {web: ./y}", "Procfile": "web: ./p\nworker: ./w"}, map[string]string{"web": "./y"}, nil},
		{"broken Procfile ignored", map[string]string{"pier.yaml": "processes: {web: ./y}", "Procfile": "nonsense"}, map[string]string{"web": "./y"}, nil},
		{"Procfile fills in", map[string]string{"pier.yaml": "env: {A: b}\nscale: {worker: 2}", "Procfile": "web: ./p\nworker: ./w"},
			map[string]string{"web": "./p", "worker": "./w"}, map[string]string{"A": "b"}},
		{"static site", map[string]string{"pier.yaml": "static: {/: .}"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Load(writeApp(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Processes, tt.procs) {
				t.Errorf("got processes %q, want %q", m.Processes, tt.procs)
			}
			if !reflect.DeepEqual(m.Env, tt.env) {
				t.Errorf("got env %q, want %q", m.Env, tt.env)
			}
			if m.Health.Timeout != DefaultHealthTimeout {
				t.Errorf("got timeout %v, want %v", m.Health.Timeout, DefaultHealthTimeout)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string // error text, or its prefix for errors naming the directory
	}{
		{"nothing", map[string]string{"README": "hi"}, "manifest: no pier.yaml or Procfile in "},
		{"both spellings", map[string]string{"pier.yaml": "processes: {web: a}", "pier.yml": "processes: {web: a}"}, "manifest: both pier.yaml and pier.yml exist in "},
		{"yaml error", map[string]string{"pier.yaml": "processes: {web: a}\nnmae: x"}, `pier.yaml:2:1: nmae: unknown field "nmae" (did you mean "name"?)`},
		{"Procfile error", map[string]string{"Procfile": "web ./a"}, `Procfile:1:1: processes: want "type: command", found no ":"`},
		{"Procfile error through pier.yaml", map[string]string{"pier.yaml": "name: x", "Procfile": "web: a\nweb: b"}, "Procfile:2:1: processes.web: duplicate process type (first at line 1)"},
		{"scale against Procfile", map[string]string{"pier.yaml": "scale:\n  wroker: 2", "Procfile": "web: ./p\nworker: ./w"},
			`pier.yaml:2:3: scale.wroker: no process "wroker" is declared (have [web worker]) (did you mean "worker"?)`},
		{"no processes anywhere", map[string]string{"pier.yaml": "name: x"}, "pier.yaml:1:1: processes: at least one process is required (or static, for a static site)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Load(writeApp(t, tt.files))
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want error %q", m, tt.want)
			}
			if got := err.Error(); got != tt.want && !(strings.HasSuffix(tt.want, " ") && strings.HasPrefix(got, tt.want)) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want an error wrapping ErrNotFound", err)
	}
}
