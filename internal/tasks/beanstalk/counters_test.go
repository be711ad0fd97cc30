package beanstalk

import (
	"testing"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"
)

// waitFor polls cond until it holds or the time runs out.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("%s: still not true after %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantStats checks some fields of a stats answer.
func wantStats(t *testing.T, what string, got map[string]string, err error, want map[string]string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s is %q, want %q (all: %v)", what, k, got[k], v, got)
		}
	}
}

func TestJobAndTubeCounters(t *testing.T) {
	c := dial(t, startServer(t, map[string]string{"blog.secret": "blog"}))
	tube := bs.NewTube(c, "counts")
	ts := bs.NewTubeSet(c, "counts")
	a, err := tube.Put([]byte("a"), 5, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tube.Put([]byte("b"), 2000, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tube.Stats()
	wantStats(t, "stats-tube with one urgent job", st, err, map[string]string{
		"current-jobs-urgent": "1", "current-jobs-ready": "2", "cmd-delete": "0", "cmd-pause-tube": "0",
	})
	if err := c.Delete(b); err != nil {
		t.Fatal(err)
	}

	reserve := func(what string) {
		t.Helper()
		if id, _, err := ts.Reserve(5 * time.Second); err != nil || id != a {
			t.Fatalf("%s: reserved %d %v, want %d", what, id, err, a)
		}
	}
	reserve("reserve")
	if err := c.Release(a, 5, 0); err != nil {
		t.Fatal(err)
	}
	reserve("reserve after release")
	if err := c.Bury(a, 5); err != nil {
		t.Fatal(err)
	}
	if n, err := tube.Kick(1); err != nil || n != 1 {
		t.Fatalf("kick: %d %v", n, err)
	}
	reserve("reserve after kick")
	st, err = c.StatsJob(a)
	wantStats(t, "stats-job", st, err, map[string]string{
		"state": "reserved", "releases": "1", "buries": "1", "kicks": "1", "timeouts": "0",
	})

	// A release with a delay makes the job delayed, with its new priority.
	if err := c.Release(a, 9, time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err = c.StatsJob(a)
	wantStats(t, "stats-job after a delayed release", st, err, map[string]string{
		"state": "delayed", "pri": "9", "delay": "3600", "releases": "2", "buries": "1", "kicks": "1",
	})
	st, err = tube.Stats()
	wantStats(t, "stats-tube after a delayed release", st, err, map[string]string{
		"current-jobs-delayed": "1", "current-jobs-reserved": "0", "current-jobs-ready": "0", "current-jobs-urgent": "0",
	})
	if id, _, err := tube.PeekDelayed(); err != nil || id != a {
		t.Fatalf("peek-delayed: %d %v, want %d", id, err, a)
	}
	_, _, err = ts.Reserve(0)
	wantErr(t, "reserve while the only job is delayed", err, bs.ErrTimeout)
	if n, err := tube.Kick(1); err != nil || n != 1 {
		t.Fatalf("kick the released job: %d %v", n, err)
	}
	reserve("reserve after kicking the released job")
	if err := c.Delete(a); err != nil {
		t.Fatal(err)
	}
	_, err = c.StatsJob(a)
	wantErr(t, "stats-job of a deleted job", err, bs.ErrNotFound)

	if err := tube.Pause(0); err != nil {
		t.Fatal(err)
	}
	st, err = tube.Stats()
	wantStats(t, "stats-tube at the end", st, err, map[string]string{
		"cmd-delete": "2", "cmd-pause-tube": "1", "current-jobs-urgent": "0",
	})

	// A reservation whose TTR runs out counts a timeout.
	id, err := tube.Put([]byte("slow"), 0, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rid, _, err := ts.Reserve(5 * time.Second); err != nil || rid != id {
		t.Fatalf("reserve: %d %v", rid, err)
	}
	waitFor(t, "timeouts counted", 20*time.Second, func() bool {
		st, err := c.StatsJob(id)
		return err == nil && st["timeouts"] == "1" && st["state"] == "ready"
	})
}

func TestDeadlineSoon(t *testing.T) {
	c := dial(t, startServer(t, map[string]string{"blog.secret": "blog"}))
	ts := bs.NewTubeSet(c, "default")
	x, err := c.Put([]byte("x"), 0, 0, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if id, _, err := ts.Reserve(5 * time.Second); err != nil || id != x {
		t.Fatalf("reserve: %d %v", id, err)
	}
	// Nothing else is ready: the wait ends when x has under a second left.
	_, _, err = ts.Reserve(20 * time.Second)
	wantErr(t, "reserve while x runs out", err, bs.ErrDeadline)
	_, _, err = ts.Reserve(0)
	wantErr(t, "reserve-with-timeout 0 while x runs out", err, bs.ErrDeadline)
	// A ready job wins over the warning.
	y, err := c.Put([]byte("y"), 0, 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := ts.Reserve(0)
	if err != nil || (id != y && id != x) {
		t.Fatalf("reserve with a job ready: %d %v, want %d (or %d, its TTR over)", id, err, y, x)
	}
	if err := c.Delete(id); err != nil {
		t.Fatal(err)
	}
	other := x
	if id == x {
		other = y
	} else {
		waitFor(t, "x ready again after its TTR", 20*time.Second, func() bool {
			st, err := c.StatsJob(x)
			return err == nil && st["state"] == "ready"
		})
	}
	// Holding nothing that runs out, the connection reserves as usual.
	if rid, _, err := ts.Reserve(5 * time.Second); err != nil || rid != other {
		t.Fatalf("reserve at the end: %d %v, want %d", rid, err, other)
	}
}
