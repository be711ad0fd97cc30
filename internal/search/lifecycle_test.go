package search

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestReopenKeepsDocumentsAndMapping(t *testing.T) {
	s := newServer(t)
	// dynamic mapping from the first documents
	s.must(201, "PUT", "/notes/_doc/1", obj("title", "Notes de réunion", "when", "2024-05-02T10:00:00Z", "votes", 3, "done", false))
	s.must(201, "POST", "/notes/_doc", obj("title", "Liste de courses", "meta", obj("author", "Léa")))
	s.reopen()
	out := s.must(200, "GET", "/notes/_mapping", nil)
	props := out["notes"].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
	want := map[string]string{"title": "text", "when": "date", "votes": "long", "done": "boolean"}
	for f, typ := range want {
		if got := props[f].(map[string]any)["type"]; got != typ {
			t.Errorf("after reopen, %s is %v, want %s", f, got, typ)
		}
	}
	if _, ok := props["meta"].(map[string]any)["properties"].(map[string]any)["author"]; !ok {
		t.Errorf("object field lost: %v", props["meta"])
	}
	if got := ids(s.must(200, "POST", "/notes/_search", obj("query", obj("term", obj("title.keyword", "Notes de réunion"))))); len(got) != 1 || got[0] != "1" {
		t.Errorf("keyword sub-field after reopen: %v", got)
	}
	if got := ids(s.must(200, "GET", "/notes/_search?q=meta.author:léa", nil)); len(got) != 1 {
		t.Errorf("?q= on an object field: %v", got)
	}
	res := s.must(200, "PUT", "/notes/_doc/1", obj("title", "Notes de réunion (2)"))
	if res["_version"] != 2.0 || res["result"] != "updated" {
		t.Errorf("version after reopen: %v", res)
	}
	// adding fields explicitly; changing a type is refused
	s.must(200, "PUT", "/notes/_mapping", obj("properties", obj("summary", obj("type", "text", "analyzer", "french"))))
	code, e := s.do("PUT", "/notes/_mapping", obj("properties", obj("votes", obj("type", "keyword"))))
	if code != 400 || errType(e) != typeIllegalArgument {
		t.Errorf("type change: %d %v", code, e)
	}
	s.reopen()
	out = s.must(200, "GET", "/notes", nil)
	props = out["notes"].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
	if props["summary"].(map[string]any)["analyzer"] != "french" {
		t.Errorf("put mapping lost on reopen: %v", props["summary"])
	}
}

func TestConcurrentWrites(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	const writers, rounds, docs = 6, 5, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ix, err := s.svc.Index(ctx, "blog", "events", true)
			if err != nil {
				t.Error(err)
				return
			}
			for r := range rounds {
				var ops []Op
				for d := range docs {
					// every writer adds a field of its own: the mapping grows concurrently
					src := fmt.Sprintf(`{"round": %d, "field_%d": "writer %d"}`, r, w, w)
					ops = append(ops, Op{Action: "index", ID: fmt.Sprint(d), Source: []byte(src)})
				}
				if _, err := ix.Write(ctx, ops); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for d := range docs {
		out := s.must(200, "GET", fmt.Sprintf("/events/_doc/%d", d), nil)
		if out["_version"] != float64(writers*rounds) {
			t.Errorf("doc %d: version %v, want %d", d, out["_version"], writers*rounds)
		}
	}
	m := s.must(200, "GET", "/events/_mapping", nil)["events"].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
	for w := range writers {
		if _, ok := m[fmt.Sprintf("field_%d", w)]; !ok {
			t.Errorf("field_%d missing from the mapping: %v", w, m)
		}
	}
	if out := s.must(200, "GET", "/events/_count", nil); out["count"] != float64(docs) {
		t.Errorf("count %v", out["count"])
	}
}

func TestDeleteIndexAndApp(t *testing.T) {
	s := newServer(t)
	s.load("livros", livrosMapping, livros)
	s.load("wenzhang", wenzhangMapping, wenzhang)
	infos, err := s.svc.Indexes(context.Background(), "blog")
	if err != nil || len(infos) != 2 || infos[0].Name != "livros" || infos[0].Docs != 4 || infos[1].Docs != 3 {
		t.Errorf("indexes: %+v %v", infos, err)
	}
	s.must(200, "DELETE", "/livros", nil)
	s.must(404, "GET", "/livros/_doc/l1", nil)
	s.must(404, "HEAD", "/livros", nil)
	if err := s.svc.DropApp(context.Background(), "blog"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "blog")); !os.IsNotExist(err) {
		t.Errorf("app directory left: %v", err)
	}
	s.must(404, "GET", "/wenzhang/_search", nil)
}

