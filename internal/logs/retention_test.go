package logs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"pier/internal/store"
)

// TestRetentionPerApp writes more than the bound for one app: its oldest
// lines go, its newest stay, and the other app keeps every line.
func TestRetentionPerApp(t *testing.T) {
	ctx := context.Background()
	const bound = 64 << 10
	l, err := Open(ctx, Options{Store: openStore(t), MaxBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		l.Write(Line{App: "quiet", Process: "web", Instance: "web.1", Stream: "stdout", Text: fmt.Sprintf("quiet %d", i)})
	}
	pad := strings.Repeat("x", 200)
	const noisy = 2000 // about 500 KB, eight times the bound
	for i := range noisy {
		proc := []string{"web", "worker"}[i%2]
		l.Write(Line{App: "noisy", Process: proc, Instance: proc + ".1", Stream: "stdout", Text: fmt.Sprintf("noisy %d %s", i, pad)})
	}
	last := fmt.Sprintf("noisy %d %s", noisy-1, pad)
	waitUntil(t, "the last noisy line", func() bool {
		got := collect(t, l, "noisy", Query{Lines: 1})
		return len(got) == 1 && strings.HasSuffix(got[0], last)
	})

	msgs, bytes, err := l.Size(ctx, "noisy")
	if err != nil {
		t.Fatal(err)
	}
	if bytes > bound || msgs == 0 || msgs >= noisy {
		t.Errorf("noisy holds %d lines in %d bytes; want fewer than %d lines within %d bytes", msgs, bytes, noisy, bound)
	}
	// The newest lines stay, in order, with no gap.
	got := collect(t, l, "noisy", Query{Lines: noisy})
	if uint64(len(got)) != msgs {
		t.Errorf("read %d lines, the stream holds %d", len(got), msgs)
	}
	for i, line := range got {
		want := fmt.Sprintf("noisy %d ", noisy-len(got)+i)
		if !strings.Contains(line, want) {
			t.Fatalf("line %d of the kept ones is %.40q, want %q", i, line, want)
		}
	}
	if got := collect(t, l, "quiet", Query{Lines: 100}); len(got) != 20 || got[0] != "web.1 quiet 0" {
		t.Errorf("quiet kept %d lines (first %q), want all 20", len(got), got)
	}
}

// TestRetentionChange reopens with a smaller bound: the app's stream
// shrinks to it the next time it is used.
func TestRetentionChange(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	l, err := Open(ctx, Options{Store: st, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		l.Write(Line{App: "blog", Process: "web", Instance: "web.1", Text: fmt.Sprintf("line %d %s", i, strings.Repeat("y", 100))})
	}
	waitUntil(t, "1000 lines", func() bool { n, _, _ := l.Size(ctx, "blog"); return n == 1000 })
	l2, err := Open(ctx, Options{Store: st, MaxBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	n, b, err := l2.Size(ctx, "blog")
	if err != nil {
		t.Fatal(err)
	}
	if b > 32<<10 || n == 0 {
		t.Errorf("after lowering the bound: %d lines, %d bytes", n, b)
	}
}

// TestMigrateLegacyStream moves the single LOGS stream of earlier engines
// into per-app streams, in order, and deletes it.
func TestMigrateLegacyStream(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	legacy, err := st.Stream(ctx, store.StreamConfig{Name: "LOGS", Subjects: []string{"logs.>"}, MaxMsgsPerSubject: 20000, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2500 {
		app := []string{"blog", "shop"}[i%2]
		data, _ := json.Marshal(Line{Time: time.Now(), App: app, Process: "web", Instance: "web.1", Stream: "stdout", Text: fmt.Sprintf("old %d", i)})
		if _, err := legacy.Append(ctx, "logs."+app+".web.1", data, nil); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Open(ctx, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.OpenStream(ctx, "LOGS"); err == nil {
		t.Error("the legacy stream is still there")
	}
	got := collect(t, l, "shop", Query{Lines: 5000})
	if len(got) != 1250 || got[0] != "web.1 old 1" || got[1249] != "web.1 old 2499" {
		t.Errorf("shop after migration: %d lines, first %q", len(got), got[:min(len(got), 2)])
	}
	// New lines land after the moved ones; a second Open moves nothing.
	l.Write(Line{App: "blog", Process: "web", Instance: "web.1", Text: "new"})
	waitUntil(t, "the new line", func() bool { g := collect(t, l, "blog", Query{Lines: 1}); return len(g) == 1 && g[0] == "web.1 new" })
	l2, err := Open(ctx, Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if got := collect(t, l2, "blog", Query{Lines: 5000}); len(got) != 1251 || got[0] != "web.1 old 0" {
		t.Errorf("blog: %d lines, first %q", len(got), got[0])
	}
}
