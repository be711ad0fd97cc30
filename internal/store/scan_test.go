package store

import (
	"context"
	"slices"
	"strconv"
	"testing"
)

// TestScan: Scan returns every message left (deleted ones skipped) in
// order over several batches, with its subject, headers and data; from a
// given sequence; and stops when asked. An empty range calls nothing.
func TestScan(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	var none int
	if err := q.Scan(ctx, 1, func(Message) bool { none++; return true }); err != nil || none != 0 {
		t.Fatalf("scan of an empty stream: %d messages, %v", none, err)
	}
	const total = 2*scanBatch + 345
	for i := 1; i <= total; i++ {
		hdr := map[string]string{"Pier-N": strconv.Itoa(i)}
		if i%3 == 0 {
			hdr = nil
		}
		if _, err := q.Put(ctx, "q.r."+strconv.Itoa(i), []byte("body "+strconv.Itoa(i)), hdr, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, seq := range []uint64{1, 2, scanBatch, scanBatch + 1, total} {
		if err := q.Delete(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		from, stopAt uint64
		first, n     uint64
	}{
		{from: 0, first: 3, n: total - 5},
		{from: 1, first: 3, n: total - 5},
		{from: scanBatch, first: scanBatch + 2, n: total - scanBatch - 2},
		{from: 3, stopAt: 10, first: 3, n: 8},
		{from: total, n: 0},
	}
	for _, tt := range tests {
		var got []Message
		err := q.Scan(ctx, tt.from, func(m Message) bool {
			got = append(got, m)
			return m.Seq != tt.stopAt
		})
		if err != nil {
			t.Fatalf("scan from %d: %v", tt.from, err)
		}
		if uint64(len(got)) != tt.n {
			t.Fatalf("scan from %d: %d messages, want %d", tt.from, len(got), tt.n)
		}
		last := uint64(0)
		for _, m := range got {
			i := strconv.FormatUint(m.Seq, 10)
			if m.Seq <= last || m.Subject != "q.r."+i || string(m.Data) != "body "+i || m.Time.IsZero() {
				t.Fatalf("scan from %d: message %+v after seq %d", tt.from, m, last)
			}
			if want := i; m.Seq%3 == 0 && len(m.Header) != 0 || m.Seq%3 != 0 && (m.Header["Pier-N"] != want || len(m.Header) != 1) {
				t.Fatalf("scan from %d: message %d headers %v", tt.from, m.Seq, m.Header)
			}
			last = m.Seq
		}
		if tt.n > 0 && got[0].Seq != tt.first {
			t.Fatalf("scan from %d: first seq %d, want %d", tt.from, got[0].Seq, tt.first)
		}
	}
}

// TestScanSubject: ScanSubject returns the messages of one subject only, in
// order, over several batches, from a given sequence; a subject with no
// messages calls nothing.
func TestScanSubject(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	const total = 3*scanBatch + 10
	var want []uint64 // sequences on q.r.b1
	for i := 1; i <= total; i++ {
		subj := "q.r.b2"
		if i%3 != 0 {
			subj = "q.r.b1"
		}
		seq, err := q.Put(ctx, subj, []byte(strconv.Itoa(i)), nil, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if subj == "q.r.b1" {
			want = append(want, seq)
		}
	}
	tests := []struct {
		subject string
		from    uint64
		want    []uint64
	}{
		{"q.r.b1", 1, want},
		{"q.r.b1", want[len(want)/2] + 1, want[len(want)/2+1:]},
		{"q.r.b3", 1, nil},
	}
	for _, tt := range tests {
		var got []uint64
		err := q.ScanSubject(ctx, tt.subject, tt.from, func(m Message) bool {
			if m.Subject != tt.subject || string(m.Data) != strconv.FormatUint(m.Seq, 10) {
				t.Errorf("scan of %s: message %+v", tt.subject, m)
			}
			got = append(got, m.Seq)
			return true
		})
		if err != nil {
			t.Fatalf("scan of %s from %d: %v", tt.subject, tt.from, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Fatalf("scan of %s from %d: %d messages, want %d", tt.subject, tt.from, len(got), len(tt.want))
		}
	}
}
