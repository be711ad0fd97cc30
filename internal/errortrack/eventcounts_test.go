package errortrack

import (
	"fmt"
	"testing"
	"time"
)

// TestEventCounts sends events to two apps through the real ingestion and
// checks the per-app counts the metrics service reads.
func TestEventCounts(t *testing.T) {
	e := newEnv(t, nil)
	if got := e.tr.EventCounts(); len(got) != 0 {
		t.Fatalf("counts before any event: %v", got)
	}
	send := func(app string, n int) {
		e.dsn(app) // makes the app's project
		p := e.project(app)
		for range n {
			if code, _, body := e.post(fmt.Sprintf("/api/%d/store/", p.ID), []byte(sampleEvent), e.authHeader(app)); code != 200 {
				t.Fatalf("send an event for %s: %d %s", app, code, body)
			}
		}
	}
	send("blog", 3)
	send("shop", 1)
	want := map[string]int64{"blog": 3, "shop": 1}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.tr.EventCounts()
		if got["blog"] == want["blog"] && got["shop"] == want["shop"] && len(got) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event counts %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	send("blog", 2)
	e.waitIssues("blog", "5 events", func(is []Issue) bool { return totalCount(is) == 5 })
	if got := e.tr.EventCounts()["blog"]; got != 5 {
		t.Fatalf("blog's count %d after 5 events", got)
	}
}
