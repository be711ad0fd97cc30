package errortrack

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzParseEnvelope: any body parses into items or fails with a reason
// (errBadEnvelope / errBadEvent), never panics, and items never point
// outside the body.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(envelope(sampleEvent))
	f.Add([]byte("{}\n{\"type\":\"session\"}\n{\"sid\":\"1\"}\n"))
	f.Add([]byte("{\"event_id\":\"x\"}\n{\"type\":\"event\",\"length\":2}\n{}\n{\"type\":\"attachment\",\"length\":0}\n\n"))
	f.Add([]byte(`{"dsn":"http://k@h/1"}` + "\n" + `{"type":"event"}` + "\n" + `{"exception":{"values":[{"type":"E","stacktrace":{"frames":[{"function":"f"}]}}]},"tags":[["a","b"]],"timestamp":1.5}`))
	f.Add([]byte("{\"type\":\"event\",\"length\":-1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := parseEnvelope(data)
		if err != nil {
			if !errors.Is(err, errBadEnvelope) {
				t.Fatalf("error without reason class: %v", err)
			}
			return
		}
		for _, it := range env.Items {
			if len(it.Payload) > 0 && !bytes.Contains(data, it.Payload) {
				t.Fatalf("payload not from the body")
			}
			if it.Type != "event" {
				continue
			}
			ev, err := parseEvent(it.Payload, time.Unix(0, 0))
			if err != nil {
				if !errors.Is(err, errBadEvent) {
					t.Fatalf("event error without reason class: %v", err)
				}
				continue
			}
			ev.App = "a"
			group("a", ev)
			if len(ev.Issue) != 12 || ev.Title == "" {
				t.Fatalf("grouped without id or title: %+v", ev)
			}
			var is Issue
			is.apply(ev, 1)
		}
	})
}

// FuzzParseCursor: a cursor from a client either parses into one that
// prints as a cursor naming the same position, or is refused with a
// message; never a panic.
func FuzzParseCursor(f *testing.F) {
	f.Add("1767225600000000000-00000000000a")
	f.Add("0-ffffffffffff")
	f.Add("-1-00000000000a")
	f.Add("9223372036854775807-abcdefabcdef")
	f.Add("1-")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refusal without a message")
			}
			return
		}
		if again, err := parseCursor(c.String()); err != nil || again != c {
			t.Fatalf("cursor %q prints as %q, which parses as %v, %v", s, c.String(), again, err)
		}
		if !validIssueID(c.id) {
			t.Fatalf("cursor %q has id %q", s, c.id)
		}
	})
}
