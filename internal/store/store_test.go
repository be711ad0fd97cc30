package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBucketCreateUpdateConflict(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	b, err := s.Bucket(ctx, "apps", 1)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := b.Create(ctx, "blog", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "blog", []byte("2")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: got %v, want ErrExists", err)
	}
	if _, err := b.Update(ctx, "blog", []byte("3"), rev+10); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: got %v, want ErrConflict", err)
	}
	if _, err := b.Update(ctx, "blog", []byte("4"), rev); err != nil {
		t.Fatal(err)
	}
	e, err := b.Get(ctx, "blog")
	if err != nil || string(e.Value) != "4" {
		t.Fatalf("get: got %q, %v; want 4", e.Value, err)
	}
	if _, err := b.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: got %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "blog"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "blog"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: got %v, want ErrNotFound", err)
	}
}

func TestModifyConcurrent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	b, _ := s.Bucket(ctx, "counters", 1)
	type counter struct{ N int }
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Modify(ctx, b, "c", func(c *counter, _ bool) error { c.N++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var c counter
	if _, err := GetJSON(ctx, b, "c", &c); err != nil || c.N != 20 {
		t.Fatalf("got %d, %v; want 20", c.N, err)
	}
}

func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Bucket(ctx, "apps", 1)
	b.Put(ctx, "blog", []byte("v1"))
	o, _ := s.Objects(ctx, "bundles")
	big := bytes.Repeat([]byte("x"), 3<<20)
	if err := o.Put(ctx, "abc", bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, dir)
	b, _ = s.Bucket(ctx, "apps", 1)
	e, err := b.Get(ctx, "blog")
	if err != nil || string(e.Value) != "v1" {
		t.Fatalf("after reopen: got %q, %v", e.Value, err)
	}
	o, _ = s.Objects(ctx, "bundles")
	r, err := o.Get(ctx, "abc")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("object after reopen: %d bytes, %v", len(got), err)
	}
	if ok, _ := o.Has(ctx, "missing"); ok {
		t.Fatal("Has(missing) = true")
	}
}

func TestStreamReadLastAndFollow(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	st, err := s.Stream(ctx, StreamConfig{Name: "LOGS", Subjects: []string{"logs.>"}, MaxMsgsPerSubject: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if _, err := st.Append(ctx, "logs.a", []byte(fmt.Sprint(i)), map[string]string{"process": "web"}); err != nil {
			t.Fatal(err)
		}
		st.Append(ctx, "logs.b", []byte("other"), nil)
	}
	var got []string
	err = st.Read(ctx, "logs.a", ReadOptions{Last: 3}, func(m Message) error {
		got = append(got, string(m.Data)+"/"+m.Header["process"])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "147/web 148/web 149/web"; strings.Join(got, " ") != want {
		t.Fatalf("last 3: got %q, want %q", got, want)
	}
	var all int
	st.Read(ctx, "logs.a", ReadOptions{}, func(Message) error { all++; return nil })
	if all != 100 {
		t.Fatalf("retained: got %d, want 100 (MaxMsgsPerSubject)", all)
	}

	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seen := make(chan string, 10)
	go st.Read(fctx, "logs.a", ReadOptions{Last: 1, Follow: true}, func(m Message) error {
		seen <- string(m.Data)
		return nil
	})
	if v := <-seen; v != "149" {
		t.Fatalf("follow backlog: got %q, want 149", v)
	}
	st.AppendNoWait("logs.a", []byte("new"), nil)
	select {
	case v := <-seen:
		if v != "new" {
			t.Fatalf("follow: got %q, want new", v)
		}
	case <-fctx.Done():
		t.Fatal("followed message never arrived")
	}
}

func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openStore(t, t.TempDir())
	b, _ := s.Bucket(ctx, "inst", 1)
	b.Put(ctx, "a.1", []byte("x"))
	ch := make(chan Entry, 10)
	if err := b.Watch(ctx, "a.*", func(e Entry) { ch <- e }); err != nil {
		t.Fatal(err)
	}
	if e := <-ch; e.Key != "a.1" {
		t.Fatalf("initial: got %q", e.Key)
	}
	if e := <-ch; e.Key != "" {
		t.Fatalf("end of initial values: got %q", e.Key)
	}
	b.Delete(ctx, "a.1")
	if e := <-ch; e.Key != "a.1" || !e.Deleted {
		t.Fatalf("delete: got %+v", e)
	}
}
