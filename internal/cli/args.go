package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"pier/internal/api"
	"pier/internal/manifest"
)

// appNameRE is the manifest's rule for app names: a hostname label that is
// also a UNIX user name suffix.
var appNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// maxAppName is the longest app name appNameRE allows.
const maxAppName = 40

// checkAppName reports whether name is a valid app name, saying why not.
func checkAppName(name string) error {
	if !appNameRE.MatchString(name) || strings.HasSuffix(name, "-") {
		return fmt.Errorf("app name %q: use 1 to 40 lower-case letters, digits and dashes, starting with a letter and not ending with a dash", name)
	}
	return nil
}

// sanitizeAppName turns a directory's base name into an app name: lower
// case, runs of other characters become one dash, a leading non-letter gets
// "app-" in front, at most 40 characters. It returns "" when nothing usable
// is left.
func sanitizeAppName(base string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	s := b.String()
	if s == "" {
		return ""
	}
	if s[0] < 'a' || s[0] > 'z' {
		s = "app-" + s
	}
	if len(s) > maxAppName {
		s = s[:maxAppName]
	}
	return strings.TrimRight(s, "-")
}

// loadManifest reads dir's manifest. No manifest at all is (nil, nil): pier
// can still detect and deploy such an app. An invalid one is an error
// listing every problem with its file:line:column.
func loadManifest(dir string) (*manifest.Manifest, error) {
	m, err := manifest.Load(dir)
	if errors.Is(err, manifest.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invalid manifest in %s:\n  %s", dir, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return m, nil
}

// dirApp resolves the app a directory deploys or serves as, validating its
// manifest: flag, else the manifest's name, else the directory's base name
// sanitised.
func dirApp(dir, flag string) (name string, m *manifest.Manifest, err error) {
	m, err = loadManifest(dir)
	if err != nil {
		return "", nil, err
	}
	switch {
	case flag != "":
		name = flag
	case m != nil && m.Name != "":
		name = m.Name
	default:
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", nil, err
		}
		name = sanitizeAppName(filepath.Base(abs))
		if name == "" {
			return "", nil, fmt.Errorf("cannot make an app name out of %q: use --app NAME or set name in pier.yaml", filepath.Base(abs))
		}
	}
	if err := checkAppName(name); err != nil {
		return "", nil, err
	}
	return name, m, nil
}

// appName resolves the app of a command taking --app: the flag, else the
// name in the working directory's pier.yaml.
func (a *cli) appName(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	dir := a.wd
	if dir == "" {
		dir = "."
	}
	m, err := manifest.Load(dir)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return "", errNoApp
	case err != nil:
		return "", fmt.Errorf("%w (reading ./pier.yaml for the default: %v)", errNoApp, err)
	case m.Name == "":
		return "", errNoApp
	}
	return m.Name, nil
}

// appArgName resolves the app of a command taking [APP] or --app: the
// argument, else as appName.
func (a *cli) appArgName(args []string, flag string) (string, error) {
	if len(args) == 1 {
		flag = args[0]
	}
	return a.appName(flag)
}

// appClient resolves the app a command is about (as appName) and the
// client to reach the engine with: the first steps of most commands.
func (a *cli) appClient(flag string) (string, *api.Client, error) {
	name, err := a.appName(flag)
	if err != nil {
		return "", nil, err
	}
	c, err := a.client()
	if err != nil {
		return "", nil, err
	}
	return name, c, nil
}

// processRE is what a process type may look like.
var processRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// parseScale parses "web=3 worker=1" arguments.
func parseScale(args []string) (map[string]int, error) {
	if len(args) == 0 {
		return nil, usagef("give at least one PROCESS=N, e.g. web=3")
	}
	scale := make(map[string]int, len(args))
	for _, arg := range args {
		proc, n, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, usagef("%q: want PROCESS=N, e.g. web=3", arg)
		}
		if !processRE.MatchString(proc) {
			return nil, usagef("%q: %q is not a process type (lower-case letters, digits, - and _)", arg, proc)
		}
		count, err := strconv.Atoi(n)
		if err != nil || count < 0 {
			return nil, usagef("%q: the count must be a whole number of at least 0", arg)
		}
		if _, dup := scale[proc]; dup {
			return nil, usagef("%q: %s is given twice", arg, proc)
		}
		scale[proc] = count
	}
	return scale, nil
}

// envNameRE is a portable environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnvName rejects names that are not portable variable names or that
// pier sets itself.
func checkEnvName(name string) error {
	if !envNameRE.MatchString(name) {
		return usagef("%q is not a variable name: use letters, digits and _, not starting with a digit", name)
	}
	if name == "PORT" || strings.HasPrefix(name, "PIER_") {
		return usagef("%s is set by pier for every process and cannot be changed", name)
	}
	return nil
}

// parseEnvSet parses "K=V" arguments; V may be empty or contain "=".
func parseEnvSet(args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, usagef("give at least one KEY=VALUE")
	}
	set := make(map[string]string, len(args))
	for _, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, usagef("%q: want KEY=VALUE", arg)
		}
		if err := checkEnvName(k); err != nil {
			return nil, err
		}
		if _, dup := set[k]; dup {
			return nil, usagef("%s is given twice", k)
		}
		set[k] = v
	}
	return set, nil
}

// parseEnvUnset checks "K" arguments.
func parseEnvUnset(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, usagef("give at least one KEY")
	}
	for _, k := range args {
		if strings.Contains(k, "=") {
			return nil, usagef("%q: unset takes names only, not KEY=VALUE", k)
		}
		if err := checkEnvName(k); err != nil {
			return nil, err
		}
	}
	return args, nil
}

// parseRelease parses "v3" or "3".
func parseRelease(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V"))
	if err != nil || n < 1 {
		return 0, usagef("%q is not a release: want vN or N, e.g. v3", s)
	}
	return n, nil
}
