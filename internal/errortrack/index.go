package errortrack

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"pier/internal/store"
)

// issueIndex orders each app's issues by last seen, so that listing a
// page, counting and retention never read every issue key (an app may
// have tens of thousands). It is derived state: a watch of the
// errors_issues bucket fills it at start (every key once) and then keeps
// it current with every write, whichever node made it, so it is never the
// only copy of anything. Writes this node makes and must read back at once
// (a status change, a dropped issue) are also applied directly; the KV
// revision kept per entry stops a late watch update from undoing them.
type issueIndex struct {
	ready     chan struct{} // closed once the watch delivered the initial values
	readyOnce sync.Once

	mu   sync.RWMutex         // guards apps, apps' contents and appOf
	apps map[string]*appIndex // app -> its issues
	// appOf finds an issue's app by its id alone (ids are hashes of the
	// app and the grouping key, so one id belongs to one app).
	appOf map[string]string
}

// appIndex is one app's issues: order is newest last-seen first, ties by
// id, so a (last seen, id) pair is a stable position for a cursor.
type appIndex struct {
	order []*indexEntry
	byID  map[string]*indexEntry
}

// indexEntry is what the index keeps of an issue (about 100 bytes).
type indexEntry struct {
	id       string
	lastSeen int64 // unix nanoseconds
	status   Status
	count    int64
	rev      uint64 // KV revision this entry reflects
}

