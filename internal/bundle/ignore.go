package bundle

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// An ignoreRule is one pattern line of a .pierignore file.
type ignoreRule struct {
	segs    []string // pattern split on "/"; "**" matches any number of segments
	negate  bool     // "!pattern": re-include what an earlier rule excluded
	dirOnly bool     // "pattern/": matches directories only
	line    int
}

// ignoreList is a parsed .pierignore. The last rule that matches a path decides.
type ignoreList []ignoreRule

// parseIgnore reads gitignore-syntax rules (a subset: blank and # lines,
// `pattern`, `dir/`, `/anchored`, `*`, `**`, `?`, `[class]` and `!negation`).
// A pattern without a slash (other than a trailing one) matches a name at any
// depth; a pattern with one is anchored at the bundle root, as in git.
func parseIgnore(r io.Reader, name string) (ignoreList, error) {
	var rules ignoreList
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rule := ignoreRule{line: n}
		if strings.HasPrefix(line, "!") {
			rule.negate = true
			line = line[1:]
		} else if strings.HasPrefix(line, `\!`) || strings.HasPrefix(line, `\#`) {
			line = line[1:]
		}
		if strings.HasSuffix(line, "/") {
			rule.dirOnly = true
			line = strings.TrimRight(line, "/")
		}
		anchored := strings.Contains(line, "/")
		line = strings.TrimPrefix(line, "/")
		if line == "" {
			return nil, fmt.Errorf("%s:%d: empty pattern", name, n)
		}
		rule.segs = strings.Split(line, "/")
		if !anchored && rule.segs[0] != "**" {
			rule.segs = append([]string{"**"}, rule.segs...)
		}
		for _, s := range rule.segs {
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("%s:%d: bad pattern %q: %w", name, n, sc.Text(), err)
			}
		}
		rules = append(rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rules, nil
}

// ignored reports whether rel (slash-separated, relative to the bundle root)
// is excluded. Parents are checked by the caller's walk: once a directory is
// excluded nothing under it is visited, so, as in git, a file cannot be
// re-included when its directory is excluded.
func (l ignoreList) ignored(rel string, isDir bool) bool {
	parts := strings.Split(rel, "/")
	ignored := false
	for _, r := range l {
		if r.dirOnly && !isDir {
			continue
		}
		if matchSegs(r.segs, parts) {
			ignored = !r.negate
		}
	}
	return ignored
}

// matchSegs matches path segments against pattern segments, where "**"
// stands for zero or more whole segments.
func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			if len(rest) == 0 {
				return len(name) > 0
			}
			for i := 0; i <= len(name); i++ {
				if matchSegs(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
