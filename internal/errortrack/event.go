package errortrack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is one error as pier stores it: the parts of a Sentry event that
// matter for grouping and for reading it later, normalised from whatever
// shape the SDK sent (exception as a list or {values}, float or RFC 3339
// timestamps, message as a string or a logentry).
type Event struct {
	ID          string            `json:"id"`
	Timestamp   time.Time         `json:"timestamp"`
	Received    time.Time         `json:"received"`
	Level       string            `json:"level,omitempty"`
	Platform    string            `json:"platform,omitempty"`
	Logger      string            `json:"logger,omitempty"`
	Release     string            `json:"release,omitempty"`
	Environment string            `json:"environment,omitempty"`
	ServerName  string            `json:"server_name,omitempty"`
	Transaction string            `json:"transaction,omitempty"`
	Message     string            `json:"message,omitempty"`
	Exceptions  []Exception       `json:"exceptions,omitempty"` // oldest first; the last one was raised last
	Breadcrumbs []Breadcrumb      `json:"breadcrumbs,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	User        *User             `json:"user,omitempty"`
	Request     json.RawMessage   `json:"request,omitempty"`
	Contexts    json.RawMessage   `json:"contexts,omitempty"`
	Extra       json.RawMessage   `json:"extra,omitempty"`
	Fingerprint []string          `json:"fingerprint,omitempty"`
	SDK         string            `json:"sdk,omitempty"` // "sentry.go/0.50.0"

	// Set by pier.
	App       string `json:"app"`
	Issue     string `json:"issue"`
	Title     string `json:"title"`
	Culprit   string `json:"culprit,omitempty"`
	GroupedBy string `json:"grouped_by"` // fingerprint | exception | message
	Source    string `json:"source"`     // sdk | crash
	Output    string `json:"output,omitempty"`
}

// Exception is one exception of a chain.
type Exception struct {
	Type      string          `json:"type,omitempty"`
	Value     string          `json:"value,omitempty"`
	Module    string          `json:"module,omitempty"`
	Frames    []Frame         `json:"frames,omitempty"` // oldest call first, as Sentry orders them
	Mechanism json.RawMessage `json:"mechanism,omitempty"`
	// Synthetic: the SDK made this exception up to carry a stack trace
	// (@sentry/node's captureMessage); it groups and titles by message.
	Synthetic bool `json:"synthetic,omitempty"`
}

// Frame is one stack frame.
type Frame struct {
	Filename    string          `json:"filename,omitempty"`
	AbsPath     string          `json:"abs_path,omitempty"`
	Function    string          `json:"function,omitempty"`
	Module      string          `json:"module,omitempty"`
	Lineno      int             `json:"lineno,omitempty"`
	Colno       int             `json:"colno,omitempty"`
	InApp       *bool           `json:"in_app,omitempty"`
	ContextLine string          `json:"context_line,omitempty"`
	PreContext  []string        `json:"pre_context,omitempty"`
	PostContext []string        `json:"post_context,omitempty"`
	Vars        json.RawMessage `json:"vars,omitempty"`
}

// Breadcrumb is one thing that happened before the error.
type Breadcrumb struct {
	Timestamp time.Time       `json:"timestamp,omitzero"`
	Type      string          `json:"type,omitempty"`
	Category  string          `json:"category,omitempty"`
	Level     string          `json:"level,omitempty"`
	Message   string          `json:"message,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// User is who met the error.
type User struct {
	ID        string `json:"id,omitempty"`
	Email     string `json:"email,omitempty"`
	Username  string `json:"username,omitempty"`
	IPAddress string `json:"ip_address,omitempty"`
}

// key identifies the user for the users-affected count ("" = anonymous).
func (u *User) key() string {
	switch {
	case u == nil:
		return ""
	case u.ID != "":
		return "id:" + u.ID
	case u.Email != "":
		return "email:" + u.Email
	case u.Username != "":
		return "name:" + u.Username
	case u.IPAddress != "":
		return "ip:" + u.IPAddress
	}
	return ""
}

// errBadEvent marks an event payload the client must fix (400).
var errBadEvent = errors.New("bad event")

// wireEvent is a Sentry event as SDKs send it; fields whose shape varies
// between SDKs stay raw until normalised.
type wireEvent struct {
	EventID     string          `json:"event_id"`
	Timestamp   json.RawMessage `json:"timestamp"`
	Level       string          `json:"level"`
	Platform    string          `json:"platform"`
	Logger      string          `json:"logger"`
	Release     json.RawMessage `json:"release"`
	Environment string          `json:"environment"`
	ServerName  string          `json:"server_name"`
	Transaction string          `json:"transaction"`
	Message     json.RawMessage `json:"message"`
	LogEntry    json.RawMessage `json:"logentry"`
	Exception   json.RawMessage `json:"exception"`
	Breadcrumbs json.RawMessage `json:"breadcrumbs"`
	Tags        json.RawMessage `json:"tags"`
	User        json.RawMessage `json:"user"`
	Request     json.RawMessage `json:"request"`
	Contexts    json.RawMessage `json:"contexts"`
	Extra       json.RawMessage `json:"extra"`
	Fingerprint []any           `json:"fingerprint"`
	SDK         *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"sdk"`
}

type wireException struct {
	Type       string          `json:"type"`
	Value      json.RawMessage `json:"value"`
	Module     string          `json:"module"`
	Stacktrace *struct {
		Frames []wireFrame `json:"frames"`
	} `json:"stacktrace"`
	Mechanism json.RawMessage `json:"mechanism"`
}

type wireFrame struct {
	Filename    string          `json:"filename"`
	AbsPath     string          `json:"abs_path"`
	Function    string          `json:"function"`
	Module      string          `json:"module"`
	Lineno      int             `json:"lineno"`
	Colno       int             `json:"colno"`
	InApp       *bool           `json:"in_app"`
	ContextLine string          `json:"context_line"`
	PreContext  []string        `json:"pre_context"`
	PostContext []string        `json:"post_context"`
	Vars        json.RawMessage `json:"vars"`
}

type wireBreadcrumb struct {
	Timestamp json.RawMessage `json:"timestamp"`
	Type      string          `json:"type"`
	Category  string          `json:"category"`
	Level     string          `json:"level"`
	Message   json.RawMessage `json:"message"`
	Data      json.RawMessage `json:"data"`
}

// Limits on what one event keeps, so a hostile or buggy SDK cannot make an
// issue's stored events huge.
const (
	maxExceptions  = 10
	maxFrames      = 100
	maxBreadcrumbs = 100
	maxTags        = 50
	maxField       = 8 << 10 // bytes of one string field
)

// parseEvent normalises a Sentry event payload. now is the receive time.
func parseEvent(data []byte, now time.Time) (*Event, error) {
	var w wireEvent
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadEvent, jsonReason(err))
	}
	ev := &Event{
		ID:          normalizeID(w.EventID),
		Received:    now.UTC(),
		Level:       clip(w.Level, 32),
		Platform:    clip(w.Platform, 64),
		Logger:      clip(w.Logger, 256),
		Release:     clip(stringish(w.Release), 256),
		Environment: clip(w.Environment, 256),
		ServerName:  clip(w.ServerName, 256),
		Transaction: clip(w.Transaction, 1024),
		Request:     objectOrNil(w.Request),
		Contexts:    objectOrNil(w.Contexts),
		Extra:       objectOrNil(w.Extra),
	}
	ts, err := parseTime(w.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("%w: timestamp: %v", errBadEvent, err)
	}
	if ts.IsZero() {
		ts = ev.Received
	}
	ev.Timestamp = ts
	ev.Message = clip(messageText(w.Message, w.LogEntry), maxField)
	if ev.Exceptions, err = parseExceptions(w.Exception); err != nil {
		return nil, err
	}
	if ev.Breadcrumbs, err = parseBreadcrumbs(w.Breadcrumbs); err != nil {
		return nil, err
	}
	if ev.Tags, err = parseTags(w.Tags); err != nil {
		return nil, err
	}
	if len(w.User) > 0 && string(w.User) != "null" {
		var u map[string]any
		if err := json.Unmarshal(w.User, &u); err != nil {
			return nil, fmt.Errorf("%w: user: want an object", errBadEvent)
		}
		ev.User = &User{
			ID: clip(anyString(u["id"]), 256), Email: clip(anyString(u["email"]), 256),
			Username: clip(anyString(u["username"]), 256), IPAddress: clip(anyString(u["ip_address"]), 64),
		}
		if ev.User.key() == "" {
			ev.User = nil
		}
	}
	for _, f := range w.Fingerprint {
		ev.Fingerprint = append(ev.Fingerprint, clip(anyString(f), 512))
	}
	if w.SDK != nil && w.SDK.Name != "" {
		ev.SDK = clip(w.SDK.Name+"/"+w.SDK.Version, 128)
	}
	if ev.Level == "" {
		ev.Level = "error"
	}
	return ev, nil
}

func parseExceptions(raw json.RawMessage) ([]Exception, error) {
	list, err := valuesList(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: exception: %v", errBadEvent, err)
	}
	var out []Exception
	for _, item := range list {
		var we wireException
		if err := json.Unmarshal(item, &we); err != nil {
			return nil, fmt.Errorf("%w: exception: %v", errBadEvent, jsonReason(err))
		}
		ex := Exception{
			Type: clip(we.Type, 256), Value: clip(stringish(we.Value), maxField),
			Module: clip(we.Module, 256), Mechanism: objectOrNil(we.Mechanism),
		}
		if we.Stacktrace != nil {
			frames := we.Stacktrace.Frames
			if len(frames) > maxFrames { // keep the innermost calls
				frames = frames[len(frames)-maxFrames:]
			}
			for _, f := range frames {
				ex.Frames = append(ex.Frames, Frame{
					Filename: clip(f.Filename, 1024), AbsPath: clip(f.AbsPath, 1024),
					Function: clip(f.Function, 1024), Module: clip(f.Module, 512),
					Lineno: f.Lineno, Colno: f.Colno, InApp: f.InApp,
					ContextLine: clip(f.ContextLine, 1024), PreContext: clipAll(f.PreContext),
					PostContext: clipAll(f.PostContext), Vars: objectOrNil(f.Vars),
				})
			}
		}
		var mech struct {
			Synthetic bool `json:"synthetic"`
		}
		if ex.Mechanism != nil && json.Unmarshal(ex.Mechanism, &mech) == nil {
			ex.Synthetic = mech.Synthetic
		}
		out = append(out, ex)
	}
	if len(out) > maxExceptions {
		out = out[len(out)-maxExceptions:]
	}
	return out, nil
}

func parseBreadcrumbs(raw json.RawMessage) ([]Breadcrumb, error) {
	list, err := valuesList(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: breadcrumbs: %v", errBadEvent, err)
	}
	if len(list) > maxBreadcrumbs {
		list = list[len(list)-maxBreadcrumbs:]
	}
	var out []Breadcrumb
	for _, item := range list {
		var wb wireBreadcrumb
		if err := json.Unmarshal(item, &wb); err != nil {
			return nil, fmt.Errorf("%w: breadcrumbs: %v", errBadEvent, jsonReason(err))
		}
		ts, _ := parseTime(wb.Timestamp)
		out = append(out, Breadcrumb{
			Timestamp: ts, Type: clip(wb.Type, 64), Category: clip(wb.Category, 256),
			Level: clip(wb.Level, 32), Message: clip(stringish(wb.Message), maxField), Data: objectOrNil(wb.Data),
		})
	}
	return out, nil
}

// parseTags accepts {"k": "v"} and [["k", "v"], ...].
func parseTags(raw json.RawMessage) (map[string]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	tags := map[string]string{}
	add := func(k string, v any) {
		if k != "" && len(tags) < maxTags {
			tags[clip(k, 200)] = clip(anyString(v), 200)
		}
	}
	switch raw[0] {
	case '{':
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%w: tags: %v", errBadEvent, jsonReason(err))
		}
		for k, v := range m {
			add(k, v)
		}
	case '[':
		var pairs [][]any
		if err := json.Unmarshal(raw, &pairs); err != nil {
			return nil, fmt.Errorf("%w: tags: want an object or a list of pairs", errBadEvent)
		}
		for _, p := range pairs {
			if len(p) == 2 {
				add(anyString(p[0]), p[1])
			}
		}
	default:
		return nil, fmt.Errorf("%w: tags: want an object or a list of pairs", errBadEvent)
	}
	return tags, nil
}

// valuesList accepts a list or an object {"values": list}.
func valuesList(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []json.RawMessage
	switch raw[0] {
	case '[':
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, jsonReason(err)
		}
	case '{':
		var obj struct {
			Values []json.RawMessage `json:"values"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, jsonReason(err)
		}
		list = obj.Values
	default:
		return nil, errors.New("want a list or {\"values\": [...]}")
	}
	return list, nil
}

