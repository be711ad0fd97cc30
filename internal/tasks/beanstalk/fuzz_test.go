package beanstalk

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary input to the line reader and the parser: they
// must never panic, must answer only beanstalkd's error replies, and must
// accept only lines that fit the verb table.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"put 0 0 10 5\r\nhello\r\n", "reserve\r\n", "reserve-with-timeout 5\r\n", "delete 1\r\n",
		"release 1 2 3\r\n", "use a/b\r\n", "watch -x\r\n", strings.Repeat("z", 300) + "\r\n",
		"pause-tube t 10\r\n", "delete 18446744073709551616\r\n", "\r\n", "\n", "stats-job 0 \r\n",
		"put 4294967295 0 0 2147483648\r\n", "delete 18446744073709551615\r\n", "bury 1 4294967296\r\n",
		"pause-tube a 1 2\r\n", "delete 1 \r\n", "delete  1\r\n", "delete +1\r\n", "delete 0x1\r\n", "delete 1_0\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 4096)
		for {
			line, err := readLine(r)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if err.Error() != rBadFormat {
					t.Fatalf("readLine: %v", err)
				}
				continue
			}
			if len(line) > lineMax {
				t.Fatalf("line of %d bytes accepted", len(line))
			}
			cmd, err := parse(line)
			ref, refErr := parseRef(line)
			if (err == nil) != (refErr == nil) || (err != nil && err.Error() != refErr.Error()) {
				t.Fatalf("parse %q: error %v, the reference parser's %v", line, err, refErr)
			}
			if err != nil {
				if s := err.Error(); s != rBadFormat && s != rUnknownCommand {
					t.Fatalf("parse %q: reply %q", line, s)
				}
				continue
			}
			if cmd.verb != ref.verb || cmd.tube != ref.tube || cmd.n != ref.n || cmd.bytes != ref.bytes {
				t.Fatalf("parse %q: got %+v, the reference parser's %+v", line, cmd, ref)
			}
			spec, ok := verbs[cmd.verb]
			if !ok || spec.name != cmd.verb {
				t.Fatalf("parse %q: accepted %+v", line, cmd)
			}
			if slices.Contains(spec.args, false) != (cmd.tube != "") || (cmd.tube != "" && !validTube([]byte(cmd.tube))) {
				t.Fatalf("parse %q: tube %q", line, cmd.tube)
			}
		}
	})
}

// parseRef is the parser as it was written first, with strings.Split
// and strconv.ParseUint: FuzzParse checks that parse, which avoids their
// allocations, accepts and refuses exactly the same lines.
func parseRef(line []byte) (command, error) {
	s := string(line)
	verb, rest, hasArgs := strings.Cut(s, " ")
	spec, ok := verbs[verb]
	if !ok {
		return command{}, protoError(rUnknownCommand)
	}
	want := spec.args
	c := command{verb: verb}
	var args []string
	if hasArgs {
		args = strings.Split(rest, " ")
	}
	if len(args) > 0 && len(want) == 0 {
		return command{}, protoError(rBadFormat)
	}
	if len(want) > 0 && !hasArgs {
		return command{}, protoError(rUnknownCommand)
	}
	if len(args) != len(want) {
		return command{}, protoError(rBadFormat)
	}
	for i, isNum := range want {
		a := args[i]
		if isNum {
			v, err := strconv.ParseUint(a, 10, 64)
			if err != nil {
				return command{}, protoError(rBadFormat)
			}
			c.n[i] = v
			continue
		}
		if !validTube([]byte(a)) {
			return command{}, protoError(rBadFormat)
		}
		c.tube = a
	}
	if verb == "put" {
		if c.n[0] > 1<<32-1 || c.n[3] > 1<<31 {
			return command{}, protoError(rBadFormat)
		}
		c.bytes = int(c.n[3])
	}
	if (verb == "release" || verb == "bury") && c.n[1] > 1<<32-1 {
		return command{}, protoError(rBadFormat)
	}
	return c, nil
}
