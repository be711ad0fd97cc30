package beanstalk

import (
	"testing"
	"time"

	bs "github.com/beanstalkd/go-beanstalk"
)

// reserveOrder reserves n jobs and returns their bodies in order, and
// their ids by body; it releases none.
func reserveOrder(t *testing.T, ts *bs.TubeSet, n int) ([]string, map[string]uint64) {
	t.Helper()
	var got []string
	ids := map[string]uint64{}
	for range n {
		id, body, err := ts.Reserve(5 * time.Second)
		if err != nil {
			t.Fatalf("reserve %d: %v", len(got)+1, err)
		}
		got = append(got, string(body))
		ids[string(body)] = id
	}
	return got, ids
}

func sameOrder(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
	}
}

// TestPriorityOrder: beanstalkd reserves the most urgent (lowest number)
// ready job first, and the oldest first within one priority.
func TestPriorityOrder(t *testing.T) {
	tests := []struct {
		name string
		puts []uint32 // priorities, in put order; the body names the put
		want []string
	}{
		{"one priority is FIFO", []uint32{5, 5, 5, 5}, []string{"0:5", "1:5", "2:5", "3:5"}},
		{"mixed", []uint32{100, 1, 50, 0, 1, 4294967295, 50}, []string{"3:0", "1:1", "4:1", "2:50", "6:50", "0:100", "5:4294967295"}},
		{"descending", []uint32{3, 2, 1, 0}, []string{"3:0", "2:1", "1:2", "0:3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, startServer(t, map[string]string{"blog.secret": "blog"}))
			tube := bs.NewTube(c, "jobs")
			for i, pri := range tc.puts {
				if _, err := tube.Put([]byte(bodyOf(i, pri)), pri, 0, time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			if _, body, err := tube.PeekReady(); err != nil || string(body) != tc.want[0] {
				t.Fatalf("peek-ready: %q %v, want %q", body, err, tc.want[0])
			}
			got, _ := reserveOrder(t, bs.NewTubeSet(c, "jobs"), len(tc.puts))
			sameOrder(t, "reserve order", got, tc.want)
		})
	}
}

func bodyOf(i int, pri uint32) string {
	return string(rune('0'+i)) + ":" + uintString(pri)
}

func uintString(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

// TestPriorityAcrossTubes: among the watched tubes, the most urgent job
// wins, whichever tube it is in.
func TestPriorityAcrossTubes(t *testing.T) {
	c := dial(t, startServer(t, map[string]string{"blog.secret": "blog"}))
	bs.NewTube(c, "a").Put([]byte("a:10"), 10, 0, time.Minute)
	bs.NewTube(c, "b").Put([]byte("b:5"), 5, 0, time.Minute)
	bs.NewTube(c, "a").Put([]byte("a:1"), 1, 0, time.Minute)
	bs.NewTube(c, "b").Put([]byte("b:10"), 10, 0, time.Minute)
	got, _ := reserveOrder(t, bs.NewTubeSet(c, "a", "b"), 4)
	sameOrder(t, "reserve order over two tubes", got, []string{"a:1", "b:5", "a:10", "b:10"})
}

// TestReleaseWithPriority: a released job takes its new priority, and a
// kicked job keeps the priority it was buried with.
func TestReleaseWithPriority(t *testing.T) {
	c := dial(t, startServer(t, map[string]string{"blog.secret": "blog"}))
	tube := bs.NewTube(c, "jobs")
	ts := bs.NewTubeSet(c, "jobs")
	first, _ := tube.Put([]byte("first"), 10, 0, time.Minute)
	tube.Put([]byte("second"), 10, 0, time.Minute)
	tube.Put([]byte("third"), 20, 0, time.Minute)

	// Released less urgent than everything: reserved last.
	if id, _, err := ts.Reserve(5 * time.Second); err != nil || id != first {
		t.Fatalf("reserve: %d %v", id, err)
	}
	if err := c.Release(first, 30, 0); err != nil {
		t.Fatal(err)
	}
	if st, err := c.StatsJob(first); err != nil || st["pri"] != "30" || st["state"] != "ready" || st["releases"] != "1" {
		t.Fatalf("stats-job after release: %v %v", st, err)
	}
	got, ids := reserveOrder(t, ts, 3)
	sameOrder(t, "after a release with priority 30", got, []string{"second", "third", "first"})

	// All three reserved: bury "third" at 0 and "second" at 50, release
	// "first" at 40 with a delay; kick brings the buried back first (0,
	// 50), then a second kick the delayed one (40): reserved 0, 40, 50.
	if err := c.Bury(ids["third"], 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Bury(ids["second"], 50); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ids["first"], 40, time.Hour); err != nil {
		t.Fatal(err)
	}
	if st, err := c.StatsJob(ids["first"]); err != nil || st["state"] != "delayed" || st["pri"] != "40" || st["releases"] != "2" {
		t.Fatalf("stats-job of the delayed release: %v %v", st, err)
	}
	if n, err := tube.Kick(10); err != nil || n != 2 {
		t.Fatalf("kick buried: %d %v", n, err)
	}
	if n, err := tube.Kick(10); err != nil || n != 1 {
		t.Fatalf("kick delayed: %d %v", n, err)
	}
	if st, err := c.StatsJob(ids["second"]); err != nil || st["pri"] != "50" || st["buries"] != "1" || st["kicks"] != "1" || st["reserves"] != "1" {
		t.Fatalf("stats-job of a kicked job: %v %v", st, err)
	}
	got, _ = reserveOrder(t, ts, 3)
	sameOrder(t, "kicked jobs", got, []string{"third", "first", "second"})
}
