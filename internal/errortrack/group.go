package errortrack

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"regexp"
	"strings"
)

// group fills in ev's grouping fields: GroupedBy, Issue (the issue's id),
// Title and Culprit.
//
// The grouping key is, in order of preference:
//   - the SDK's fingerprint, where "{{ default }}" stands for the key pier
//     would have used;
//   - the exception chain: each exception's type plus its in-app frames
//     (module or file, and function; never line numbers, so an edit above
//     the crash site keeps the issue), or its normalised value when it has
//     no frames;
//   - the normalised message (numbers, hex ids and UUIDs blanked).
func group(app string, ev *Event) {
	def, by := defaultKey(ev)
	key := def
	if fp := ev.Fingerprint; len(fp) > 0 {
		parts := make([]string, len(fp))
		for i, p := range fp {
			if isDefaultToken(p) {
				p = def
			}
			parts[i] = p
		}
		key, by = "fingerprint\x00"+strings.Join(parts, "\x00"), "fingerprint"
	}
	ev.GroupedBy = by
	ev.Issue = issueID(app, key)
	ev.Title, ev.Culprit = titleOf(ev)
}

func isDefaultToken(s string) bool {
	return strings.ReplaceAll(s, " ", "") == "{{default}}"
}

// issueID is the issue's stable id: 12 hex digits of a hash of the app and
// the grouping key.
func issueID(app, key string) string {
	h := sha256.Sum256([]byte(app + "\x00" + key))
	return hex.EncodeToString(h[:6])
}

// realExceptions drops the synthetic exceptions SDKs attach to messages.
func realExceptions(ev *Event) []Exception {
	var out []Exception
	for _, ex := range ev.Exceptions {
		if !ex.Synthetic || ex.Type != "" && ev.Message == "" {
			out = append(out, ex)
		}
	}
	return out
}

func defaultKey(ev *Event) (key, by string) {
	if exs := realExceptions(ev); len(exs) > 0 {
		var b strings.Builder
		b.WriteString("exception")
		for _, ex := range exs {
			b.WriteString("\x00type=")
			b.WriteString(ex.Type)
			frames := inAppFrames(ex.Frames)
			if len(frames) == 0 {
				b.WriteString("\x00value=")
				b.WriteString(normalizeMessage(ex.Value))
				continue
			}
			for _, f := range frames {
				b.WriteString("\x00")
				b.WriteString(frameModule(f))
				b.WriteString(":")
				b.WriteString(normalizeFunction(f.Function))
			}
		}
		return b.String(), "exception"
	}
	return "message\x00" + normalizeMessage(ev.Message), "message"
}

// inAppFrames returns the frames marked in-app; when the SDK marked none
// (or all as not in-app), every frame counts.
func inAppFrames(frames []Frame) []Frame {
	var out []Frame
	for _, f := range frames {
		if f.InApp != nil && *f.InApp {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return frames
	}
	return out
}

// releaseDir matches the part of a path that changes with every release of
// a pier app, so a file keeps its identity across deploys.
var releaseDir = regexp.MustCompile(`^.*/releases/v[0-9]+/`)

// frameModule names a frame's module: the SDK's module, else its file with
// the release directory stripped.
func frameModule(f Frame) string {
	if f.Module != "" {
		return f.Module
	}
	p := f.Filename
	if p == "" {
		p = f.AbsPath
	}
	if s := releaseDir.ReplaceAllString(p, ""); s != p {
		return s
	}
	if strings.Contains(p, "/node_modules/") {
		return "node_modules/" + p[strings.LastIndex(p, "/node_modules/")+len("/node_modules/"):]
	}
	return path.Base(p)
}

var anonFunc = regexp.MustCompile(`\.func[0-9]+(\.[0-9]+)*$|<anonymous>|\$[0-9]+$`)

func normalizeFunction(fn string) string {
	return anonFunc.ReplaceAllString(fn, "<anon>")
}

var (
	reUUID = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	reHex  = regexp.MustCompile(`\b(0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b0x[0-9a-fA-F]+\b`)
	reNum  = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`)
)

// normalizeMessage blanks what varies between occurrences of one message:
// UUIDs, hex ids and numbers.
func normalizeMessage(s string) string {
	s = strings.TrimSpace(firstLine(s))
	s = reUUID.ReplaceAllString(s, "<uuid>")
	s = reHex.ReplaceAllString(s, "<hex>")
	s = reNum.ReplaceAllString(s, "<n>")
	return s
}

// titleOf is the issue's one-line title ("ValueError: boom") and culprit
// (the innermost in-app frame, "app.py in handler").
func titleOf(ev *Event) (title, culprit string) {
	if exs := realExceptions(ev); len(exs) > 0 {
		ex := exs[len(exs)-1]
		title = ex.Type
		if v := firstLine(ex.Value); v != "" {
			if title != "" {
				title += ": "
			}
			title += v
		}
		if frames := inAppFrames(ex.Frames); len(frames) > 0 {
			f := frames[len(frames)-1]
			culprit = frameModule(f)
			if f.Function != "" {
				culprit += " in " + f.Function
			}
		}
	}
	if title == "" {
		title = firstLine(ev.Message)
	}
	if title == "" {
		title = "<no message>"
	}
	if culprit == "" {
		culprit = ev.Transaction
	}
	return clip(title, 200), clip(culprit, 200)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}
