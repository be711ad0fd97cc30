package errortrack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"pier/internal/store"
)

func testIssueID(i int) string { return fmt.Sprintf("%012x", i) }

// TestIndexPage: pages follow last seen (newest first, ties by id), filter
// by status, resume after a cursor even when the issue it names has moved,
// and a stale revision changes nothing.
func TestIndexPage(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	x := newIssueIndex()
	// Issue i last seen at base+i minutes; every third one resolved; 5 and
	// 6 seen at the same instant.
	for i := 1; i <= 10; i++ {
		st := Unresolved
		if i%3 == 0 {
			st = Resolved
		}
		seen := base.Add(time.Duration(i) * time.Minute)
		if i == 6 {
			seen = base.Add(5 * time.Minute)
		}
		x.put("app", testIssueID(i), indexedIssue{Status: st, LastSeen: seen, Count: int64(i)}, uint64(i))
	}
	x.put("other", testIssueID(99), indexedIssue{Status: Unresolved, LastSeen: base}, 100)

	ids := func(nums ...int) []string {
		var out []string
		for _, n := range nums {
			out = append(out, testIssueID(n))
		}
		return out
	}
	at := func(minute, id int) *cursor {
		return &cursor{lastSeen: base.Add(time.Duration(minute) * time.Minute).UnixNano(), id: testIssueID(id)}
	}
	tests := []struct {
		name     string
		status   Status
		from     *cursor
		limit    int
		want     []string
		wantNext *cursor
	}{
		{"first page", "all", nil, 4, ids(10, 9, 8, 7), at(7, 7)},
		{"second page", "all", at(7, 7), 4, ids(5, 6, 4, 3), at(3, 3)},
		{"last page", "all", at(3, 3), 4, ids(2, 1), nil},
		{"exactly the rest", "all", at(3, 3), 2, ids(2, 1), nil},
		{"tie broken by id", "all", at(5, 5), 1, ids(6), at(5, 6)},
		{"unresolved", Unresolved, nil, 3, ids(10, 8, 7), at(7, 7)},
		{"unresolved after", Unresolved, at(7, 7), 10, ids(5, 4, 2, 1), nil},
		{"resolved", Resolved, nil, 10, ids(9, 6, 3), nil},
		{"ignored", Ignored, nil, 10, nil, nil},
		{"cursor between issues", "all", &cursor{lastSeen: base.Add(150 * time.Second).UnixNano(), id: testIssueID(0)}, 10, ids(2, 1), nil},
		{"cursor past the end", "all", at(0, 0), 10, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next := x.page("app", tt.status, tt.from, tt.limit)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if fmt.Sprint(next) != fmt.Sprint(tt.wantNext) {
				t.Errorf("next: got %v, want %v", next, tt.wantNext)
			}
		})
	}

	// Issue 2 gets an event: it moves to the front; a page resumed from a
	// cursor taken before does not show it again.
	x.put("app", testIssueID(2), indexedIssue{Status: Unresolved, LastSeen: base.Add(time.Hour), Count: 3}, 20)
	if got, _ := x.page("app", "all", nil, 2); !slices.Equal(got, ids(2, 10)) {
		t.Errorf("after a new event: first page %q", got)
	}
	if got, _ := x.page("app", "all", at(3, 3), 10); !slices.Equal(got, ids(1)) {
		t.Errorf("after a new event: page after the old cursor %q", got)
	}
	// An older revision (a watch update behind a direct one) changes nothing.
	x.put("app", testIssueID(2), indexedIssue{Status: Resolved, LastSeen: base.Add(2 * time.Minute)}, 19)
	if got, _ := x.page("app", Resolved, nil, 10); !slices.Equal(got, ids(9, 6, 3)) {
		t.Errorf("stale revision applied: resolved %q", got)
	}
	x.remove("app", testIssueID(10), 5) // older than the entry: ignored
	x.remove("app", testIssueID(9), 0)
	c := x.counts("app")
	if want := (Counts{Issues: 9, Unresolved: 7, Resolved: 2, Events: 1 + 3 + 3 + 4 + 5 + 6 + 7 + 8 + 10}); c != want {
		t.Errorf("counts: got %+v, want %+v", c, want)
	}
	if app, ok := x.app(testIssueID(99)); !ok || app != "other" {
		t.Errorf("app of 99: %q %v", app, ok)
	}
	x.dropApp("other")
	if _, ok := x.app(testIssueID(99)); ok {
		t.Error("dropped app's issue still indexed")
	}
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in      string
		want    cursor
		wantErr bool
	}{
		{in: "1767225600000000000-00000000000a", want: cursor{1767225600000000000, "00000000000a"}},
		{in: "-5-00000000000a", wantErr: true},
		{in: "0-00000000000a", want: cursor{0, "00000000000a"}},
		{in: "", wantErr: true},
		{in: "12", wantErr: true},
		{in: "x-00000000000a", wantErr: true},
		{in: "1-zz", wantErr: true},
		{in: "1-00000000000a-1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseCursor(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && got != tt.want) {
			t.Errorf("parseCursor(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("cursor %q prints as %q", tt.in, got.String())
		}
	}
}

