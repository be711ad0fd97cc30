package manifest

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParseProcfile reads a Procfile: one "type: command" per line; blank lines
// and lines starting with "#" are ignored. filename is used in error messages
// only. A non-nil error is a List of every problem found.
func ParseProcfile(filename string, data []byte) (*Manifest, error) {
	m, errs := parseProcfile(filename, data)
	src := &source{file: filename, root: pos{1, 1}, badProcesses: len(errs) > 0}
	errs = append(errs, src.finish(m)...)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseProcfile reads the processes of a Procfile into a Manifest that has
// nothing else, without applying defaults.
func parseProcfile(filename string, data []byte) (*Manifest, List) {
	m := &Manifest{}
	var errs List
	errorf := func(line, col int, field, format string, args ...any) {
		if len(errs) <= maxErrors {
			errs = append(errs, &Error{File: filename, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
		}
	}
	if len(data) > maxFileSize {
		errorf(1, 1, "", "file is larger than %d KiB", maxFileSize>>10)
		return m, errs
	}
	firstLine := make(map[string]int)
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimRight(raw, "\r")
		text := strings.TrimLeft(line, " \t")
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		lineNo := i + 1
		col := utf8.RuneCountInString(line[:len(line)-len(text)]) + 1
		name, cmd, ok := strings.Cut(text, ":")
		if !ok {
			errorf(lineNo, col, "processes", `want "type: command", found no ":"`)
			continue
		}
		name = strings.TrimRight(name, " \t")
		field := join("processes", name)
		if !processRE.MatchString(name) {
			errorf(lineNo, col, field, "invalid process type %q: %s", name, processRule)
			continue
		}
		trimmed := strings.TrimSpace(cmd)
		leading := len(cmd) - len(strings.TrimLeft(cmd, " \t"))
		cmdCol := col + utf8.RuneCountInString(text[:len(text)-len(cmd)]) + leading
		if trimmed == "" {
			errorf(lineNo, cmdCol, field, "command must not be empty")
			continue
		}
		if first, dup := firstLine[name]; dup {
			errorf(lineNo, col, field, "duplicate process type (first at line %d)", first)
			continue
		}
		firstLine[name] = lineNo
		if m.Processes == nil {
			m.Processes = make(map[string]string)
		}
		m.Processes[name] = trimmed
	}
	return m, errs
}
