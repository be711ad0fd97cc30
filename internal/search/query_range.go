package search

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2/search/query"
)

// bound is one end of a range.
type bound struct {
	value     any
	inclusive bool
	set       bool
}

func (t *translator) rangeQuery(body any) (query.Query, error) {
	field, _, opts, err := rangeParams(body)
	if err != nil {
		return nil, err
	}
	var lo, hi bound
	for k, v := range opts {
		switch k {
		case "gte", "gt", "from":
			lo = bound{value: v, inclusive: k != "gt", set: v != nil}
		case "lte", "lt", "to":
			hi = bound{value: v, inclusive: k != "lt", set: v != nil}
		}
	}
	if v, ok := opts["include_lower"]; ok && lo.set {
		lo.inclusive = v == true
	}
	if v, ok := opts["include_upper"]; ok && hi.set {
		hi.inclusive = v == true
	}
	if _, ok := opts["time_zone"]; ok {
		return nil, unsupported("[time_zone] in range queries (dates are UTC)")
	}
	if r, ok := opts["relation"]; ok && r != "INTERSECTS" && r != "intersects" {
		return nil, unsupported("range [relation] %v", r)
	}
	p := t.m.Mapping.field(field)
	if p == nil {
		return query.NewMatchNoneQuery(), nil
	}
	if !lo.set && !hi.set {
		return t.exists(map[string]any{"field": field})
	}
	var q query.FieldableQuery
	switch p.kind() {
	case kindNumber:
		var min, max *float64
		if lo.set {
			n, err := toNumber(lo.value)
			if err != nil {
				return nil, badRequest("query_shard_exception", "[range] bound [%v] of field [%s] is not a number", lo.value, field)
			}
			min = &n
		}
		if hi.set {
			n, err := toNumber(hi.value)
			if err != nil {
				return nil, badRequest("query_shard_exception", "[range] bound [%v] of field [%s] is not a number", hi.value, field)
			}
			max = &n
		}
		q = query.NewNumericRangeInclusiveQuery(min, max, &lo.inclusive, &hi.inclusive)
	case kindDate:
		format, _ := opts["format"].(string)
		if format == "" {
			format = p.Format
		}
		var start, end time.Time
		if lo.set {
			// gt rounds up, gte down: Elasticsearch's rounding rules
			if start, err = dateMath(lo.value, format, t.now, !lo.inclusive); err != nil {
				return nil, err
			}
		}
		if hi.set {
			if end, err = dateMath(hi.value, format, t.now, hi.inclusive); err != nil {
				return nil, err
			}
		}
		q = query.NewDateRangeInclusiveQuery(start, end, &lo.inclusive, &hi.inclusive)
	case kindText, kindKeyword:
		var min, max string
		if lo.set {
			min = scalarString(lo.value)
		}
		if hi.set {
			max = scalarString(hi.value)
		}
		q = query.NewTermRangeInclusiveQuery(min, max, &lo.inclusive, &hi.inclusive)
	default:
		return nil, badRequest("query_shard_exception", "[range] cannot apply to field [%s] of type [%s]", field, p.Type)
	}
	q.SetField(field)
	return boost(q, opts)
}

func rangeParams(body any) (string, any, map[string]any, error) {
	obj, ok := body.(map[string]any)
	if !ok || len(obj) == 0 {
		return "", nil, nil, parsingError("[range] query malformed, no start_object after query name")
	}
	var field string
	var opts map[string]any
	for k, v := range obj {
		if k == "boost" || k == "_name" {
			continue
		}
		if field != "" {
			return "", nil, nil, parsingError("[range] query doesn't support multiple fields, found [%s] and [%s]", field, k)
		}
		inner, ok := v.(map[string]any)
		if !ok {
			return "", nil, nil, parsingError("[range] query malformed, field [%s] must hold an object", k)
		}
		field, opts = k, inner
		for ik := range inner {
			switch ik {
			case "gte", "gt", "lte", "lt", "from", "to", "include_lower", "include_upper", "format", "boost", "time_zone", "relation", "_name":
			default:
				return "", nil, nil, parsingError("[range] query does not support [%s]", ik)
			}
		}
	}
	if field == "" {
		return "", nil, nil, parsingError("[range] query requires a field")
	}
	return field, nil, opts, nil
}

