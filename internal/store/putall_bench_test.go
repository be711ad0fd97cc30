package store

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPutAll stores tasks the way the tasks drain does: 100-byte
// bodies with four headers, a subject for every 100 (a millisecond's at
// 100,000 tasks a second), in batches of 1,000.
func BenchmarkPutAll(b *testing.B) {
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
			msgs[i] = PutMsg{Subject: fmt.Sprintf("q.r.b%d", (n+i)/100), Data: body, Header: hdr}
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
