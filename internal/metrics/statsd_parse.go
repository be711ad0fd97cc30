package metrics

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Kinds of statsd samples.
const (
	KindCounter = 'c'
	KindGauge   = 'g'
	KindTimer   = 't' // "ms", "h" (histogram) and "d" (distribution)
	KindSet     = 's'
)

// Sample is one statsd value.
type Sample struct {
	Name  string
	Kind  byte
	Value float64 // not used by sets
	Delta bool    // a gauge given as "+N" or "-N" changes the current value
	Set   string  // the member, for sets
	Rate  float64 // sample rate in (0, 1]; 1 when not given
	Tags  []string
}

// errBadLine is wrapped by every parse error.
var errBadLine = errors.New("statsd: bad line")

func bad(why string) error { return errors.Join(errBadLine, errors.New(why)) }

// ParseLine parses one statsd line (no newline) in the etsy form
// `name:value|type[|@rate]` with the DogStatsD extensions: `|#tag:v,tag2`
// tags, several values in one line (`name:1:2:3|d`), and fields it ignores
// (`|c:container`, `|T<timestamp>`). Types: c, g (with +/- for a change),
// ms, h, d, s. DogStatsD events (`_e{`) and service checks (`_sc|`) are
// skipped without error. fn is called for each value; nothing is called
// when the line is bad.
func ParseLine(line []byte, fn func(Sample)) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil
	}
	if bytes.HasPrefix(line, []byte("_e{")) || bytes.HasPrefix(line, []byte("_sc|")) {
		return nil
	}
	head, rest, ok := bytes.Cut(line, []byte("|"))
	if !ok {
		return bad("no |type")
	}
	name, values, ok := bytes.Cut(head, []byte(":"))
	if !ok {
		return bad("no :value")
	}
	if err := validName(name); err != nil {
		return err
	}
	typ, rest, _ := bytes.Cut(rest, []byte("|"))
	var kind byte
	switch string(typ) {
	case "c":
		kind = KindCounter
	case "g":
		kind = KindGauge
	case "ms", "h", "d":
		kind = KindTimer
	case "s":
		kind = KindSet
	default:
		return bad("unknown type " + strconv.Quote(string(typ)))
	}
	s := Sample{Name: string(name), Kind: kind, Rate: 1}
	for len(rest) > 0 {
		var field []byte
		field, rest, _ = bytes.Cut(rest, []byte("|"))
		switch {
		case len(field) == 0:
			return bad("empty field")
		case field[0] == '@':
			r, err := strconv.ParseFloat(string(field[1:]), 64)
			if err != nil || !(r > 0 && r <= 1) {
				return bad("sample rate must be in (0, 1]")
			}
			s.Rate = r
		case field[0] == '#':
			for t := range strings.SplitSeq(string(field[1:]), ",") {
				if t = strings.TrimSpace(t); t != "" {
					s.Tags = append(s.Tags, t)
				}
			}
		default:
			// container id (c:), timestamp (T), external data (e:): not used
		}
	}
	slices.Sort(s.Tags)
	s.Tags = slices.Compact(s.Tags)
	if kind == KindSet {
		if len(values) == 0 {
			return bad("empty set member")
		}
		s.Set = string(values)
		fn(s)
		return nil
	}
	// Parse every value before calling fn: a bad line yields nothing.
	var vals [8]float64
	parsed := vals[:0]
	for v := range bytes.SplitSeq(values, []byte(":")) {
		if kind == KindGauge && len(v) > 0 && (v[0] == '+' || v[0] == '-') {
			s.Delta = true
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || f != f || f > 1e300 || f < -1e300 {
			return bad("value is not a number")
		}
		parsed = append(parsed, f)
	}
	if len(parsed) > 1 && kind == KindGauge {
		s.Delta = false // several gauge values: the last one wins
	}
	for _, f := range parsed {
		s.Value = f
		fn(s)
	}
	return nil
}

func validName(name []byte) error {
	if len(name) == 0 {
		return bad("empty name")
	}
	if len(name) > 200 {
		return bad("name longer than 200 bytes")
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f || c == '#' || c == '@' {
			return bad("name has a control, space, # or @ character")
		}
	}
	return nil
}

// ParsePacket parses a datagram of newline-separated lines, calling fn for
// each value, and returns how many lines were bad.
func ParsePacket(p []byte, fn func(Sample)) (badLines int) {
	for line := range bytes.SplitSeq(p, []byte("\n")) {
		if err := ParseLine(line, fn); err != nil {
			badLines++
		}
	}
	return badLines
}
