package beanstalk

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
)

// lineMax is the longest command line beanstalkd accepts, CRLF included.
const lineMax = 224

// tubeMax is the longest tube name.
const tubeMax = 200

// Replies that are whole lines.
const (
	rBadFormat      = "BAD_FORMAT"
	rUnknownCommand = "UNKNOWN_COMMAND"
	rExpectedCRLF   = "EXPECTED_CRLF"
	rJobTooBig      = "JOB_TOO_BIG"
	rNotFound       = "NOT_FOUND"
	rNotIgnored     = "NOT_IGNORED"
	rTimedOut       = "TIMED_OUT"
	rDeadlineSoon   = "DEADLINE_SOON"
	rInternal       = "INTERNAL_ERROR"
	rUnauthorized   = "UNAUTHORIZED"
	rDeleted        = "DELETED"
	rReleased       = "RELEASED"
	rBuried         = "BURIED"
	rTouched        = "TOUCHED"
	rPaused         = "PAUSED"
)

// protoError is a command line that gets an error reply.
type protoError string

func (e protoError) Error() string { return string(e) }

// errLineTooLong: the line did not end within lineMax bytes; the rest of
// it up to the next newline has been skipped.
var errLineTooLong = protoError(rBadFormat)

// command is one parsed command line.
type command struct {
	verb string
	// tube is the tube argument of the verbs that take one (always their
	// first).
	tube string
	// Parsed numbers, by position, for the verbs that take them.
	n [4]uint64
	// For put: the body length announced, and the body once read.
	bytes int
	body  []byte
}

// verbSpec is a verb's name and its arguments: numbers (true) or a tube
// name (false).
type verbSpec struct {
	name string
	args []bool
}

// verbs is the verb table of the parser (handlers, in commands.go, is the
// other half).
var verbs = func() map[string]verbSpec {
	m := map[string]verbSpec{}
	for name, args := range map[string][]bool{
		"put":                  {true, true, true, true},
		"use":                  {false},
		"reserve":              {},
		"reserve-with-timeout": {true},
		"reserve-job":          {true},
		"delete":               {true},
		"release":              {true, true, true},
		"bury":                 {true, true},
		"touch":                {true},
		"watch":                {false},
		"ignore":               {false},
		"peek":                 {true},
		"peek-ready":           {},
		"peek-delayed":         {},
		"peek-buried":          {},
		"kick":                 {true},
		"kick-job":             {true},
		"stats-job":            {true},
		"stats-tube":           {false},
		"stats":                {},
		"list-tubes":           {},
		"list-tube-used":       {},
		"list-tubes-watched":   {},
		"pause-tube":           {false, true},
		"quit":                 {},
	} {
		m[name] = verbSpec{name, args}
	}
	return m
}()

// readLine reads one command line without its CRLF. A line longer than
// lineMax is skipped to its end and reported as errLineTooLong. The line
// may be r's own buffer (no copy for a line read whole, the usual case):
// it is valid until the next read from r.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if err == nil && line == nil {
			line = chunk
			break
		}
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(line) > lineMax {
			// Skip to the end of this line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				return nil, err
			}
			return nil, errLineTooLong
		}
	}
	if len(line) > lineMax {
		return nil, errLineTooLong
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// parse splits a command line and checks its arguments' shape. It works
// on the line's bytes: a command of numbers only (put, reserve, delete,
// the hot path) allocates nothing; a tube name is copied.
func parse(line []byte) (command, error) {
	verb, rest, hasArgs := bytes.Cut(line, []byte{' '})
	spec, ok := verbs[string(verb)]
	if !ok {
		return command{}, protoError(rUnknownCommand)
	}
	want := spec.args
	if hasArgs && len(want) == 0 {
		return command{}, protoError(rBadFormat)
	}
	if len(want) > 0 && !hasArgs {
		// beanstalkd only recognises "verb " with its space.
		return command{}, protoError(rUnknownCommand)
	}
	c := command{verb: spec.name}
	for i, isNum := range want {
		arg, more, found := bytes.Cut(rest, []byte{' '})
		if found != (i < len(want)-1) {
			return command{}, protoError(rBadFormat) // too few or too many
		}
		rest = more
		if isNum {
			v, ok := parseUint(arg)
			if !ok {
				return command{}, protoError(rBadFormat)
			}
			c.n[i] = v
			continue
		}
		if !validTube(arg) {
			return command{}, protoError(rBadFormat)
		}
		c.tube = string(arg)
	}
	if spec.name == "put" {
		if c.n[0] > 1<<32-1 || c.n[3] > 1<<31 {
			return command{}, protoError(rBadFormat)
		}
		c.bytes = int(c.n[3])
	}
	if (spec.name == "release" || spec.name == "bury") && c.n[1] > 1<<32-1 {
		return command{}, protoError(rBadFormat)
	}
	return c, nil
}

// parseUint reads a decimal number of 64 bits, as strconv.ParseUint(s,
// 10, 64) does (digits only, at least one), without making a string.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > (1<<64-1)/10 {
			return 0, false
		}
		v *= 10
		d := uint64(c - '0')
		if v > 1<<64-1-d {
			return 0, false
		}
		v += d
	}
	return v, true
}

// validTube is beanstalkd's name rule: 1-200 bytes of letters, digits and
// "-+/;.$_()", not starting with "-".
func validTube(name []byte) bool {
	if len(name) == 0 || len(name) > tubeMax || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-+/;.$_()", c) >= 0) {
			return false
		}
	}
	return true
}
