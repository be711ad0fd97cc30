package logs

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pier/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: filepath.Join(t.TempDir(), "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openLogs(t *testing.T) *Logs {
	t.Helper()
	l, err := Open(context.Background(), Options{Store: openStore(t)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func collect(t *testing.T, l *Logs, app string, q Query) []string {
	t.Helper()
	var out []string
	if err := l.Read(context.Background(), app, q, func(line Line) error {
		out = append(out, line.Instance+" "+line.Text)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadGrepSinceFollow(t *testing.T) {
	l := openLogs(t)
	for i := range 20 {
		proc := "web"
		if i%2 == 1 {
			proc = "worker"
		}
		text := fmt.Sprintf("line %d", i)
		if i%5 == 0 {
			text = fmt.Sprintf("ERROR %d", i)
		}
		l.Write(Line{Time: time.Now(), App: "blog", Process: proc, Instance: proc + ".1", Stream: "stdout", Text: text})
	}
	l.Write(Line{App: "other", Process: "web", Instance: "web.1", Text: "ERROR elsewhere"})
	waitUntil(t, "20 stored lines", func() bool { return len(collect(t, l, "blog", Query{Lines: 100})) == 20 })

	if got := collect(t, l, "blog", Query{Lines: 3}); fmt.Sprint(got) != "[worker.1 line 17 web.1 line 18 worker.1 line 19]" {
		t.Errorf("last 3: %q", got)
	}
	if got := collect(t, l, "blog", Query{Lines: 3, Grep: "^ERROR"}); fmt.Sprint(got) != "[worker.1 ERROR 5 web.1 ERROR 10 worker.1 ERROR 15]" {
		t.Errorf("last 3 errors: %q", got)
	}
	if got := collect(t, l, "blog", Query{Lines: 100, Grep: "ERROR", Process: "web"}); fmt.Sprint(got) != "[web.1 ERROR 0 web.1 ERROR 10]" {
		t.Errorf("web errors: %q", got)
	}
	if got := collect(t, l, "blog", Query{Lines: 100, Since: time.Now().Add(time.Hour)}); len(got) != 0 {
		t.Errorf("since the future: %q", got)
	}
	if err := l.Read(context.Background(), "blog", Query{Lines: 1, Grep: "("}, func(Line) error { return nil }); err == nil {
		t.Error("a bad pattern should be an error")
	}

	// Follow with a pattern: the stored match first, then only new matches.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []string
	done := make(chan error, 1)
	go func() {
		done <- l.Read(ctx, "blog", Query{Lines: 1, Grep: "ERROR", Follow: true}, func(line Line) error {
			mu.Lock()
			got = append(got, line.Text)
			mu.Unlock()
			return nil
		})
	}()
	waitUntil(t, "the stored match", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	l.Write(Line{App: "blog", Process: "web", Instance: "web.1", Text: "fine"})
	l.Write(Line{App: "blog", Process: "web", Instance: "web.1", Text: "ERROR new"})
	waitUntil(t, "the new match", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[ERROR 15 ERROR new]" {
		t.Errorf("followed %q", got)
	}
	if err := l.Purge(context.Background(), "blog"); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, l, "blog", Query{Lines: 100}); len(got) != 0 {
		t.Errorf("after purge: %q", got)
	}
}