// openFilesUnder counts this process's open files under dir.
func openFilesUnder(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd here")
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// An index unused for IdleClose releases its files, and opens again,
// with its documents, on its next use; writes after that are durable too.
func TestIdleIndexesClose(t *testing.T) {
	dir := t.TempDir()
	svc, err := Open(Options{Dir: dir, IdleClose: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ts := httptest.NewServer(svc.Handler(func(r *http.Request) (string, string, error) { return "blog", r.URL.Path, nil }))
	defer ts.Close()
	s := &server{t: t, svc: svc, url: ts.URL, dir: dir}
	s.load("articles", articlesMapping, articles)
	s.load("recettes", recettesMapping, recettes)
	ctx := context.Background()
	ix, err := svc.Index(ctx, "blog", "articles", false)
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the idle indexes are closed", func() bool { return !ix.isOpen() && openFilesUnder(t, dir) == 0 })

	// used again: opened transparently, with its documents
	out := s.must(200, "POST", "/articles/_search", obj("query", obj("match", obj("title", "fox"))))
	if got := ids(out); len(got) != 1 || got[0] != "4" {
		t.Errorf("search after idle close: %v, want [4]", got)
	}
	s.must(201, "PUT", "/articles/_doc/7", obj("title", "A fox again", "tags", list("examples")))
	waitFor("the index is closed again", func() bool { return !ix.isOpen() })
	if out := s.must(200, "GET", "/articles/_count", nil); out["count"] != 7.0 {
		t.Errorf("count after a write and a second idle close: %v, want 7", out["count"])
	}
	// listing indexes does not open them again
	waitFor("both indexes are closed", func() bool { return openFilesUnder(t, dir) == 0 })
	if infos, err := svc.Indexes(ctx, "blog"); err != nil || len(infos) != 2 || infos[0].Docs != 7 || infos[1].Docs != 4 {
		t.Errorf("indexes while closed: %+v %v, want articles 7 and recettes 4", infos, err)
	}
	if ix.isOpen() {
		t.Error("listing the indexes opened articles again")
	}
	// a busy index is not closed under its users
	for range 20 {
		s.must(200, "GET", "/recettes/_doc/r1", nil)
		time.Sleep(5 * time.Millisecond)
	}
	// deleting a closed index works
	waitFor("recettes is closed", func() bool { return openFilesUnder(t, filepath.Join(dir, "blog", "recettes")) == 0 })
	s.must(200, "DELETE", "/recettes", nil)
	s.must(404, "GET", "/recettes/_doc/r1", nil)
}

// TestKill9KeepsAcknowledgedWrites runs writers in a child process (this
// test binary again), kills it with SIGKILL while it writes, and checks
// that every write it reported acknowledged is there after reopening:
// written documents with their version, deleted ones gone.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if dir := os.Getenv("PIER_SEARCH_KILL9_DIR"); dir != "" {
		kill9Child(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9KeepsAcknowledgedWrites$")
	cmd.Env = append(os.Environ(), "PIER_SEARCH_KILL9_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// "acked <round>" lines: round r wrote docs r-0..r-99 at version 1,
	// then rewrote r-0..r-49 (version 2) and deleted r-50..r-59
	acked := 0
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		if r, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked, _ = strconv.Atoi(r)
			acked++
			if acked >= 8 {
				break
			}
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() { // what was printed before the kill is acknowledged too
		if r, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked, _ = strconv.Atoi(r)
			acked++
		}
	}
	cmd.Wait()
	if acked == 0 {
		t.Fatal("the child acknowledged nothing")
	}

	svc, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	ix, err := svc.Index(ctx, "blog", "docs", false)
	if err != nil {
		t.Fatal(err)
	}
	for r := range acked {
		for i := range 100 {
			id := fmt.Sprintf("%d-%d", r, i)
			src, version, found, err := ix.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case i >= 50 && i < 60:
				if found {
					t.Errorf("%s: deleted before the kill, found again", id)
				}
			case i < 50:
				if !found || version != 2 || !strings.Contains(string(src), `"v": 2`) {
					t.Errorf("%s: found %v version %d %s, want version 2", id, found, version, src)
				}
			default:
				if !found || version != 1 {
					t.Errorf("%s: found %v version %d, want version 1", id, found, version)
				}
			}
		}
	}
	t.Logf("%d rounds acknowledged before kill -9, all there", acked)
}

// kill9Child writes rounds until it is killed, printing each round once
// acknowledged.
func kill9Child(dir string) {
	svc, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx := context.Background()
	ix, err := svc.Index(ctx, "blog", "docs", true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for r := 0; ; r++ {
		var ops []Op
		for i := range 100 {
			ops = append(ops, Op{Action: "index", ID: fmt.Sprintf("%d-%d", r, i), Source: []byte(fmt.Sprintf(`{"title": "round %d doc %d", "v": 1}`, r, i))})
		}
		for i := range 50 {
			ops = append(ops, Op{Action: "index", ID: fmt.Sprintf("%d-%d", r, i), Source: []byte(fmt.Sprintf(`{"title": "round %d doc %d", "v": 2}`, r, i))})
		}
		for i := 50; i < 60; i++ {
			ops = append(ops, Op{Action: "delete", ID: fmt.Sprintf("%d-%d", r, i)})
		}
		if _, err := ix.Write(ctx, ops); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", r)
	}
}