// putIssues writes n issues of app straight into the bucket, issue i last
// seen at base+i seconds, every tenth resolved.
func putIssues(t testing.TB, ctx context.Context, b *store.Bucket, app string, from, n int, base time.Time) {
	t.Helper()
	for i := from; i < from+n; i++ {
		st := Unresolved
		if i%10 == 0 {
			st = Resolved
		}
		is := Issue{ID: testIssueID(i), App: app, Title: fmt.Sprintf("E%d", i), Status: st, Count: 2,
			FirstSeen: base, LastSeen: base.Add(time.Duration(i) * time.Second)}
		if _, err := store.PutJSON(ctx, b, issueKey(app, is.ID), is); err != nil {
			t.Fatal(err)
		}
	}
}

// listAll pages through app's issues with status and limit, following
// X-Next-Cursor, and returns the ids in order and the number of pages.
func (e *env) listAll(app, status string, limit int) ([]string, int) {
	e.t.Helper()
	var ids []string
	cur, pages := "", 0
	for {
		resp, err := http.Get(fmt.Sprintf("%s/v1/apps/%s/errors?status=%s&limit=%d&cursor=%s", e.srv.URL, app, status, limit, cur))
		if err != nil {
			e.t.Fatal(err)
		}
		var page []Issue
		if resp.StatusCode != 200 {
			e.t.Fatalf("page %d: %d", pages+1, resp.StatusCode)
		}
		decodeJSON(e.t, resp, &page)
		pages++
		for _, is := range page {
			ids = append(ids, is.ID)
		}
		cur = resp.Header.Get("X-Next-Cursor")
		if cur == "" {
			return ids, pages
		}
		if len(page) != limit {
			e.t.Fatalf("page %d has %d issues and a next cursor; want %d", pages, len(page), limit)
		}
	}
}

