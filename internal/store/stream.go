package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream is an append-only log of messages on subjects.
type Stream struct {
	name string
	st   jetstream.Stream
	s    *Store
}

// Message is one stored message.
type Message struct {
	Subject string
	Data    []byte
	Header  map[string]string
	Time    time.Time
	Seq     uint64
}

// Append stores a message and waits for the server's acknowledgement.
func (st *Stream) Append(ctx context.Context, subject string, data []byte, header map[string]string) (uint64, error) {
	msg := nats.NewMsg(subject)
	msg.Data = data
	for k, v := range header {
		msg.Header.Set(k, v)
	}
	ack, err := st.s.js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, fmt.Errorf("store: append %s: %w", subject, err)
	}
	return ack.Sequence, nil
}

// AppendNoWait stores a message without waiting for the acknowledgement:
// for high-rate data such as log lines, where losing the last few on a
// crash is acceptable and blocking the writer is not.
func (st *Stream) AppendNoWait(subject string, data []byte, header map[string]string) error {
	msg := nats.NewMsg(subject)
	msg.Data = data
	for k, v := range header {
		msg.Header.Set(k, v)
	}
	if err := st.s.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("store: append %s: %w", subject, err)
	}
	return nil
}

// readIdle is how long Read without Follow waits for the next stored
// message before it takes the backlog as read.
const readIdle = 3 * time.Second

// ReadOptions select what Read delivers.
type ReadOptions struct {
	// Last delivers only the last N stored messages (0 = all stored).
	Last int
	// Since skips messages stored before this time.
	Since time.Time
	// Follow keeps delivering new messages until ctx ends.
	Follow bool
}

// Read calls fn for the stored messages on subject (wildcards allowed), in
// order, then for new ones if opts.Follow. It returns when done, when fn
// returns an error, or when ctx ends (nil then).
func (st *Stream) Read(ctx context.Context, subject string, opts ReadOptions, fn func(Message) error) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
	if !opts.Since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		t := opts.Since
		cfg.OptStartTime = &t
	}
	cons, err := st.st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("store: read %s: %w", subject, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("store: read %s: %w", subject, err)
	}
	pending := info.NumPending
	// A stream bounded by size drops old messages the consumer may still
	// count as pending, so the backlog also ends at the stream's newest
	// message as it was now (the newest are the ones a bound keeps).
	var lastSeq uint64
	if si, err := st.st.Info(ctx); err == nil {
		lastSeq = si.State.LastSeq
	}
	var ring []Message // the last opts.Last messages of the backlog
	flush := func() error {
		for _, m := range ring {
			if err := fn(m); err != nil {
				return err
			}
		}
		ring = nil
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("store: read %s: %w", subject, err)
	}
	defer it.Stop()
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	backlog := pending > 0
	if !backlog && !opts.Follow {
		return nil
	}
	// Without Follow, a backlog that stops arriving (its last messages
	// dropped by the stream's bound after they were counted) must not
	// block: an idle iterator is stopped and what was read is delivered.
	var idle *time.Timer
	if !opts.Follow {
		idle = time.AfterFunc(readIdle, it.Stop)
		defer idle.Stop()
	}
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				if backlog && ctx.Err() == nil {
					return flush()
				}
				return nil
			}
			return fmt.Errorf("store: read %s: %w", subject, err)
		}
		if idle != nil {
			idle.Reset(readIdle)
		}
		m := toMessage(msg)
		meta, _ := msg.Metadata()
		if backlog {
			ring = append(ring, m)
			if opts.Last > 0 && len(ring) > opts.Last {
				ring = ring[len(ring)-opts.Last:]
			}
			if meta == nil || meta.NumPending == 0 || (lastSeq > 0 && meta.Sequence.Stream >= lastSeq) {
				backlog = false
				if err := flush(); err != nil {
					return err
				}
				if !opts.Follow {
					return nil
				}
			}
			continue
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// Purge drops the stored messages on subject.
func (st *Stream) Purge(ctx context.Context, subject string) error {
	if err := st.st.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("store: purge %s: %w", subject, err)
	}
	return nil
}

func toMessage(msg jetstream.Msg) Message {
	m := Message{Subject: msg.Subject(), Data: msg.Data()}
	if h := msg.Headers(); len(h) > 0 {
		m.Header = make(map[string]string, len(h))
		for k := range h {
			m.Header[k] = h.Get(k)
		}
	}
	if meta, err := msg.Metadata(); err == nil {
		m.Time = meta.Timestamp
		m.Seq = meta.Sequence.Stream
	}
	return m
}
