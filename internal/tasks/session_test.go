package tasks

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSessionHeld: a session's reservations are found by id and end in any
// order (the held slice is kept by swapping the last into the hole), only
// the owner may act on them, and Close gives back exactly what is still
// held.
func TestSessionHeld(t *testing.T) {
	ctx := context.Background()
	s := newService(t, nil)
	a, b := s.Session("blog"), s.Session("blog")
	var ids []uint64
	for range 5 {
		id, err := a.Put(ctx, "q", NewTask{Body: []byte("x"), TTR: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for range 4 {
		if _, err := a.Reserve(ctx, []string{"q"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// ids[0..3] are a's, ids[4] is ready.
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"b cannot delete a's task", func() error { return b.Delete(ctx, ids[1]) }, ErrNotFound},
		{"b cannot touch a's task", func() error { return b.Touch(ctx, ids[2]) }, ErrNotFound},
		{"b cannot release a's task", func() error { return b.Release(ctx, ids[2], 0, 0) }, ErrNotFound},
		{"a deletes one in the middle", func() error { return a.Delete(ctx, ids[1]) }, nil},
		{"a touches the one swapped into its place", func() error { return a.Touch(ctx, ids[3]) }, nil},
		{"a deletes the first", func() error { return a.Delete(ctx, ids[0]) }, nil},
		{"a cannot touch what it deleted", func() error { return a.Touch(ctx, ids[0]) }, ErrNotFound},
		{"a cannot touch a ready task", func() error { return a.Touch(ctx, ids[4]) }, ErrNotFound},
		{"a releases one (ready again)", func() error { return a.Release(ctx, ids[2], 0, 0) }, nil},
		{"a cannot release it twice", func() error { return a.Release(ctx, ids[2], 0, 0) }, ErrNotFound},
	}
	for _, st := range steps {
		if err := st.do(); !errors.Is(err, st.want) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
	}
	s.mu.Lock()
	if len(a.held) != 1 || a.held[0].j.id != ids[3] || a.held[0].hidx != 0 || len(b.held) != 0 {
		t.Errorf("held: a %d, b %d; want a holding only %d", len(a.held), len(b.held), ids[3])
	}
	s.mu.Unlock()
	if _, left, ok := a.Reserved(ids[3]); !ok || left <= 0 {
		t.Errorf("Reserved(%d): %v %v, want held with time left", ids[3], left, ok)
	}
	a.Close()
	// ids[2], ids[3] and ids[4] are ready: b gets them, in id order.
	for _, want := range []uint64{ids[2], ids[3], ids[4]} {
		got, err := b.Reserve(ctx, []string{"q"}, 0)
		if err != nil || got.ID != want {
			t.Fatalf("after Close: reserved %d, %v; want %d", got.ID, err, want)
		}
	}
	if _, err := b.Reserve(ctx, []string{"q"}, 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a fourth reserve: %v, want ErrTimeout", err)
	}
}

// TestDeleteTomb: a deleted task is kept in the tomb only when the drain
// has sent its put — then a message exists until the drain removes it —
// and either way it is gone for good: not found, never in the stream.
func TestDeleteTomb(t *testing.T) {
	ctx := context.Background()
	s := newService(t, nil)
	se := s.Session("blog")
	for _, stored := range []bool{false, true} {
		id, err := se.Put(ctx, "q", NewTask{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if stored {
			if err := s.drainWait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := se.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		_, tombed := s.tomb[id]
		s.mu.Unlock()
		if tombed != stored {
			t.Errorf("put stored %v: in the tomb %v", stored, tombed)
		}
		if _, err := s.Lookup(ctx, "blog", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("put stored %v: Lookup after delete: %v, want ErrNotFound", stored, err)
		}
		if err := s.drainWait(ctx); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		_, tombed = s.tomb[id]
		s.mu.Unlock()
		if tombed {
			t.Errorf("put stored %v: still in the tomb after the drain", stored)
		}
		if storedSeq(t, s, "blog", "q", id) != 0 {
			t.Errorf("put stored %v: its message is in the stream after the drain", stored)
		}
		if err := se.Delete(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("put stored %v: a second delete: %v, want ErrNotFound", stored, err)
		}
	}
}
