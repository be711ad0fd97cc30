package cli

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestNormalizeAPI(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "http://127.0.0.1:7070", want: "http://127.0.0.1:7070"},
		{in: "127.0.0.1:7070", want: "http://127.0.0.1:7070"},
		{in: ":7070", want: "http://127.0.0.1:7070"},
		{in: "localhost:9000/", want: "http://localhost:9000"},
		{in: "https://pier.example.com/engine/", want: "https://pier.example.com/engine"},
		{in: " http://[::1]:7070 ", want: "http://[::1]:7070"},
		{in: "", err: "empty"},
		{in: "ftp://host", err: "scheme"},
		{in: "http://", err: "no host"},
		{in: "http://host:7070/?x=1", err: "query"},
		{in: "http://user:pw@host", err: "user"},
	}
	for _, tt := range tests {
		got, err := normalizeAPI(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("normalizeAPI(%q) = %q, %v; want an error about %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("normalizeAPI(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestAPIFromEnv(t *testing.T) {
	for _, tt := range []struct{ flag, env, want string }{
		{"", "", DefaultAPI},
		{"", "10.0.0.5:7070", "http://10.0.0.5:7070"},
		{"127.0.0.1:9999", "10.0.0.5:7070", "http://127.0.0.1:9999"},
	} {
		a := testCLI(t, map[string]string{"PIER_API": tt.env, "PIER_HOME": t.TempDir()})
		a.api = tt.flag
		c, err := a.client()
		if err != nil || c.BaseURL != tt.want {
			t.Errorf("--api %q, PIER_API %q: BaseURL %q, %v; want %q", tt.flag, tt.env, c.BaseURL, err, tt.want)
		}
	}
}

func TestParseScale(t *testing.T) {
	tests := []struct {
		args []string
		want map[string]int
		err  string
	}{
		{args: []string{"web=3"}, want: map[string]int{"web": 3}},
		{args: []string{"web=2", "worker=0", "mail_out=1"}, want: map[string]int{"web": 2, "worker": 0, "mail_out": 1}},
		{args: nil, err: "at least one"},
		{args: []string{"web"}, err: "want PROCESS=N"},
		{args: []string{"web=-1"}, err: "at least 0"},
		{args: []string{"web=two"}, err: "whole number"},
		{args: []string{"Web=1"}, err: "not a process type"},
		{args: []string{"=1"}, err: "not a process type"},
		{args: []string{"web=1", "web=2"}, err: "twice"},
	}
	for _, tt := range tests {
		got, err := parseScale(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseScale(%q) = %v, %v; want an error about %q", tt.args, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseScale(%q) = %v, %v; want %v", tt.args, got, err, tt.want)
		}
	}
}

func TestParseEnv(t *testing.T) {
	sets := []struct {
		args []string
		want map[string]string
		err  string
	}{
		{args: []string{"A=1"}, want: map[string]string{"A": "1"}},
		{args: []string{"DATABASE_URL=postgres://u:p@db/x?a=b", "EMPTY="}, want: map[string]string{"DATABASE_URL": "postgres://u:p@db/x?a=b", "EMPTY": ""}},
		{args: []string{"_x9=y"}, want: map[string]string{"_x9": "y"}},
		{args: []string{"A"}, err: "KEY=VALUE"},
		{args: []string{"9A=1"}, err: "not a variable name"},
		{args: []string{"A-B=1"}, err: "not a variable name"},
		{args: []string{"=1"}, err: "not a variable name"},
		{args: []string{"PORT=1"}, err: "set by pier"},
		{args: []string{"PIER_APP=x"}, err: "set by pier"},
		{args: []string{"A=1", "A=2"}, err: "twice"},
	}
	for _, tt := range sets {
		got, err := parseEnvSet(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseEnvSet(%q) = %v, %v; want an error about %q", tt.args, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseEnvSet(%q) = %v, %v; want %v", tt.args, got, err, tt.want)
		}
	}
	unsets := []struct {
		args []string
		err  string
	}{
		{args: []string{"A", "B_2"}},
		{args: []string{"A=1"}, err: "names only"},
		{args: []string{"1A"}, err: "not a variable name"},
		{args: []string{"PIER_TOKEN"}, err: "set by pier"},
	}
	for _, tt := range unsets {
		got, err := parseEnvUnset(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseEnvUnset(%q) = %v, %v; want an error about %q", tt.args, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.args) {
			t.Errorf("parseEnvUnset(%q) = %v, %v", tt.args, got, err)
		}
	}
}

func TestParseRelease(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{{"v3", 3}, {"3", 3}, {"V12", 12}, {"v0", 0}, {"x", 0}, {"-1", 0}, {"", 0}} {
		got, err := parseRelease(tt.in)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("parseRelease(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseRelease(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestSanitizeAppName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"blog", "blog"},
		{"My Blog", "my-blog"},
		{"my_blog.v2", "my-blog-v2"},
		{"--Shop--", "shop"},
		{"2048", "app-2048"},
		{"Été", "t"},
		{"...", ""},
		{strings.Repeat("a", 50), strings.Repeat("a", 40)},
		{strings.Repeat("a", 39) + "-b", strings.Repeat("a", 39)},
	} {
		got := sanitizeAppName(tt.in)
		if got != tt.want {
			t.Errorf("sanitizeAppName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got != "" {
			if err := checkAppName(got); err != nil {
				t.Errorf("sanitizeAppName(%q) = %q, which is invalid: %v", tt.in, got, err)
			}
		}
	}
}

// writeFiles creates files (path -> content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppNameResolution(t *testing.T) {
	tests := []struct {
		name  string
		flag  string
		files map[string]string
		want  string
		err   string
	}{
		{name: "flag wins", flag: "shop", files: map[string]string{"pier.yaml": "name: blog\nprocesses: {web: x}\n"}, want: "shop"},
		{name: "pier.yaml", files: map[string]string{"pier.yaml": "name: blog\nprocesses: {web: x}\n"}, want: "blog"},
		{name: "nothing", err: errNoApp.Error()},
		{name: "Procfile has no name", files: map[string]string{"Procfile": "web: x\n"}, err: errNoApp.Error()},
		{name: "pier.yaml without name", files: map[string]string{"pier.yaml": "processes: {web: x}\n"}, err: errNoApp.Error()},
		{name: "bad pier.yaml", files: map[string]string{"pier.yaml": "name: blog\nprocesses: {web: x}\nbogus: 1\n"}, err: "pier.yaml:3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testCLI(t, nil)
			a.wd = t.TempDir()
			writeFiles(t, a.wd, tt.files)
			got, err := a.appName(tt.flag)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("appName = %q, %v; want an error containing %q", got, err, tt.err)
				}
				if !errors.Is(err, errNoApp) {
					t.Errorf("error %v does not wrap errNoApp", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("appName = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestDirApp(t *testing.T) {
	tests := []struct {
		name  string
		base  string
		flag  string
		files map[string]string
		want  string
		err   string
	}{
		{name: "flag", base: "x", flag: "shop", want: "shop"},
		{name: "manifest", base: "x", files: map[string]string{"pier.yaml": "name: blog\nprocesses: {web: x}\n"}, want: "blog"},
		{name: "directory", base: "My_Site", files: map[string]string{"index.html": "hi"}, want: "my-site"},
		{name: "Procfile only", base: "worker box", files: map[string]string{"Procfile": "web: x\n"}, want: "worker-box"},
		{name: "bad flag", base: "x", flag: "Bad Name", err: "app name"},
		{name: "invalid manifest", base: "x", files: map[string]string{"pier.yaml": "name: blog\nprocesses:\n  web: x\nscale: {wbe: 2}\n"}, err: "pier.yaml:4"},
		{name: "flag does not skip validation", base: "x", flag: "shop", files: map[string]string{"pier.yaml": "nme: blog\n"}, err: "invalid manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.base)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, dir, tt.files)
			got, _, err := dirApp(dir, tt.flag)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("dirApp = %q, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("dirApp = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestTokenResolution(t *testing.T) {
	home := t.TempDir()
	writeFiles(t, home, map[string]string{"token": "from-file\n"})
	tests := []struct {
		name, flag, env, home string
		want, source          string
	}{
		{name: "flag", flag: "f", env: "e", home: home, want: "f", source: "--token"},
		{name: "env", env: " e\n", home: home, want: "e", source: "$PIER_TOKEN"},
		{name: "file", home: home, want: "from-file", source: filepath.Join(home, "token")},
		{name: "none", home: t.TempDir(), want: "", source: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testCLI(t, map[string]string{"PIER_TOKEN": tt.env, "PIER_HOME": tt.home})
			a.token = tt.flag
			got, source, err := a.resolveToken()
			if err != nil || got != tt.want || source != tt.source {
				t.Errorf("resolveToken = %q, %q, %v; want %q from %q", got, source, err, tt.want, tt.source)
			}
		})
	}
	// --home beats $PIER_HOME.
	a := testCLI(t, map[string]string{"PIER_HOME": t.TempDir()})
	a.home = home
	if got, _, _ := a.resolveToken(); got != "from-file" {
		t.Errorf("with --home: token %q, want from-file", got)
	}
}