// compare orders entries as the index does: seen more recently first,
// then by id.
func (a *indexEntry) compare(b *indexEntry) int {
	if c := cmp.Compare(b.lastSeen, a.lastSeen); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

func newIssueIndex() *issueIndex {
	return &issueIndex{ready: make(chan struct{}), apps: map[string]*appIndex{}, appOf: map[string]string{}}
}

// watch fills the index from the issues bucket and follows it until ctx
// ends; it returns once the initial values are in (or ctx ends).
func (x *issueIndex) watch(ctx context.Context, issues *store.Bucket) error {
	if err := issues.Watch(ctx, ">", x.onEntry); err != nil {
		return err
	}
	select {
	case <-x.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// indexedIssue is the part of an Issue's JSON the index reads.
type indexedIssue struct {
	Status   Status    `json:"status"`
	LastSeen time.Time `json:"last_seen"`
	Count    int64     `json:"count"`
}

func (x *issueIndex) onEntry(e store.Entry) {
	if e.Key == "" { // the initial values are all in
		x.readyOnce.Do(func() { close(x.ready) })
		return
	}
	app, id, ok := strings.Cut(e.Key, ".")
	if !ok {
		return
	}
	if e.Deleted {
		x.remove(app, id, e.Revision)
		return
	}
	var is indexedIssue
	if err := json.Unmarshal(e.Value, &is); err != nil {
		return // unreadable issues are skipped by every reader too
	}
	x.put(app, id, is, e.Revision)
}

// put records an issue's state as of KV revision rev; an older revision
// than the one the index has changes nothing.
func (x *issueIndex) put(app, id string, is indexedIssue, rev uint64) {
	n := &indexEntry{id: id, lastSeen: is.LastSeen.UnixNano(), status: is.Status, count: is.Count, rev: rev}
	x.mu.Lock()
	defer x.mu.Unlock()
	a := x.apps[app]
	if a == nil {
		a = &appIndex{byID: map[string]*indexEntry{}}
		x.apps[app] = a
	}
	if old, ok := a.byID[id]; ok {
		if rev != 0 && rev < old.rev {
			return
		}
		if old.lastSeen == n.lastSeen {
			old.status, old.count, old.rev = n.status, n.count, n.rev
			return
		}
		a.delete(old)
	}
	i, _ := slices.BinarySearchFunc(a.order, n, (*indexEntry).compare)
	a.order = slices.Insert(a.order, i, n)
	a.byID[id] = n
	x.appOf[id] = app
}

// remove drops an issue deleted at KV revision rev (0: whatever the index
// has, for deletes this node just made).
func (x *issueIndex) remove(app, id string, rev uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	a := x.apps[app]
	if a == nil {
		return
	}
	old, ok := a.byID[id]
	if !ok || (rev != 0 && rev < old.rev) {
		return
	}
	a.delete(old)
	delete(a.byID, id)
	delete(x.appOf, id)
	if len(a.order) == 0 {
		delete(x.apps, app)
	}
}

func (a *appIndex) delete(e *indexEntry) {
	if i, ok := slices.BinarySearchFunc(a.order, e, (*indexEntry).compare); ok {
		a.order = slices.Delete(a.order, i, i+1)
	}
}

// dropApp forgets every issue of app.
func (x *issueIndex) dropApp(app string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if a := x.apps[app]; a != nil {
		for id := range a.byID {
			delete(x.appOf, id)
		}
	}
	delete(x.apps, app)
}

// app returns the app of the issue with this id, if the index has it.
func (x *issueIndex) app(id string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	app, ok := x.appOf[id]
	return app, ok
}

// cursor is a position in an app's issue order: after the issue last seen
// at lastSeen with this id. Its text form, "<unix ns>-<id>", is what
// X-Next-Cursor carries and ?cursor= takes; a client may also build it
// from the last issue of a page (last_seen, id).
type cursor struct {
	lastSeen int64
	id       string
}

func (c cursor) String() string { return strconv.FormatInt(c.lastSeen, 10) + "-" + c.id }

func parseCursor(s string) (cursor, error) {
	ns, id, ok := strings.Cut(s, "-")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !validIssueID(id) {
		return cursor{}, fmt.Errorf("cursor %q: want <unix nanoseconds>-<issue id>, as X-Next-Cursor gives it", clip(s, 64))
	}
	return cursor{lastSeen: n, id: id}, nil
}

// page returns the ids of up to limit issues of app with status want
// ("all" for any) that come after from (nil: from the start), most
// recently seen first, and the cursor of the next page (nil: none).
func (x *issueIndex) page(app string, want Status, from *cursor, limit int) ([]string, *cursor) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	a := x.apps[app]
	if a == nil {
		return nil, nil
	}
	start := 0
	if from != nil {
		// The first entry sorting after the cursor's position, wherever
		// the issue it names has moved since.
		pos := &indexEntry{id: from.id, lastSeen: from.lastSeen}
		i, found := slices.BinarySearchFunc(a.order, pos, (*indexEntry).compare)
		if found {
			i++
		}
		start = i
	}
	var ids []string
	var last *indexEntry
	for _, e := range a.order[start:] {
		if want != "all" && e.status != want {
			continue
		}
		if len(ids) == limit {
			return ids, &cursor{lastSeen: last.lastSeen, id: last.id}
		}
		ids = append(ids, e.id)
		last = e
	}
	return ids, nil
}

// Counts are an app's issues by status and the events counted into them.
type Counts struct {
	Issues     int   `json:"issues"`
	Unresolved int   `json:"unresolved"`
	Resolved   int   `json:"resolved"`
	Ignored    int   `json:"ignored"`
	Events     int64 `json:"events"` // events ever counted into the issues kept (retention drops events, not counts)
}

func (x *issueIndex) counts(app string) Counts {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var c Counts
	a := x.apps[app]
	if a == nil {
		return c
	}
	for _, e := range a.order {
		c.Issues++
		c.Events += e.count
		switch e.status {
		case Resolved:
			c.Resolved++
		case Ignored:
			c.Ignored++
		default:
			c.Unresolved++
		}
	}
	return c
}

// retained is one issue as retention sees it.
type retained struct {
	id       string
	lastSeen time.Time
}

// issuesOf returns app's issues, most recently seen first.
func (x *issueIndex) issuesOf(app string) []retained {
	x.mu.RLock()
	defer x.mu.RUnlock()
	a := x.apps[app]
	if a == nil {
		return nil
	}
	out := make([]retained, len(a.order))
	for i, e := range a.order {
		out[i] = retained{id: e.id, lastSeen: time.Unix(0, e.lastSeen)}
	}
	return out
}
