package beanstalk

import (
	"bufio"
	"bytes"
	"errors"
	"io"
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
			if err != nil {
				if s := err.Error(); s != rBadFormat && s != rUnknownCommand {
					t.Fatalf("parse %q: reply %q", line, s)
				}
				continue
			}
			want, ok := arity[cmd.verb]
			if !ok || len(cmd.args) != len(want) {
				t.Fatalf("parse %q: accepted %+v", line, cmd)
			}
			for i, isNum := range want {
				if !isNum && !validTube(cmd.args[i]) {
					t.Fatalf("parse %q: bad tube accepted", line)
				}
			}
		}
	})
}
