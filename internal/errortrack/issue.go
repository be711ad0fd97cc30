package errortrack

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Status is where an issue stands in its triage.
type Status string

// The statuses of an issue.
const (
	Unresolved Status = "unresolved"
	Resolved   Status = "resolved"
	Ignored    Status = "ignored"
)

// Issue is a group of events with the same grouping key.
type Issue struct {
	ID        string `json:"id"`
	App       string `json:"app"`
	Title     string `json:"title"`
	Culprit   string `json:"culprit,omitempty"`
	Level     string `json:"level,omitempty"`
	Platform  string `json:"platform,omitempty"`
	GroupedBy string `json:"grouped_by"`
	Status    Status `json:"status"`
	// Regression: the issue was resolved and happened again in a newer
	// release. Cleared when it is resolved again.
	Regression bool   `json:"regression,omitempty"`
	ResolvedIn string `json:"resolved_in,omitempty"` // the release it was resolved in
	Count      int64  `json:"count"`
	// Users is how many distinct users met it (counted exactly up to
	// maxUserKeys, then a lower bound).
	Users        int                         `json:"users"`
	UserKeys     []string                    `json:"user_keys,omitempty"`
	FirstSeen    time.Time                   `json:"first_seen"`
	LastSeen     time.Time                   `json:"last_seen"`
	FirstRelease string                      `json:"first_release,omitempty"`
	LastRelease  string                      `json:"last_release,omitempty"`
	Environments []string                    `json:"environments,omitempty"`
	Tags         map[string]map[string]int64 `json:"tags,omitempty"` // tag -> value -> count
	LastEventID  string                      `json:"last_event_id,omitempty"`
	LastSeq      uint64                      `json:"last_seq"` // stream sequence of the last event counted
}

// Bounds on what an issue accumulates.
const (
	maxUserKeys     = 1000
	maxEnvironments = 20
	maxTagKeys      = 30
	maxTagValues    = 20
)

// alertKind is why an event makes pier send an alert.
type alertKind string

const (
	alertNone       alertKind = ""
	alertNew        alertKind = "new_issue"
	alertRegression alertKind = "regression"
)

// apply counts ev (stored at stream sequence seq) into the issue and says
// whether it deserves an alert. Events already counted (seq <= LastSeq,
// after a redelivery) change nothing.
func (is *Issue) apply(ev *Event, seq uint64) alertKind {
	if seq != 0 && seq <= is.LastSeq {
		return alertNone
	}
	alert := alertNone
	if is.Count == 0 {
		is.ID, is.App, is.Status = ev.Issue, ev.App, Unresolved
		is.FirstSeen, is.FirstRelease = ev.Timestamp, ev.Release
		alert = alertNew
	}
	if is.Status == Resolved && (is.ResolvedIn == "" || ev.Release == "" || newerRelease(ev.Release, is.ResolvedIn)) {
		is.Status, is.Regression, is.ResolvedIn = Unresolved, true, ""
		alert = alertRegression
	}
	is.Count++
	is.LastSeq = seq
	is.Title, is.Culprit, is.GroupedBy = ev.Title, ev.Culprit, ev.GroupedBy
	is.Level, is.Platform = ev.Level, ev.Platform
	if ev.Timestamp.After(is.LastSeen) || is.LastSeen.IsZero() {
		is.LastSeen = ev.Timestamp
	}
	if ev.Timestamp.Before(is.FirstSeen) {
		is.FirstSeen = ev.Timestamp
	}
	if ev.Release != "" {
		if is.FirstRelease == "" {
			is.FirstRelease = ev.Release
		}
		is.LastRelease = ev.Release
	}
	is.LastEventID = ev.ID
	if ev.Environment != "" && !slices.Contains(is.Environments, ev.Environment) && len(is.Environments) < maxEnvironments {
		is.Environments = append(is.Environments, ev.Environment)
	}
	if k := ev.User.key(); k != "" {
		h := sha256.Sum256([]byte(k))
		hk := hex.EncodeToString(h[:6])
		if !slices.Contains(is.UserKeys, hk) {
			is.Users++
			if len(is.UserKeys) < maxUserKeys {
				is.UserKeys = append(is.UserKeys, hk)
			}
		}
	}
	for k, v := range ev.Tags {
		if is.Tags == nil {
			is.Tags = map[string]map[string]int64{}
		}
		vals, ok := is.Tags[k]
		if !ok {
			if len(is.Tags) >= maxTagKeys {
				continue
			}
			vals = map[string]int64{}
			is.Tags[k] = vals
		}
		if _, ok := vals[v]; ok || len(vals) < maxTagValues {
			vals[v]++
		}
	}
	return alert
}

// newerRelease reports whether release a comes after b: numerically for
// pier's "v7" and for dotted versions ("1.10.0" > "1.9.2"), and for other
// names whenever they differ.
func newerRelease(a, b string) bool {
	if a == b {
		return false
	}
	pa, oka := versionParts(a)
	pb, okb := versionParts(b)
	if !oka || !okb {
		return true
	}
	return slices.Compare(pa, pb) > 0
}

func versionParts(s string) ([]int, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V")
	if at := strings.LastIndexByte(s, '@'); at >= 0 { // "app@1.2.3"
		s = strings.TrimPrefix(s[at+1:], "v")
	}
	var out []int
	for p := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, len(out) > 0
}
