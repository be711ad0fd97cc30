package errortrack

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRetentionByAge: each app keeps its events for its own retention (the
// engine's, or its config's retention_days); older events leave the store
// while their issue keeps counting them; an issue last seen longer ago
// than the retention goes; other apps keep theirs.
func TestRetentionByAge(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxAge = time.Hour })
	for _, app := range []string{"short", "long"} {
		e.dsn(app)
	}
	// "long" keeps its events a day instead of the engine's hour.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/apps/long/errors/config", strings.NewReader(`{"retention_days":1}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("put config: %v %v", resp, err)
	}
	send := func(app, typ string, ts time.Time) {
		t.Helper()
		ev := fmt.Sprintf(`{"exception":[{"type":%q,"value":"x"}],"timestamp":%q}`, typ, ts.Format(time.RFC3339Nano))
		if code, _, body := e.post(e.envelopePath(app), envelope(ev), e.authHeader(app)); code != 200 {
			t.Fatalf("%s: %d %s", app, code, body)
		}
	}
	now := time.Now()
	for _, app := range []string{"short", "long"} {
		send(app, "Old", now)
		send(app, "Old", now)
		// Seen last three hours ago (the SDK's timestamp): past the hour.
		send(app, "Stale", now.Add(-3*time.Hour))
	}
	time.Sleep(10 * time.Millisecond) // the events above are stored strictly before mid
	mid := time.Now()
	time.Sleep(10 * time.Millisecond)
	for _, app := range []string{"short", "long"} {
		send(app, "Old", time.Now()) // last seen after mid
		e.waitIssues(app, "4 events", func(is []Issue) bool { return totalCount(is) == 4 })
	}
	// An hour after mid, the events stored before mid are past the hour
	// (the event stored after, and its issue last seen then, are not).
	if err := e.tr.sweepAt(t.Context(), mid.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	short := e.issues("short")
	if len(short) != 1 || short[0].Title != "Old: x" || short[0].Count != 3 {
		t.Fatalf("short: want only the issue seen now, with its 3 events counted; got %+v", short)
	}
	if d := e.show("short", short[0].ID, 100); len(d.Events) != 1 {
		t.Errorf("short: %d events kept, want the 1 stored after the cutoff", len(d.Events))
	}
	long := e.issues("long")
	if len(long) != 2 || totalCount(long) != 4 {
		t.Fatalf("long (retention one day): want both issues, 4 events; got %+v", long)
	}
	if d := e.show("long", byTitle(long, "Old").ID, 100); len(d.Events) != 3 {
		t.Errorf("long: %d events kept, want 3", len(d.Events))
	}
	var c Counts
	e.getJSON("/v1/apps/short/errors/counts", &c)
	if c.Issues != 1 || c.Events != 3 {
		t.Errorf("short counts %+v", c)
	}

	// New events still arrive and count after a sweep.
	send("short", "Old", time.Now())
	e.waitIssues("short", "4 events", func(is []Issue) bool { return totalCount(is) == 4 })

	for _, body := range []string{`{"retention_days":-1}`, `{"retention_days":366}`, `{"max_issues":-2}`} {
		req, _ := http.NewRequest("PUT", e.srv.URL+"/v1/apps/long/errors/config", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("config %s: got %d, want 400", body, resp.StatusCode)
		}
	}
}
