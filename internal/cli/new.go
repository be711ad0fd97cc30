package cli

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
)

// templates holds one starter app per language under templates/<lang>/.
// Files ending in ".tmpl" are text/templates rendered with newData and
// written without the suffix (which also keeps go.mod and *.go out of the
// pier module's own build); the others are copied as they are.
//
//go:embed all:templates
var templates embed.FS

// languages are the starter apps "pier new" knows, in help order.
var languages = []string{"python", "node", "go", "static"}

// newData is what templates see.
type newData struct {
	Name string // the app name, valid per checkAppName
}

func (a *cli) newCmd() *cobra.Command {
	var lang, dir string
	cmd := &cobra.Command{
		Use:   "new NAME --lang python|node|go|static",
		Short: "Write a minimal runnable app to start from",
		Long: `New writes a small app in the chosen language to --dir (default: ./NAME):
a pier.yaml named NAME, a web process answering on $PORT with a /healthz
check, and nothing else to install. Deploy it with "pier deploy". New refuses
to write into a directory that is not empty.`,
		Example: `  pier new blog --lang python
  pier new api --lang go --dir ~/src/api
  pier new www --lang static`,
		Args: exactArgs(1, "the NAME of the new app"),
		RunE: a.wrap(func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := checkAppName(name); err != nil {
				return usagef("%v", err)
			}
			if !slices.Contains(languages, lang) {
				if lang == "" {
					return usagef("give --lang, one of %s", strings.Join(languages, ", "))
				}
				return usagef("--lang %q: want one of %s", lang, strings.Join(languages, ", "))
			}
			if dir == "" {
				dir = name
				if a.wd != "" {
					dir = filepath.Join(a.wd, name)
				}
			}
			files, err := writeTemplate(lang, dir, newData{Name: name})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Created %s (%s) in %s:\n", name, lang, dir)
			for _, f := range files {
				fmt.Fprintf(a.stdout, "  %s\n", f)
			}
			fmt.Fprintf(a.stdout, "\nNext:\n  cd %s\n  pier deploy\n", dir)
			return nil
		}),
	}
	cmd.Flags().StringVar(&lang, "lang", "", "language of the app: "+strings.Join(languages, ", "))
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write to (default: ./NAME)")
	return cmd
}

// writeTemplate renders templates/<lang> into dir, which must not exist or
// be empty, and returns the paths written relative to dir, sorted.
func writeTemplate(lang, dir string, data newData) ([]string, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s already exists and is not empty; choose another --dir", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	root := path.Join("templates", lang)
	var written []string
	err := fs.WalkDir(templates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		target := filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(rel, ".tmpl")))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		content, err := renderTemplate(p, data)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, content, 0o644); err != nil {
			return err
		}
		written = append(written, filepath.ToSlash(strings.TrimSuffix(rel, ".tmpl")))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("writing the %s starter app: %w", lang, err)
	}
	slices.Sort(written)
	return written, nil
}

// renderTemplate returns the embedded file p, executed as a template when
// its name ends in ".tmpl".
func renderTemplate(p string, data newData) ([]byte, error) {
	raw, err := templates.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(p, ".tmpl") {
		return raw, nil
	}
	t, err := template.New(path.Base(p)).Option("missingkey=error").Parse(string(raw))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(io.Writer(&b), data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
