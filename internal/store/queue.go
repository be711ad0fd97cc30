package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// WorkQueueConfig describes a work-queue stream. Its owner keeps its own
// index of the messages and removes them by sequence or by purge; no
// consumer reads it (DeleteConsumer removes those older engines made).
type WorkQueueConfig struct {
	Name     string
	Subjects []string
	// Dedup is how long a message id (Put's MsgID) is remembered to refuse
	// a second message with the same id; zero leaves the server's default
	// (2 minutes).
	Dedup time.Duration
}

// WorkQueue is a work-queue stream with message schedules and per-message
// TTL enabled. Callers get typed operations, never the JetStream handle.
type WorkQueue struct {
	name string
	st   jetstream.Stream
	s    *Store
}

// WorkQueue opens (creating or updating it) a work-queue stream.
func (s *Store) WorkQueue(ctx context.Context, cfg WorkQueueConfig) (*WorkQueue, error) {
	st, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              cfg.Name,
		Subjects:          cfg.Subjects,
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.WorkQueuePolicy,
		Discard:           jetstream.DiscardOld,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		Duplicates:        cfg.Dedup,
		AllowMsgSchedules: true,
		AllowMsgTTL:       true,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open work queue %s: %w", cfg.Name, err)
	}
	return &WorkQueue{name: cfg.Name, st: st, s: s}, nil
}

// ErrDuplicate is returned by Put when a message with the same MsgID was
// stored within the dedup window; PutResult.Seq names that message.
var ErrDuplicate = errors.New("store: duplicate message id")

// PutOptions are the optional parts of a Put.
type PutOptions struct {
	// MsgID deduplicates: a second Put with the same id inside the dedup
	// window stores nothing and returns ErrDuplicate.
	MsgID string
	// At makes the message a one-shot schedule: it is stored on the
	// subject given to Put and, at At (whole seconds, rounded up), the
	// server publishes a copy (same data and headers) on Target and
	// removes the schedule. Each pending schedule needs its own subject.
	At time.Time
	// Cron makes the message a repeating schedule: a 6-field cron
	// expression (with seconds), "@every 1m", or "@hourly" and friends.
	// The server publishes a copy on Target at each tick. A later Put on
	// the same subject replaces the schedule.
	Cron string
	// Target is where a schedule's copies go; required with At or Cron.
	Target string
	// TTL, when set, makes the server drop the message after it.
	TTL time.Duration
}

// Put stores a message and waits for the server's acknowledgement; the
// message is durable when Put returns without error.
func (q *WorkQueue) Put(ctx context.Context, subject string, data []byte, header map[string]string, o PutOptions) (uint64, error) {
	msg := nats.NewMsg(subject)
	msg.Data = data
	for k, v := range header {
		msg.Header.Set(k, v)
	}
	var opts []jetstream.PublishOpt
	if o.MsgID != "" {
		opts = append(opts, jetstream.WithMsgID(o.MsgID))
	}
	if !o.At.IsZero() || o.Cron != "" {
		if o.Target == "" {
			return 0, fmt.Errorf("store: put %s: a schedule needs a target subject", subject)
		}
		if o.Cron != "" {
			opts = append(opts, jetstream.WithScheduleCron(o.Cron))
		} else {
			at := o.At
			if at.Truncate(time.Second) != at {
				at = at.Truncate(time.Second).Add(time.Second)
			}
			opts = append(opts, jetstream.WithScheduleAt(at))
		}
		opts = append(opts, jetstream.WithScheduleTarget(o.Target))
	}
	if o.TTL > 0 {
		opts = append(opts, jetstream.WithMsgTTL(o.TTL))
	}
	ack, err := q.s.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return 0, fmt.Errorf("store: put %s: %w", subject, err)
	}
	if ack.Duplicate {
		return ack.Sequence, ErrDuplicate
	}
	return ack.Sequence, nil
}

