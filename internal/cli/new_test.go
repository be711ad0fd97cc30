package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pier/internal/manifest"
)

func TestNew(t *testing.T) {
	tests := []struct {
		lang  string
		files []string
		check []string // a command run in the app directory when its tool is installed
	}{
		{lang: "python", files: []string{"app.py", "pier.yaml", "requirements.txt"}, check: []string{"python3", "-m", "py_compile", "app.py"}},
		{lang: "node", files: []string{"package.json", "pier.yaml", "server.js"}, check: []string{"node", "--check", "server.js"}},
		{lang: "go", files: []string{"go.mod", "main.go", "pier.yaml"}, check: []string{"go", "vet", "."}},
		{lang: "static", files: []string{"pier.yaml", "public/index.html", "public/style.css"}},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			a := testCLI(t, nil)
			a.wd = t.TempDir()
			r := a.execute(t, "", "new", "my-"+tt.lang, "--lang", tt.lang)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			dir := filepath.Join(a.wd, "my-"+tt.lang)
			var got []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					got = append(got, filepath.ToSlash(rel))
				}
				return err
			})
			slices.Sort(got)
			if !slices.Equal(got, tt.files) {
				t.Errorf("wrote %q, want %q", got, tt.files)
			}
			for _, f := range tt.files {
				if !strings.Contains(r.stdout, "  "+f+"\n") {
					t.Errorf("output does not list %s:\n%s", f, r.stdout)
				}
			}
			m, err := manifest.Load(dir)
			if err != nil {
				t.Fatalf("the written pier.yaml does not load: %v", err)
			}
			if m.Name != "my-"+tt.lang {
				t.Errorf("manifest name %q, want %q", m.Name, "my-"+tt.lang)
			}
			if tt.lang == "static" {
				if len(m.Processes) != 0 || m.Static["/"] != "public" {
					t.Errorf("static manifest: processes %v, static %v", m.Processes, m.Static)
				}
			} else if m.Processes["web"] == "" {
				t.Errorf("no web process in %+v", m.Processes)
			}
			for _, f := range tt.files {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				if strings.Contains(string(b), "{{") {
					t.Errorf("%s has an unrendered template action:\n%s", f, b)
				}
			}
			if tt.check == nil {
				return
			}
			if _, err := exec.LookPath(tt.check[0]); err != nil {
				t.Logf("%s not installed: not checking the code", tt.check[0])
				return
			}
			cmd := exec.Command(tt.check[0], tt.check[1:]...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%q in the new app: %v\n%s", tt.check, err, out)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	wd := t.TempDir()
	writeFiles(t, wd, map[string]string{"taken/README": "mine"})
	if err := os.Mkdir(filepath.Join(wd, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{args: []string{"new", "taken", "--lang", "go"}, code: 1, err: "not empty"},
		{args: []string{"new", "Bad_Name", "--lang", "go"}, code: 1, err: "app name"},
		{args: []string{"new", "ok", "--lang", "cobol"}, code: 1, err: "want one of python, node, go, static"},
		{args: []string{"new", "ok"}, code: 1, err: "give --lang"},
		{args: []string{"new", "--lang", "go"}, code: 1, err: "needs the NAME"},
		{args: []string{"new", "other", "--lang", "static", "--dir", filepath.Join(wd, "empty")}, code: 0},
	}
	for _, tt := range tests {
		a := testCLI(t, nil)
		a.wd = wd
		r := a.execute(t, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.err) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, r.code, r.stderr, tt.code, tt.err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(wd, "taken/README")); string(b) != "mine" {
		t.Errorf("an existing file was touched")
	}
	if _, err := os.Stat(filepath.Join(wd, "empty", "pier.yaml")); err != nil {
		t.Errorf("an empty --dir was not written to: %v", err)
	}
}