// dateMath evaluates an Elasticsearch date expression: a date, or "now",
// or "<date>||", followed by +N<unit>, -N<unit> and /<unit> rounding
// (units y M w d h H m s). roundUp rounds to the last millisecond of the
// unit, as Elasticsearch does for gt and lte.
func dateMath(v any, format string, now time.Time, roundUp bool) (time.Time, error) {
	s := strings.TrimSpace(scalarString(v))
	var t time.Time
	var rest string
	switch {
	case strings.HasPrefix(s, "now"):
		t, rest = now.UTC(), s[3:]
	case strings.Contains(s, "||"):
		anchor, r, _ := strings.Cut(s, "||")
		d, err := parseDate(anchor, format)
		if err != nil {
			return time.Time{}, parsingError("failed to parse date field [%s]: %v", s, err)
		}
		t, rest = d, r
	default:
		d, err := parseDate(s, format)
		if err != nil {
			return time.Time{}, parsingError("failed to parse date field [%s] with format [%s]", s, orDefault(format, "strict_date_optional_time||epoch_millis"))
		}
		return d, nil
	}
	for rest != "" {
		op := rest[0]
		rest = rest[1:]
		switch op {
		case '+', '-':
			i := 0
			for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
				i++
			}
			n := 1
			if i > 0 {
				n, _ = strconv.Atoi(rest[:i])
			}
			if i >= len(rest) {
				return time.Time{}, parsingError("date math [%s]: missing unit", s)
			}
			if op == '-' {
				n = -n
			}
			var err error
			if t, err = addUnit(t, rest[i], n); err != nil {
				return time.Time{}, parsingError("date math [%s]: %v", s, err)
			}
			rest = rest[i+1:]
		case '/':
			if rest == "" {
				return time.Time{}, parsingError("date math [%s]: missing rounding unit", s)
			}
			var err error
			if t, err = roundDown(t, rest[0]); err != nil {
				return time.Time{}, parsingError("date math [%s]: %v", s, err)
			}
			if roundUp {
				next, _ := addUnit(t, rest[0], 1)
				t = next.Add(-time.Millisecond)
			}
			rest = rest[1:]
		default:
			return time.Time{}, parsingError("date math [%s]: unexpected [%c]", s, op)
		}
	}
	return t, nil
}

func addUnit(t time.Time, unit byte, n int) (time.Time, error) {
	switch unit {
	case 'y':
		return t.AddDate(n, 0, 0), nil
	case 'M':
		return t.AddDate(0, n, 0), nil
	case 'w':
		return t.AddDate(0, 0, 7*n), nil
	case 'd':
		return t.AddDate(0, 0, n), nil
	case 'h', 'H':
		return t.Add(time.Duration(n) * time.Hour), nil
	case 'm':
		return t.Add(time.Duration(n) * time.Minute), nil
	case 's':
		return t.Add(time.Duration(n) * time.Second), nil
	}
	return t, fmt.Errorf("unknown unit [%c]", unit)
}

func roundDown(t time.Time, unit byte) (time.Time, error) {
	y, mo, d := t.Date()
	switch unit {
	case 'y':
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), nil
	case 'M':
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC), nil
	case 'w':
		day := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7)), nil // weeks start on Monday
	case 'd':
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC), nil
	case 'h', 'H':
		return t.Truncate(time.Hour), nil
	case 'm':
		return t.Truncate(time.Minute), nil
	case 's':
		return t.Truncate(time.Second), nil
	}
	return t, fmt.Errorf("unknown unit [%c]", unit)
}
