package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestPurgeBefore: only the subject's messages stored before the time
// leave; later ones and other subjects stay; a time before every message
// purges nothing, and one after all of them everything stored so far.
func TestPurgeBefore(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := t.Context()
	st, err := s.Stream(ctx, StreamConfig{Name: "P", Subjects: []string{"p.>"}})
	if err != nil {
		t.Fatal(err)
	}
	put := func(subject string, n int) {
		t.Helper()
		for i := range n {
			if _, err := st.Append(ctx, subject, fmt.Appendf(nil, "%s %d", subject, i), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(subject string) []string {
		t.Helper()
		var out []string
		if err := st.Read(ctx, subject, ReadOptions{}, func(m Message) error {
			out = append(out, string(m.Data))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := time.Now()
	time.Sleep(5 * time.Millisecond) // stored strictly after before
	put("p.a.1", 3)
	put("p.b.1", 2)
	time.Sleep(5 * time.Millisecond)
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	put("p.a.2", 1)
	put("p.a.1", 1)

	if err := st.PurgeBefore(ctx, "p.a.>", before); err != nil {
		t.Fatal(err)
	}
	if got := read("p.>"); len(got) != 7 {
		t.Fatalf("a time before every message purged some: %q", got)
	}
	if err := st.PurgeBefore(ctx, "p.a.>", mid); err != nil {
		t.Fatal(err)
	}
	if got, want := read("p.>"), []string{"p.b.1 0", "p.b.1 1", "p.a.2 0", "p.a.1 0"}; !slices.Equal(got, want) {
		t.Errorf("after purging p.a.> before mid: got %q, want %q", got, want)
	}
	// Subjects with nothing that old, or nothing at all, while the stream
	// has older messages: nothing leaves.
	for _, subject := range []string{"p.a.2", "p.c.>"} {
		if err := st.PurgeBefore(ctx, subject, mid); err != nil {
			t.Fatal(err)
		}
	}
	if got := read("p.>"); len(got) != 4 {
		t.Errorf("purging subjects with nothing before mid dropped messages: %q", got)
	}
	if err := st.PurgeBefore(ctx, "p.b.>", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, want := read("p.>"), []string{"p.a.2 0", "p.a.1 0"}; !slices.Equal(got, want) {
		t.Errorf("after purging p.b.> entirely: got %q, want %q", got, want)
	}
}
