package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func openQueue(t *testing.T) *WorkQueue {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	q, err := s.WorkQueue(ctx, WorkQueueConfig{Name: "Q", Subjects: []string{"q.>"}, Dedup: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestWorkQueueDedupGetDelete(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	if _, err := q.Put(ctx, "q.r.1", []byte("one"), map[string]string{"Pri": "5"}, PutOptions{MsgID: "n1"}); err != nil {
		t.Fatal(err)
	}
	seq, err := q.Put(ctx, "q.r.2", []byte("again"), nil, PutOptions{MsgID: "n1"})
	if !errors.Is(err, ErrDuplicate) || seq != 1 {
		t.Fatalf("second put with the same id: seq %d err %v, want 1 and ErrDuplicate", seq, err)
	}
	m, err := q.Get(ctx, 1)
	if err != nil || string(m.Data) != "one" || m.Header["Pri"] != "5" || m.Subject != "q.r.1" {
		t.Fatalf("get: %+v %v", m, err)
	}
	if err := q.Delete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted message still stored: %v", err)
	}
}

func TestWorkQueueScheduleAndLookup(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	if _, err := q.Put(ctx, "q.d.7", []byte("later"), map[string]string{"Id": "7"}, PutOptions{At: time.Now().Add(1500 * time.Millisecond), Target: "q.r.7"}); err != nil {
		t.Fatal(err)
	}
	m, err := q.Last(ctx, "q.*.7")
	if err != nil || m.Subject != "q.d.7" {
		t.Fatalf("lookup by wildcard: %+v %v", m, err)
	}
	if n, err := q.Count(ctx, "q.d.*"); err != nil || n != 1 {
		t.Fatalf("count delayed: %d %v", n, err)
	}
	var d Message
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err = q.Last(ctx, "q.r.7")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || string(d.Data) != "later" || d.Header["Id"] != "7" {
		t.Fatalf("scheduled message: %+v %v", d, err)
	}
	if n, _ := q.Count(ctx, "q.d.*"); n != 0 {
		t.Fatalf("schedule left behind: %d", n)
	}
	if err := q.Delete(ctx, d.Seq); err != nil {
		t.Fatal(err)
	}
	waitCount := func(want int) {
		for i := 0; i < 100; i++ {
			if n, _ := q.Count(ctx, "q.>"); n == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		n, _ := q.Count(ctx, "q.>")
		t.Fatalf("count %d, want %d", n, want)
	}
	waitCount(0)
	// Messages stay until deleted.
	seq, _ := q.Put(ctx, "q.x.9", []byte("dead"), nil, PutOptions{})
	if m, err := q.Next(ctx, "q.x.*", 1); err != nil || m.Seq != seq {
		t.Fatalf("next: %+v %v", m, err)
	}
	if err := q.Delete(ctx, seq); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(ctx, seq); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestPutAll(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	msgs := []PutMsg{
		{Subject: "q.r.1", Data: []byte("one"), Header: map[string]string{"Pier-Pri": "5"}},
		{Subject: "nobody.takes.this", Data: []byte("lost")},
		{Subject: "q.r.3", Data: []byte("three")},
		// The server refuses it: the stream's last sequence is not 999.
		{Subject: "q.r.4", Data: []byte("four"), Header: map[string]string{"Nats-Expected-Last-Sequence": "999"}},
		{Subject: "q.r.5", Data: []byte("five"), Header: map[string]string{"Nats-Msg-Id": "five"}},
		{Subject: "q.r.6", Data: []byte("six again"), Header: map[string]string{"Nats-Msg-Id": "five"}},
	}
	seqs := []uint64{7, 7, 7, 7, 7, 7} // cleared first
	err := q.PutAll(ctx, msgs, seqs)
	if err == nil {
		t.Fatal("PutAll stored everything, want the first of two errors")
	}
	want := map[int]string{0: "one", 2: "three", 4: "five", 5: "five"}
	for i, seq := range seqs {
		data, stored := want[i]
		if !stored {
			if seq != 0 {
				t.Errorf("message %d (%s) was refused but has sequence %d", i, msgs[i].Subject, seq)
			}
			continue
		}
		m, err := q.Get(ctx, seq)
		if err != nil || string(m.Data) != data {
			t.Errorf("message %d: sequence %d holds %q (%v), want %q", i, seq, m.Data, err, data)
		}
	}
	if m, _ := q.Get(ctx, seqs[0]); m.Header["Pier-Pri"] != "5" {
		t.Errorf("header not stored: %v", m.Header)
	}
	if seqs[5] != seqs[4] {
		t.Errorf("duplicate message id: sequence %d, want the first's %d", seqs[5], seqs[4])
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := q.PutAll(canceled, msgs[:1], seqs[:1]); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

func TestAckSeq(t *testing.T) {
	tests := []struct {
		name string
		data string
		seq  uint64
		err  string
	}{
		{"plain", `{"stream":"TASKS","seq":12}`, 12, ""},
		{"duplicate", `{"stream":"TASKS","seq":3,"duplicate": true}`, 3, ""},
		{"domain", `{"stream":"TASKS","domain":"hub","seq":44}`, 44, ""},
		{"largest", `{"stream":"TASKS","seq":18446744073709551615}`, 18446744073709551615, ""},
		{"escaped", `{"stream":"T\u0041SKS","seq":5}`, 5, ""},
		{"error", `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 0"},"stream":"Q","seq":0}`, 0, "wrong last sequence: 0 (status 400, error code 10071)"},
		{"no sequence", `{"stream":"TASKS"}`, 0, "has no sequence"},
		{"truncated", `{"stream":"TASKS","seq":1`, 0, "unreadable"},
		{"empty", ``, 0, "unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, err := ackSeq(&nats.Msg{Data: []byte(tt.data)})
			if seq != tt.seq || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ackSeq(%s) = %d, %v; want %d, %q", tt.data, seq, err, tt.seq, tt.err)
			}
		})
	}
	noResponders := &nats.Msg{Header: nats.Header{"Status": []string{"503"}}}
	if _, err := ackSeq(noResponders); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("503 status: %v, want ErrNoResponders", err)
	}
}

// FuzzAckSeq checks ackSeq's reading without encoding/json against it: a
// sequence it returns is the one encoding/json reads.
func FuzzAckSeq(f *testing.F) {
	f.Add([]byte(`{"stream":"TASKS","seq":12}`))
	f.Add([]byte(`{"stream":"TASKS","seq":3,"duplicate": true}`))
	f.Add([]byte(`{"stream":"T","seq":1,"seq":2}`))
	f.Add([]byte(`{"stream":"T","seq":012}`))
	f.Add([]byte(`{"stream":"TASKS","seq":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, err := ackSeq(&nats.Msg{Data: data})
		if err != nil {
			return
		}
		var ack struct {
			Seq uint64 `json:"seq"`
		}
		if jerr := json.Unmarshal(data, &ack); jerr != nil || ack.Seq != seq {
			t.Fatalf("ackSeq(%q) = %d; encoding/json reads %d (%v)", data, seq, ack.Seq, jerr)
		}
	})
}
