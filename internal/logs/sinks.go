package logs

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// sink delivers batches of lines to one drain's destination. A sink is
// used by one goroutine at a time.
type sink interface {
	// send delivers the lines or returns why not; the whole batch is
	// tried again after an error.
	send(ctx context.Context, lines []Line) error
	close()
}

var (
	_ sink = (*syslogSink)(nil)
	_ sink = (*httpSink)(nil)
)

// syslogSink writes RFC 5424 messages over TCP (or TLS) with RFC 6587
// octet-counting framing: "LEN SP MSG", one connection kept open.
type syslogSink struct {
	addr     string
	tls      *tls.Config // nil: plain TCP
	hostname string
	conn     net.Conn
}

func (s *syslogSink) send(ctx context.Context, lines []Line) error {
	if s.conn == nil {
		d := net.Dialer{Timeout: 10 * time.Second}
		var conn net.Conn
		var err error
		if s.tls != nil {
			conn, err = (&tls.Dialer{NetDialer: &d, Config: s.tls}).DialContext(ctx, "tcp", s.addr)
		} else {
			conn, err = d.DialContext(ctx, "tcp", s.addr)
		}
		if err != nil {
			return fmt.Errorf("syslog: %w", err)
		}
		s.conn = conn
	}
	var buf bytes.Buffer
	for _, l := range lines {
		msg := formatSyslog(l, s.hostname)
		buf.WriteString(strconv.Itoa(len(msg)))
		buf.WriteByte(' ')
		buf.WriteString(msg)
	}
	s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	conn := s.conn
	stop := context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Now()) })
	_, err := s.conn.Write(buf.Bytes())
	stop()
	if err != nil {
		s.close()
		return fmt.Errorf("syslog: %w", err)
	}
	return nil
}

func (s *syslogSink) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// Syslog severities (RFC 5424 section 6.2.1) by stream; the facility is
// user-level (1).
const (
	facilityUser   = 1
	severityError  = 3
	severityNotice = 5
	severityInfo   = 6
)

// syslogSDID is the SD-ID of the structured data element every message
// carries. RFC 5424 wants a private SD-ID to end in "@" and an IANA
// private enterprise number; pier has none of its own, so it uses 32473,
// the number RFC 5612 reserves for documentation and examples.
const syslogSDID = "pier@32473"

// formatSyslog renders one line as an RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
//
// with APP-NAME the app, PROCID the instance ("web.1"), MSGID the process
// type ("web"), and severity error for stderr, notice for pier's own
// notes, info otherwise. The header fields are cut and stripped to
// printable ASCII, so the structured data repeats them whole:
//
//	[pier@32473 app="blog" release="3" process="web" instance="web.1" stream="stdout"]
//
// (release left out when unknown).
func formatSyslog(l Line, hostname string) string {
	sev := severityInfo
	switch l.Stream {
	case "stderr":
		sev = severityError
	case "pier":
		sev = severityNotice
	}
	t := l.Time
	if t.IsZero() {
		t = time.Now()
	}
	var sd strings.Builder
	sd.WriteString("[" + syslogSDID)
	param := func(name, value string) {
		sd.WriteString(" " + name + `="`)
		sd.WriteString(sdValue.Replace(strings.ToValidUTF8(value, "\uFFFD")))
		sd.WriteByte('"')
	}
	param("app", l.App)
	if l.Release > 0 {
		param("release", strconv.Itoa(l.Release))
	}
	param("process", l.Process)
	param("instance", l.Instance)
	param("stream", l.Stream)
	sd.WriteByte(']')
	return fmt.Sprintf("<%d>1 %s %s %s %s %s %s %s", facilityUser*8+sev,
		t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		syslogField(hostname, 255), syslogField(l.App, 48), syslogField(l.Instance, 128),
		syslogField(l.Process, 32), sd.String(), strings.TrimRight(l.Text, "\r\n"))
}

// sdValue escapes a PARAM-VALUE: RFC 5424 section 6.3.3 wants '"', '\'
// and ']' preceded by a backslash.
var sdValue = strings.NewReplacer(`"`, `\"`, `\`, `\\`, `]`, `\]`)

// syslogField makes s a header field: printable US-ASCII, at most n
// bytes, "-" when empty.
func syslogField(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	if s == "" {
		return "-"
	}
	return s
}

// httpSink POSTs each batch as NDJSON, one Line a line.
type httpSink struct {
	url    string
	client *http.Client
}

func (s *httpSink) send(ctx context.Context, lines []Line) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, l := range lines {
		enc.Encode(l)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, &buf)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "pier-log-drain")
	req.Header.Set("X-Pier-Lines", strconv.Itoa(len(lines)))
	resp, err := s.client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // the URL may carry credentials
		}
		return fmt.Errorf("http: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("http: the drain answered %s", resp.Status)
	}
	return nil
}

func (s *httpSink) close() {}
