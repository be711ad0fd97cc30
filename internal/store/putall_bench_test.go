package store

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPutAll stores tasks the way the tasks drain does: 100-byte
// bodies with four headers, in batches of 1,000, with a subject for every
// 100 messages (a millisecond's at 100,000 tasks a second: the drain's
// layout) and, to compare, a subject per message (its layout before).
func BenchmarkPutAll(b *testing.B) {
	for _, bc := range []struct {
		name    string
		subject func(n int) string
	}{
		{"subject-per-ms", func(n int) string { return "q.r.b" + strconv.Itoa(n/100) }},
		{"subject-per-task", func(n int) string { return "q.r." + strconv.Itoa(1<<40+n) }},
	} {
		b.Run(bc.name, func(b *testing.B) { benchPutAll(b, bc.subject) })
	}
}

func benchPutAll(b *testing.B, subject func(n int) string) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q, err := s.WorkQueue(ctx, WorkQueueConfig{Name: "Q", Subjects: []string{"q.>"}, Dedup: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 100)
	msgs := make([]PutMsg, 1000)
	seqs := make([]uint64, 1000)
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for n := 0; n < b.N; n += len(msgs) {
		k := min(len(msgs), b.N-n)
		for i := range k {
			hdr := map[string]string{"Pier-Pri": "1024", "Pier-Ttr": "60000", "Pier-Created": "1763800000000000000",
				"Pier-Id": strconv.Itoa(1<<40 + n + i)}
			msgs[i] = PutMsg{Subject: subject(n + i), Data: body, Header: hdr}
		}
		if err := q.PutAll(ctx, msgs[:k], seqs[:k]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
