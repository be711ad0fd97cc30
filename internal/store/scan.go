package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// scanBatch and scanBytes bound one batch of Scan: messages, and bytes the
// server sends before it ends the batch early.
const (
	scanBatch = 1000
	scanBytes = 8 << 20
)

// scanWait bounds the wait for each message of a batch.
const scanWait = 30 * time.Second

// Scan calls fn with each message of the stream from sequence from on, in
// sequence order, until the end or until fn returns false. It reads them a
// batch at a time with the server's batched direct get (ADR-31), without a
// subject filter: a filtered read of a wildcard that matches most of a
// large stream (tasks.*.*.r.* over a million ready tasks, each its own
// subject) makes the server walk every matching subject for each message
// it returns, while an unfiltered one just steps through the stream. The
// caller skips what it does not want.
func (q *WorkQueue) Scan(ctx context.Context, from uint64, fn func(Message) bool) error {
	return q.scan(ctx, "", from, fn)
}

// ScanSubject is Scan of the messages on one subject, for subjects that
// hold a few hundred messages (a literal subject is found through the
// server's index of subjects, not by a walk of the stream).
func (q *WorkQueue) ScanSubject(ctx context.Context, subject string, from uint64, fn func(Message) bool) error {
	return q.scan(ctx, subject, from, fn)
}

func (q *WorkQueue) scan(ctx context.Context, subject string, from uint64, fn func(Message) bool) error {
	nc := q.s.nc
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("store: scan %s: %w", q.name, err)
	}
	defer sub.Unsubscribe()
	// A batch must fit the subscription's pending limits.
	if err := sub.SetPendingLimits(4*scanBatch, 4*scanBytes); err != nil {
		return fmt.Errorf("store: scan %s: %w", q.name, err)
	}
	api := "$JS.API.DIRECT.GET." + q.name
	seq := max(from, 1)
batches:
	for {
		req, _ := json.Marshal(struct {
			Seq      uint64 `json:"seq"`
			Batch    int    `json:"batch"`
			MaxBytes int    `json:"max_bytes"`
			Subject  string `json:"next_by_subj,omitempty"`
		}{seq, scanBatch, scanBytes, subject})
		if err := nc.PublishRequest(api, inbox, req); err != nil {
			return fmt.Errorf("store: scan %s: %w", q.name, err)
		}
		for {
			wctx, cancel := context.WithTimeout(ctx, scanWait)
			msg, err := sub.NextMsgWithContext(wctx)
			cancel()
			if err != nil {
				return fmt.Errorf("store: scan %s from %d: %w", q.name, seq, err)
			}
			switch status := msg.Header.Get("Status"); status {
			case "":
			case "204": // end of the batch
				continue batches
			case "404": // nothing at or after seq
				return nil
			default:
				return fmt.Errorf("store: scan %s from %d: %s %s", q.name, seq, status, msg.Header.Get("Description"))
			}
			m, err := scanned(msg)
			if err != nil {
				return fmt.Errorf("store: scan %s: %w", q.name, err)
			}
			seq = m.Seq + 1
			if !fn(m) {
				return nil
			}
		}
	}
}

// scanned makes a Message of a direct get's answer: the stored message's
// subject, sequence and time in Nats-* headers, its own headers beside.
func scanned(msg *nats.Msg) (Message, error) {
	seq, err := strconv.ParseUint(msg.Header.Get(nats.JSSequence), 10, 64)
	if err != nil {
		return Message{}, fmt.Errorf("direct get answer without a sequence: %w", err)
	}
	m := Message{Subject: msg.Header.Get(nats.JSSubject), Data: msg.Data, Seq: seq}
	m.Time, _ = time.Parse(time.RFC3339Nano, msg.Header.Get(nats.JSTimeStamp))
	for k := range msg.Header {
		switch k {
		case nats.JSStream, nats.JSSubject, nats.JSSequence, nats.JSTimeStamp, "Nats-Num-Pending", "Nats-Last-Sequence":
			continue
		}
		if m.Header == nil {
			m.Header = map[string]string{}
		}
		m.Header[k] = msg.Header.Get(k)
	}
	return m, nil
}

// State returns the stream's last sequence and how many messages it holds.
func (q *WorkQueue) State(ctx context.Context) (last, msgs uint64, err error) {
	info, err := q.st.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: state of %s: %w", q.name, err)
	}
	return info.State.LastSeq, info.State.Msgs, nil
}