// messageText reads "message" (a string or {formatted, message}) and
// falls back to "logentry".
func messageText(msg, logentry json.RawMessage) string {
	for _, raw := range []json.RawMessage{msg, logentry} {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		if raw[0] == '"' {
			var s string
			json.Unmarshal(raw, &s)
			if s != "" {
				return s
			}
			continue
		}
		var obj struct {
			Formatted string `json:"formatted"`
			Message   string `json:"message"`
		}
		if json.Unmarshal(raw, &obj) == nil {
			if obj.Formatted != "" {
				return obj.Formatted
			}
			if obj.Message != "" {
				return obj.Message
			}
		}
	}
	return ""
}

// parseTime accepts seconds since the epoch (a number, or a number in a
// string) and RFC 3339 with or without a zone (UTC then).
func parseTime(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > 1e11 {
			return time.Time{}, fmt.Errorf("%s is out of range", s)
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither seconds since the epoch nor RFC 3339", clip(s, 64))
}

// normalizeID keeps a 32-hex-digit event id (dashes dropped, lower case),
// else returns "".
func normalizeID(s string) string {
	s = strings.ToLower(strings.ReplaceAll(s, "-", ""))
	if len(s) != 32 {
		return ""
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return s
}

// stringish reads a JSON string, or renders any other value as JSON text.
func stringish(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		json.Unmarshal(raw, &s)
		return s
	}
	return string(raw)
}

func anyString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// objectOrNil keeps raw only when it is a JSON object.
func objectOrNil(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || len(raw) > 64<<10 {
		return nil
	}
	return raw
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func clipAll(ss []string) []string {
	if len(ss) > 10 {
		ss = ss[len(ss)-10:]
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clip(s, 1024)
	}
	return out
}

// jsonReason shortens a JSON decoding error for a 400 answer.
func jsonReason(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: got JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	return err
}