// Get returns the message stored at seq, or ErrNotFound.
func (q *WorkQueue) Get(ctx context.Context, seq uint64) (Message, error) {
	raw, err := q.st.GetMsg(ctx, seq)
	return rawMessage(raw, err)
}

// Last returns the newest message on subject (wildcards allowed), or
// ErrNotFound.
func (q *WorkQueue) Last(ctx context.Context, subject string) (Message, error) {
	raw, err := q.st.GetLastMsgForSubject(ctx, subject)
	return rawMessage(raw, err)
}

// Next returns the first message at or after seq on subject (wildcards
// allowed), or ErrNotFound.
func (q *WorkQueue) Next(ctx context.Context, subject string, seq uint64) (Message, error) {
	raw, err := q.st.GetMsg(ctx, max(seq, 1), jetstream.WithGetMsgSubject(subject))
	return rawMessage(raw, err)
}

func rawMessage(raw *jetstream.RawStreamMsg, err error) (Message, error) {
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Message{}, ErrNotFound
		}
		return Message{}, fmt.Errorf("store: get message: %w", err)
	}
	m := Message{Subject: raw.Subject, Data: raw.Data, Time: raw.Time, Seq: raw.Sequence}
	if len(raw.Header) > 0 {
		m.Header = make(map[string]string, len(raw.Header))
		for k := range raw.Header {
			m.Header[k] = raw.Header.Get(k)
		}
	}
	return m, nil
}

// Delete removes the message at seq; ErrNotFound when there is none.
func (q *WorkQueue) Delete(ctx context.Context, seq uint64) error {
	if err := q.st.DeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return ErrNotFound
		}
		return fmt.Errorf("store: delete message %d: %w", seq, err)
	}
	return nil
}

// Purge removes every message on subject (wildcards allowed).
func (q *WorkQueue) Purge(ctx context.Context, subject string) error {
	if err := q.st.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("store: purge %s: %w", subject, err)
	}
	return nil
}

// Count returns how many messages are stored on subject (wildcards
// allowed). It costs a walk of the matching subjects: for stats, not for
// hot paths.
func (q *WorkQueue) Count(ctx context.Context, subject string) (int, error) {
	info, err := q.st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("store: count %s: %w", subject, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}

// DeleteConsumer removes a durable consumer (engines before the tasks
// index read the queue through consumers); its messages stay in the stream.
func (q *WorkQueue) DeleteConsumer(ctx context.Context, name string) error {
	err := q.st.DeleteConsumer(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("store: delete consumer %s: %w", name, err)
	}
	return nil
}

// PutMsg is one message of PutAll.
type PutMsg struct {
	Subject string
	Data    []byte
	Header  map[string]string
}

// PutAll stores msgs without waiting for each acknowledgement in turn,
// then waits for all of them: seqs[i] gets the sequence of msgs[i], or
// stays 0 when that message was not stored (the first such error is
// returned). A message is durable once its sequence is set.
func (q *WorkQueue) PutAll(ctx context.Context, msgs []PutMsg, seqs []uint64) error {
	futures := make([]jetstream.PubAckFuture, len(msgs))
	var first error
	for i, m := range msgs {
		msg := nats.NewMsg(m.Subject)
		msg.Data = m.Data
		for k, v := range m.Header {
			msg.Header.Set(k, v)
		}
		f, err := q.s.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0))
		if err != nil {
			if first == nil {
				first = fmt.Errorf("store: put %s: %w", m.Subject, err)
			}
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("store: put %s: %w", msgs[i].Subject, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

// PurgeBelow removes every message on subject (wildcards allowed) whose
// sequence is below seq, in one request: for removing many finished
// messages at once.
func (q *WorkQueue) PurgeBelow(ctx context.Context, subject string, seq uint64) error {
	if err := q.st.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(seq)); err != nil {
		return fmt.Errorf("store: purge %s below %d: %w", subject, seq, err)
	}
	return nil
}
