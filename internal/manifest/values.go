package manifest

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Names, with the rule a person reads when one is wrong.
var (
	appNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)
	processRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,29}$`)
	queueRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	envRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const (
	appNameRule = "use lower-case letters, digits and '-', starting with a letter and not ending with '-', at most 40 characters"
	processRule = "use lower-case letters, digits, '_' and '-', starting with a letter, at most 30 characters"
	queueRule   = "use lower-case letters, digits, '_' and '-', starting with a letter, at most 64 characters"
)

// checkAppName returns what is wrong with an app name, or "".
func checkAppName(s string) string {
	if !appNameRE.MatchString(s) || strings.HasSuffix(s, "-") {
		return fmt.Sprintf("invalid app name %q: %s", s, appNameRule)
	}
	return ""
}

// checkEnvName returns what is wrong with a config var name, or "".
func checkEnvName(s string) string {
	switch {
	case !envRE.MatchString(s):
		return fmt.Sprintf("invalid variable name %q: use letters, digits and '_', not starting with a digit", s)
	case s == "PORT":
		return "PORT is set by pier for each web instance"
	case strings.HasPrefix(s, "PIER_"):
		return "names starting with PIER_ are reserved for pier"
	}
	return ""
}

// CheckDomain lower-cases a host name or "*.suffix" wildcard as the
// manifest's domains: list does, or says what is wrong with it.
func CheckDomain(s string) (string, error) {
	host, msg := checkDomain(s)
	if msg != "" {
		return "", fmt.Errorf("invalid domain %q: %s", s, msg)
	}
	return host, nil
}

// checkDomain lower-cases a host name or "*.suffix" wildcard and returns what
// is wrong with it, if anything.
func checkDomain(s string) (host, msg string) {
	host = strings.ToLower(s)
	switch {
	case host == "":
		return "", "must not be empty"
	case strings.Contains(host, "://"):
		return "", "write the host name alone, without a scheme"
	case strings.ContainsAny(host, "/?#"):
		return "", "write the host name alone, without a path"
	case strings.Contains(host, ":"):
		return "", "write the host name alone, without a port"
	case len(host) > 253:
		return "", "longer than 253 characters"
	}
	name := strings.TrimPrefix(host, "*.")
	if strings.Contains(name, "*") {
		return "", `a wildcard is only allowed as a leading "*."`
	}
	for _, label := range strings.Split(name, ".") {
		switch {
		case label == "":
			return "", "empty label"
		case len(label) > 63:
			return "", fmt.Sprintf("label %q is longer than 63 characters", label)
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", fmt.Sprintf("label %q starts or ends with '-'", label)
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			case r > 0x7f:
				return "", "write international names in their xn-- (punycode) form"
			default:
				return "", fmt.Sprintf("label %q has %q; use letters, digits and '-'", label, r)
			}
		}
	}
	return host, ""
}

// checkPrefix returns what is wrong with a URL path, or "". With wildcard, a
// single trailing "*" is allowed.
func checkPrefix(s string, wildcard bool) string {
	if !strings.HasPrefix(s, "/") {
		return `must start with "/"`
	}
	trimmed := s
	if wildcard {
		trimmed = strings.TrimSuffix(s, "*")
	}
	for _, r := range trimmed {
		switch {
		case r == '*' && wildcard:
			return `"*" is only allowed at the end`
		case r == '*':
			return `"*" is not allowed here`
		case r <= ' ' || r == 0x7f:
			return "must not contain spaces or control characters"
		case r == '?' || r == '#':
			return "must be a path alone, without a query or fragment"
		}
	}
	for _, seg := range strings.Split(trimmed, "/") {
		if seg == "." || seg == ".." {
			return `must not contain "." or ".." segments`
		}
	}
	return ""
}

// checkDir cleans a directory relative to the app root and returns what is
// wrong with it, if anything.
func checkDir(s string) (clean, msg string) {
	switch {
	case strings.TrimSpace(s) == "":
		return "", "must not be empty"
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, `\`) || len(s) > 1 && s[1] == ':':
		return "", "must be relative to the app root"
	case strings.ContainsRune(s, 0):
		return "", "must not contain NUL"
	}
	clean = path.Clean(s)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", "must stay inside the app directory"
	}
	return clean, ""
}

// memoryUnits are binary, whichever spelling is used: 1K = 1KB = 1KiB = 1024.
var memoryUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// parseMemory reads a size: plain bytes, or a number with a unit such as
// 512K, 256M, 256MB, 1G, 1GiB, 1.5G.
func parseMemory(s string) (int64, string) {
	bad := fmt.Sprintf("invalid size %q (want e.g. 256M, 1GiB or bytes)", s)
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := memoryUnits[unit]
	if !ok || num == "" {
		return 0, bad
	}
	var n int64
	if !strings.Contains(num, ".") {
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil || v > math.MaxInt64/mult {
			return 0, "too large"
		}
		n = v * mult
	} else {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, bad
		}
		if f*float64(mult) >= math.MaxInt64 {
			return 0, "too large"
		}
		n = int64(f * float64(mult))
	}
	if n <= 0 {
		return 0, "must be positive"
	}
	return n, ""
}

// parseRate reads "50/s", "100/m", "5/h" or a plain number per second.
func parseRate(s string) (float64, string) {
	bad := fmt.Sprintf("invalid rate %q (want e.g. 50/s, 100/m or 5/h)", s)
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	per := map[string]float64{"": 1, "s": 1, "m": 60, "h": 3600}[unit]
	if per == 0 {
		return 0, bad
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, bad
	}
	if f <= 0 {
		return 0, "must be positive"
	}
	return f / per, ""
}

// cronDescriptors are the schedules written as a single word.
var cronDescriptors = map[string]bool{
	"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true,
	"@daily": true, "@midnight": true, "@hourly": true,
}

// checkSchedule checks the shape of a cron schedule — field count and
// characters — and returns what is wrong, or "". The tasks part parses it.
func checkSchedule(s string) string {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "@") {
		if every, ok := strings.CutPrefix(t, "@every"); ok {
			d, err := time.ParseDuration(strings.TrimSpace(every))
			if err != nil || d <= 0 {
				return "@every needs a positive duration, e.g. @every 1m"
			}
			return ""
		}
		if !cronDescriptors[t] {
			return "unknown descriptor; use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>"
		}
		return ""
	}
	fields := strings.Fields(t)
	if len(fields) != 5 && len(fields) != 6 {
		return fmt.Sprintf("want 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; got %d", len(fields))
	}
	for _, f := range fields {
		for _, r := range f {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || strings.ContainsRune("*/,-?", r)) {
				return fmt.Sprintf("field %q has %q", f, r)
			}
		}
	}
	return ""
}