// TestListManyIssues: with 25,000 issues (20,000 there when the tracker
// starts, read into the index once, 5,000 written while it runs and
// followed by its watch) the API lists every one exactly once, most
// recently seen first, in pages of the size asked; status filters and
// counts agree; bad parameters are 400.
func TestListManyIssues(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 25,000 issues")
	}
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	func() { // a first tracker makes the project; the issues go in behind its back
		e := startEnv(t, dir, nil)
		e.dsn("big")
		e.dsn("small")
		putIssues(t, t.Context(), e.tr.st.issues, "big", 0, 20000, base)
		e.srv.Close()
		e.st.Close()
	}()
	e := startEnv(t, dir, nil)
	putIssues(t, t.Context(), e.tr.st.issues, "big", 20000, 5000, base)
	putIssues(t, t.Context(), e.tr.st.issues, "small", 0, 3, base)

	var c Counts
	deadline := time.Now().Add(30 * time.Second)
	for c.Issues != 25000 && time.Now().Before(deadline) {
		e.getJSON("/v1/apps/big/errors/counts", &c)
		time.Sleep(20 * time.Millisecond)
	}
	if want := (Counts{Issues: 25000, Unresolved: 22500, Resolved: 2500, Events: 50000}); c != want {
		t.Fatalf("counts: got %+v, want %+v", c, want)
	}

	ids, pages := e.listAll("big", "all", 1000)
	if len(ids) != 25000 || pages != 25 {
		t.Fatalf("listed %d issues in %d pages, want 25000 in 25", len(ids), pages)
	}
	for i, id := range ids {
		if want := testIssueID(24999 - i); id != want {
			t.Fatalf("issue %d of the listing is %s, want %s (newest first)", i, id, want)
		}
	}
	resolved, _ := e.listAll("big", "resolved", 300)
	if len(resolved) != 2500 || resolved[0] != testIssueID(24990) || resolved[2499] != testIssueID(0) {
		t.Errorf("resolved: %d issues, first %s", len(resolved), resolved[0])
	}
	var first []Issue
	e.getJSON("/v1/apps/big/errors", &first)
	if len(first) != defaultPageSize || first[0].ID != testIssueID(24999) || first[0].Status != Unresolved {
		t.Errorf("default page: %d issues", len(first))
	}
	if small, _ := e.listAll("small", "all", 1000); len(small) != 3 {
		t.Errorf("another app: %q", small)
	}

	// Resolving shows at once in the listings; a dropped issue is gone.
	if _, err := e.tr.SetStatus(t.Context(), "big", testIssueID(24999), Resolved); err != nil {
		t.Fatal(err)
	}
	var top []Issue
	e.getJSON("/v1/apps/big/errors?status=resolved&limit=1", &top)
	if len(top) != 1 || top[0].ID != testIssueID(24999) {
		t.Errorf("just resolved, first resolved issue: %+v", top)
	}
	if err := e.tr.st.dropIssue(t.Context(), "big", testIssueID(24998)); err != nil {
		t.Fatal(err)
	}
	e.getJSON("/v1/apps/big/errors?limit=1", &top)
	if len(top) != 1 || top[0].ID != testIssueID(24997) {
		t.Errorf("after a drop, first unresolved issue: %+v", top)
	}

	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=abc", "cursor=1-nothex", "status=open"} {
		if code := e.getJSON("/v1/apps/big/errors?"+q, nil); code != 400 {
			t.Errorf("?%s: got %d, want 400", q, code)
		}
	}
	if code := e.getJSON("/v1/apps/nope/errors/counts", nil); code != 404 {
		t.Errorf("counts of an unknown app: got %d, want 404", code)
	}
}

// BenchmarkList compares, on one store with 20,000 issues of an app, a
// page of 100 from the index with what listing did before it: read every
// issue key of the app, then sort (go test -bench List -benchtime 5x).
func BenchmarkList(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tr, err := New(Options{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Start(ctx); err != nil {
		b.Fatal(err)
	}
	putIssues(b, ctx, tr.st.issues, "big", 0, 20000, time.Now().Add(-time.Hour))
	for tr.st.idx.counts("big").Issues < 20000 {
		time.Sleep(10 * time.Millisecond)
	}
	b.Run("index page of 100", func(b *testing.B) {
		for b.Loop() {
			page, _, err := tr.st.listIssues(ctx, "big", "all", &cursor{lastSeen: time.Now().UnixNano(), id: strings.Repeat("0", 12)}, 100)
			if err != nil || len(page) != 100 {
				b.Fatal(len(page), err)
			}
		}
	})
	b.Run("every key, sorted", func(b *testing.B) {
		for b.Loop() {
			keys, err := tr.st.issues.Keys(ctx, "big.*")
			if err != nil {
				b.Fatal(err)
			}
			all := make([]Issue, 0, len(keys))
			for _, k := range keys {
				var is Issue
				if _, err := store.GetJSON(ctx, tr.st.issues, k, &is); err != nil {
					b.Fatal(err)
				}
				all = append(all, is)
			}
			slices.SortFunc(all, func(a, b Issue) int { return b.LastSeen.Compare(a.LastSeen) })
			if len(all) != 20000 {
				b.Fatal(len(all))
			}
		}
	})
}

func decodeJSON(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", resp.Request.URL, err)
	}
}
