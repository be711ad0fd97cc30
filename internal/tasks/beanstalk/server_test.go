package beanstalk

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"

	"pier/internal/store"
	"pier/internal/tasks"
)

// startServer runs a beanstalk server on a free loopback port over a real
// store; apps maps tokens to apps, and a single entry makes it the sole app.
func startServer(t testing.TB, apps map[string]string) string {
	t.Helper()
	addr, _ := startServerThreads(t, apps, 0)
	return addr
}

// startServerThreads starts a server with Options.ThreadConns threads.
func startServerThreads(t testing.TB, apps map[string]string, threads int) (string, *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := tasks.New(ctx, tasks.Options{Store: st, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(ctx)
	srv := New(Options{
		Tasks: svc,
		AppForToken: func(_ context.Context, tok string) (string, bool) {
			app, ok := apps[tok]
			return app, ok
		},
		SoleApp: func(context.Context) (string, bool) {
			if len(apps) != 1 {
				return "", false
			}
			for _, a := range apps {
				return a, true
			}
			return "", false
		},
		ThreadConns: threads,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done; svc.Close(); st.Close() })
	return ln.Addr().String(), srv
}

func dial(t *testing.T, addr string) *bs.Conn {
	t.Helper()
	c, err := bs.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func TestPutReserveDelete(t *testing.T) {
	c := dial(t, startServer(t, map[string]string{"blog.secret": "blog"}))
	id, err := c.Put([]byte("hello"), 10, 0, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rid, body, err := c.Reserve(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rid != id || string(body) != "hello" {
		t.Fatalf("reserved %d %q, want %d %q", rid, body, id, "hello")
	}
	st, err := c.StatsJob(id)
	if err != nil {
		t.Fatal(err)
	}
	if st["state"] != "reserved" || st["tube"] != "default" || st["pri"] != "10" || st["ttr"] != "30" {
		t.Fatalf("stats-job: %v", st)
	}
	if err := c.Touch(id); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(id); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "delete again", c.Delete(id), bs.ErrNotFound)
	_, _, err = c.Reserve(0)
	wantErr(t, "reserve on an empty tube", err, bs.ErrTimeout)
}

func TestReleaseBuryKickPeek(t *testing.T) {
	c := dial(t, startServer(t, map[string]string{"blog.secret": "blog"}))
	tube := bs.NewTube(c, "mail")
	ts := bs.NewTubeSet(c, "mail")
	id, err := tube.Put([]byte("m1"), 0, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if pid, body, err := tube.PeekReady(); err != nil || pid != id || string(body) != "m1" {
		t.Fatalf("peek-ready: %d %q %v", pid, body, err)
	}
	rid, _, err := ts.Reserve(5 * time.Second)
	if err != nil || rid != id {
		t.Fatalf("reserve: %d %v", rid, err)
	}
	if err := c.Release(id, 0, 0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "release twice", c.Release(id, 0, 0), bs.ErrNotFound)
	rid, _, err = ts.Reserve(5 * time.Second)
	if err != nil || rid != id {
		t.Fatalf("reserve after release: %d %v", rid, err)
	}
	if err := c.Bury(id, 7); err != nil {
		t.Fatal(err)
	}
	if pid, body, err := tube.PeekBuried(); err != nil || pid != id || string(body) != "m1" {
		t.Fatalf("peek-buried: %d %q %v", pid, body, err)
	}
	st, err := c.StatsJob(id)
	if err != nil || st["state"] != "buried" || st["pri"] != "7" {
		t.Fatalf("stats-job of a buried job: %v %v", st, err)
	}
	ts2, err := tube.Stats()
	if err != nil || ts2["current-jobs-buried"] != "1" {
		t.Fatalf("stats-tube: %v %v", ts2, err)
	}
	if n, err := tube.Kick(10); err != nil || n != 1 {
		t.Fatalf("kick: %d %v", n, err)
	}
	if body, err := c.Peek(id); err != nil || string(body) != "m1" {
		t.Fatalf("peek after kick: %q %v", body, err)
	}
	rid, _, err = ts.Reserve(5 * time.Second)
	if err != nil || rid != id {
		t.Fatalf("reserve after kick: %d %v", rid, err)
	}
	if err := c.Bury(id, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.KickJob(id); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "kick-job of a ready job", c.KickJob(id), bs.ErrNotFound)
	if err := c.Delete(id); err != nil { // a ready job nobody holds
		t.Fatal(err)
	}
	_, err = c.Peek(id)
	wantErr(t, "peek a deleted job", err, bs.ErrNotFound)
}

func TestDelayedAndTTR(t *testing.T) {
	addr := startServer(t, map[string]string{"blog.secret": "blog"})
	c := dial(t, addr)
	id, err := c.Put([]byte("later"), 0, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if pid, _, err := c.PeekDelayed(); err != nil || pid != id {
		t.Fatalf("peek-delayed: %d %v", pid, err)
	}
	if st, err := c.StatsJob(id); err != nil || st["state"] != "delayed" || st["delay"] != "3600" {
		t.Fatalf("stats-job: %v %v", st, err)
	}
	if n, err := c.Kick(1); err != nil || n != 1 {
		t.Fatalf("kick delayed: %d %v", n, err)
	}
	rid, _, err := c.Reserve(5 * time.Second)
	if err != nil || rid != id {
		t.Fatalf("reserve kicked: %d %v", rid, err)
	}
	c.Delete(id)

	// A reservation whose TTR runs out goes back to ready.
	id, _ = c.Put([]byte("slow"), 0, 0, time.Second)
	if rid, _, err := c.Reserve(5 * time.Second); err != nil || rid != id {
		t.Fatalf("reserve: %d %v", rid, err)
	}
	other := dial(t, addr)
	rid, _, err = other.Reserve(20 * time.Second)
	if err != nil || rid != id {
		t.Fatalf("other connection after the TTR: %d %v", rid, err)
	}
	wantErr(t, "delete by the first holder", c.Delete(id), bs.ErrNotFound)
	if err := other.Delete(id); err != nil {
		t.Fatal(err)
	}
}

func TestConnectionCloseReleases(t *testing.T) {
	addr := startServer(t, map[string]string{"blog.secret": "blog"})
	c := dial(t, addr)
	id, _ := c.Put([]byte("x"), 0, 0, time.Hour)
	if rid, _, err := c.Reserve(5 * time.Second); err != nil || rid != id {
		t.Fatalf("reserve: %d %v", rid, err)
	}
	c.Close()
	other := dial(t, addr)
	if rid, _, err := other.Reserve(10 * time.Second); err != nil || rid != id {
		t.Fatalf("after close: %d %v", rid, err)
	}
}

func TestErrors(t *testing.T) {
	addr := startServer(t, map[string]string{"blog.secret": "blog"})
	c := dial(t, addr)
	_, err := c.Put(make([]byte, 70000), 0, 0, time.Minute)
	wantErr(t, "oversized put", err, bs.ErrJobTooBig)
	// The connection still works after JOB_TOO_BIG.
	if _, err := c.Put([]byte("ok"), 0, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{0, 12345, 1<<63 + 5} {
		wantErr(t, "delete unknown", c.Delete(id), bs.ErrNotFound)
		_, err := c.Peek(id)
		wantErr(t, "peek unknown", err, bs.ErrNotFound)
		_, err = c.StatsJob(id)
		wantErr(t, "stats-job unknown", err, bs.ErrNotFound)
		wantErr(t, "touch unknown", c.Touch(id), bs.ErrNotFound)
		wantErr(t, "bury unknown", c.Bury(id, 0), bs.ErrNotFound)
		wantErr(t, "kick-job unknown", c.KickJob(id), bs.ErrNotFound)
	}
	if err := bs.NewTube(c, "Nope").Pause(time.Second); !errors.Is(err, bs.ErrBadFormat) {
		t.Fatalf("tube name that is no queue name: %v", err)
	}
	if err := bs.NewTube(c, "never-used").Pause(time.Second); !errors.Is(err, bs.ErrNotFound) {
		t.Fatalf("pause unknown tube: %v", err)
	}

	raw := []struct{ send, want string }{
		{"frobnicate\r\n", "UNKNOWN_COMMAND"},
		{"delete\r\n", "UNKNOWN_COMMAND"},
		{"delete abc\r\n", "BAD_FORMAT"},
		{"delete 1 2\r\n", "BAD_FORMAT"},
		{"delete -1\r\n", "BAD_FORMAT"},
		{"put 0 0 10\r\n", "BAD_FORMAT"},
		{"put 0 0 10 2\r\nabcd", "EXPECTED_CRLF"},
		{"\r\n", "UNKNOWN_COMMAND"},
		{"reserve now\r\n", "BAD_FORMAT"},
		{"use -bad\r\n", "BAD_FORMAT"},
		{"use " + strings.Repeat("a", 201) + "\r\n", "BAD_FORMAT"},
		{strings.Repeat("x", 300) + "\r\n", "BAD_FORMAT"},
		{"ignore default\r\n", "NOT_IGNORED"},
		{"list-tube-used\r\n", "USING default"},
		{"put 4294967296 0 10 2\r\nab\r\n", "BAD_FORMAT"},
		{"", "UNKNOWN_COMMAND"}, // the body, read as a command, as beanstalkd does
		{"put 1 0 10 2\r\nab\r\n", "INSERTED "},
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	for _, tc := range raw {
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v", tc.send, err)
		}
		if !strings.HasPrefix(line, tc.want) || !strings.HasSuffix(line, "\r\n") {
			t.Errorf("sent %q: got %q, want %q", tc.send, line, tc.want)
		}
	}
}

func TestTokenInTubeName(t *testing.T) {
	addr := startServer(t, map[string]string{"blog.secret": "blog", "shop.s3cret": "shop"})
	c := dial(t, addr)
	_, err := c.Put([]byte("anon"), 0, 0, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("unauthenticated put on a multi-app engine: %v", err)
	}
	blog := dial(t, addr)
	id, err := bs.NewTube(blog, "blog.secret/mail").Put([]byte("for blog"), 0, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Plain names work once the connection belongs to blog.
	if pid, _, err := bs.NewTube(blog, "mail").PeekReady(); err != nil || pid != id {
		t.Fatalf("peek-ready on blog's mail: %d %v", pid, err)
	}
	shop := dial(t, addr)
	ts := bs.NewTubeSet(shop, "shop.s3cret/mail")
	if _, _, err := ts.Reserve(0); !errors.Is(err, bs.ErrTimeout) {
		t.Fatalf("shop sees blog's task: %v", err)
	}
	_, err = shop.Peek(id)
	wantErr(t, "shop peeks blog's task", err, bs.ErrNotFound)
	tubes, err := blog.ListTubes()
	if err != nil || strings.Join(tubes, ",") != "mail" {
		t.Fatalf("list-tubes: %v %v", tubes, err)
	}
	// Another app's token on an authenticated connection is refused
	// (the client is out of step after that: a failed use is not skipped).
	if _, err := bs.NewTube(blog, "shop.s3cret/mail").Put([]byte("x"), 0, 0, time.Minute); err == nil {
		t.Fatal("blog's connection used shop's token")
	}
}

// TestFivebeans drives the server with a Node client, fivebeans, from
// test/node (installed by scripts/test-deps.sh).
func TestFivebeans(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "test", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fivebeans")); err != nil {
		t.Fatalf("fivebeans is not installed in %s: run scripts/test-deps.sh (npm ci there)", dir)
	}
	addr := startServer(t, map[string]string{"blog.secret": "blog"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "beanstalk-client.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BEANSTALKD_ADDR="+addr)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("node beanstalk-client.js: %v\n%s", err, out)
	}
}

func TestReserveJob(t *testing.T) {
	addr := startServer(t, map[string]string{"blog.secret": "blog"})
	c := dial(t, addr)
	first, _ := c.Put([]byte("first"), 0, 0, time.Minute)
	second, _ := c.Put([]byte("second"), 0, 0, time.Minute)
	later, _ := c.Put([]byte("later"), 0, time.Hour, time.Minute)
	// Out of order: the second ready job, then a delayed one.
	if body, err := c.ReserveJob(second); err != nil || string(body) != "second" {
		t.Fatalf("reserve-job of a ready job: %q %v", body, err)
	}
	if st, err := c.StatsJob(second); err != nil || st["state"] != "reserved" {
		t.Fatalf("stats-job: %v %v", st, err)
	}
	if body, err := c.ReserveJob(later); err != nil || string(body) != "later" {
		t.Fatalf("reserve-job of a delayed job: %q %v", body, err)
	}
	other := dial(t, addr)
	_, err := other.ReserveJob(second)
	wantErr(t, "reserve-job of another connection's job", err, bs.ErrNotFound)
	_, err = other.ReserveJob(987654321)
	wantErr(t, "reserve-job of an unknown id", err, bs.ErrNotFound)
	// The normal order goes on without the reserved one.
	if id, _, err := other.Reserve(5 * time.Second); err != nil || id != first {
		t.Fatalf("reserve: %d %v, want %d", id, err, first)
	}
	if err := other.Delete(first); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(later); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(second, 0, 0); err != nil {
		t.Fatal(err)
	}
	if id, body, err := other.Reserve(5 * time.Second); err != nil || id != second || string(body) != "second" {
		t.Fatalf("reserve after release: %d %q %v", id, body, err)
	}
	if err := other.Bury(second, 0); err != nil {
		t.Fatal(err)
	}
	// A buried job, and the connection closing with it reserved.
	if _, err := other.ReserveJob(second); err != nil {
		t.Fatalf("reserve-job of a buried job: %v", err)
	}
	other.Close()
	if id, _, err := c.Reserve(10 * time.Second); err != nil || id != second {
		t.Fatalf("after close: %d %v", id, err)
	}
	_, err = c.Peek(later)
	wantErr(t, "peek a deleted reserve-job", err, bs.ErrNotFound)
}
