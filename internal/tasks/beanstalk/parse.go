package beanstalk

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
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
	args []string
	// Parsed numbers, by position, for the verbs that take them.
	n [4]uint64
	// For put: the body length announced, and the body once read.
	bytes int
	body  []byte
}

// arity is how many arguments each verb takes, and which of them are
// numbers (true) or tube names (false).
var arity = map[string][]bool{
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
}

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

// parse splits a command line and checks its arguments' shape.
func parse(line []byte) (command, error) {
	s := string(line)
	verb, rest, hasArgs := strings.Cut(s, " ")
	want, ok := arity[verb]
	if !ok {
		return command{}, protoError(rUnknownCommand)
	}
	c := command{verb: verb}
	if hasArgs {
		c.args = strings.Split(rest, " ")
	}
	if len(c.args) > 0 && len(want) == 0 {
		return command{}, protoError(rBadFormat)
	}
	if len(want) > 0 && !hasArgs {
		// beanstalkd only recognises "verb " with its space.
		return command{}, protoError(rUnknownCommand)
	}
	if len(c.args) != len(want) {
		return command{}, protoError(rBadFormat)
	}
	for i, isNum := range want {
		a := c.args[i]
		if isNum {
			v, err := strconv.ParseUint(a, 10, 64)
			if err != nil {
				return command{}, protoError(rBadFormat)
			}
			c.n[i] = v
			continue
		}
		if !validTube(a) {
			return command{}, protoError(rBadFormat)
		}
	}
	if verb == "put" {
		if c.n[0] > 1<<32-1 || c.n[3] > 1<<31 {
			return command{}, protoError(rBadFormat)
		}
		c.bytes = int(c.n[3])
	}
	if (verb == "release" && c.n[1] > 1<<32-1) || (verb == "bury" && c.n[1] > 1<<32-1) {
		return command{}, protoError(rBadFormat)
	}
	return c, nil
}

// validTube is beanstalkd's name rule: 1-200 bytes of letters, digits and
// "-+/;.$_()", not starting with "-".
func validTube(name string) bool {
	if name == "" || len(name) > tubeMax || name[0] == '-' {
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
